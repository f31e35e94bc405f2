"""What a peer does with a change the tracker accepted (pure decision table)."""

import pytest

from syncfs.protocol.entries import Entry, Kind
from syncfs.reconcile import Action, decide


def entry(version: dict[str, int]) -> Entry:
    return Entry("f", Kind.FILE, version=version)


@pytest.mark.parametrize(
    "remote, local, pending, busy, expected",
    [
        ({"a": 1}, {}, False, False, Action.APPLY),  # new to us
        ({"a": 2}, {"a": 1}, False, False, Action.APPLY),  # newer
        ({"a": 1}, {"a": 1}, False, False, Action.IGNORE),  # ours, echoed back
        ({"a": 1}, {"a": 2}, False, False, Action.IGNORE),  # older than ours
        ({"a": 1}, {"b": 1}, True, False, Action.WAIT),  # concurrent with our unsent change
        ({"a": 1}, {"b": 1}, False, False, Action.APPLY),  # concurrent, nothing of ours pending
        ({"a": 2}, {"a": 1}, False, True, Action.DEFER),  # newer, but a writer has it open
        ({"a": 1, "b": 2}, {"b": 1}, True, True, Action.DEFER),  # dominates our pending change
    ],
)
def test_decision_table(remote, local, pending, busy, expected):
    assert decide(entry(remote), local, pending=pending, busy=busy) is expected
