"""Whom to ask for a chunk and when its version is lost: the pure planning of syncfs.sources."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncfs.sources import Plan, Quarantine, plan

WANT, OTHER = b"w" * 32, b"o" * 32


@pytest.mark.parametrize(("holders", "online", "announced", "shunned", "helpers", "asked_holders"), [
    # holders online are asked; this peer and offline ones are not
    (("me", "a", "b", "off"), ("a", "b"), {}, (), (), ("a", "b")),
    # a peer that announced the chunk helps; one that announced another does not
    (("a",), ("a", "h", "x"), {"h": {WANT}, "x": {OTHER}}, (), ("h",), ("a",)),
    # a holder that announced it is asked as a holder, not twice
    (("a",), ("a",), {"a": {WANT}}, (), (), ("a",)),
    # shunned (quarantined, failed before) peers are asked in neither role
    (("a", "b"), ("a", "b", "h"), {"h": {WANT}}, ("b", "h"), (), ("a",)),
    # a helper that went offline is not asked
    (("a",), ("a",), {"h": {WANT}}, (), (), ("a",)),
    # a row naming nobody: every usable online peer may have the bytes under another name
    ((), ("a", "b", "c", "me"), {}, ("c",), ("a", "b"), ()),
    # ... unless someone announced them
    ((), ("a", "h"), {"h": {WANT}}, (), ("h",), ()),
])
def test_plan_asks_helpers_then_holders(holders, online, announced, shunned, helpers, asked_holders):
    p = plan(WANT, holders, me="me", online=online, announced=announced, shunned=shunned)
    assert p.helpers == helpers and p.holders == asked_holders
    assert p.order(0) == list(helpers) + list(asked_holders)


@pytest.mark.parametrize(("holders", "online", "shunned", "missing_from", "lost"), [
    (("a", "b"), ("a", "b"), (), {"a", "b"}, True),  # every holder said MISSING
    (("me", "a"), ("a",), (), {"a"}, True),  # this peer lacks it too
    (("a", "b"), ("a", "b"), (), {"a"}, False),  # b failed or sent it
    (("a", "b"), ("a",), (), {"a"}, False),  # b is offline: it may still have it
    (("a", "b"), ("a", "b"), ("b",), {"a"}, False),  # b is quarantined: not asked
    (("a",), ("a", "h"), (), {"h"}, False),  # a helper's MISSING proves nothing
    (("me",), (), (), set(), True),  # only this peer is named, and it lacks the chunk
    (("a",), (), (), set(), False),  # nobody to ask: the holder is offline
    ((), ("a",), (), {"a"}, False),  # a row naming nobody is never lost
    ((), (), (), set(), False),
])
def test_lost_only_when_every_holder_answered_missing(holders, online, shunned, missing_from, lost):
    p = plan(WANT, holders, me="me", online=online, announced={"h": {WANT}}, shunned=shunned)
    assert p.lost(missing_from) is lost


def test_a_holder_that_announced_only_this_peer_is_not_lost_when_the_helper_misses():
    # only this peer is named, but another announced the chunk: it is asked, and its
    # MISSING is a helper's, which proves nothing
    p = plan(WANT, ("me",), me="me", online=("h",), announced={"h": {WANT}}, shunned=())
    assert p.order(0) == ["h"] and not p.lost({"h"})


@given(st.lists(st.text("abcdef", min_size=1, max_size=2), unique=True, max_size=6), st.integers(0, 100))
def test_order_rotates_each_group_and_asks_every_peer_once(peers, turn):
    p = Plan(tuple(peers[:2]), tuple(peers[2:]), tuple(peers[2:]), True)
    order = p.order(turn)
    assert sorted(order[:len(p.helpers)]) == sorted(p.helpers)
    assert sorted(order[len(p.helpers):]) == sorted(p.holders)
    if p.holders:
        assert order[len(p.helpers)] == p.holders[turn % len(p.holders)]


def test_quarantine_lasts_its_period():
    q = Quarantine(300.0)
    q.add("bad", now=10.0)
    assert q.holds("bad", 309.0) and q.held(309.0) == {"bad"}
    assert not q.holds("bad", 310.0) and q.held(310.0) == set()
    assert not q.holds("good", 0.0)
