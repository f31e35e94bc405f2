"""The fill state machine: its transition table, and what sequences of calls do."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncfs.fillstate import (
    RETRY_INITIAL,
    RETRY_MAX,
    TRANSITIONS,
    BadTransition,
    FillEvent,
    FillMachine,
    FillState,
)

S, E = FillState, FillEvent


@pytest.mark.parametrize(("state", "event", "after"), [
    (S.IDLE, E.START, S.FILLING),
    (S.IDLE, E.NEWS, S.IDLE),
    (S.FILLING, E.ENDED, S.IDLE),
    (S.FILLING, E.FAILED, S.WAITING),
    (S.FILLING, E.NEWS, S.FILLING),
    (S.WAITING, E.START, S.FILLING),
    (S.WAITING, E.NEWS, S.IDLE),
    (S.IDLE, E.CANCEL, S.CANCELLED),
    (S.FILLING, E.CANCEL, S.CANCELLED),
    (S.WAITING, E.CANCEL, S.CANCELLED),
    (S.CANCELLED, E.ENDED, S.CANCELLED),
    (S.CANCELLED, E.START, S.CANCELLED),
])
def test_the_table(state, event, after):
    assert TRANSITIONS[(state, event)] is after


CALLS = {
    E.START: lambda m: m.start(),
    E.ENDED: lambda m: m.ended(),
    E.FAILED: lambda m: m.failed("why", 1.0),
    E.NEWS: lambda m: m.news(),
    E.CANCEL: lambda m: m.cancel(),
}


@pytest.mark.parametrize(("state", "event"), [
    (S.IDLE, E.ENDED), (S.IDLE, E.FAILED), (S.FILLING, E.START), (S.WAITING, E.ENDED), (S.WAITING, E.FAILED),
])
def test_what_cannot_happen_is_refused(state, event):
    m = FillMachine(state=state)
    with pytest.raises(BadTransition, match=f"from {state.value} on {event.value}"):
        CALLS[event](m)
    assert m == FillMachine(state=state)  # nothing changed


def test_a_failed_fill_backs_off_doubling_up_to_the_maximum():
    m = FillMachine()
    waits = []
    for now in range(8):
        assert m.due(float(now * 100))
        m.start()
        m.failed("no holder online", float(now * 100))
        waits.append(m.retry_at - now * 100)
        assert not m.due(float(now * 100))
    assert waits == [RETRY_INITIAL, 1.0, 2.0, 4.0, 8.0, RETRY_MAX, RETRY_MAX, RETRY_MAX]
    assert m.last_error == "no holder online" and m.attempted
    assert m.events[-2:] == [(E.START, S.FILLING), (E.FAILED, S.WAITING)]


def test_news_makes_a_waiting_version_due_at_once():
    m = FillMachine()
    m.start()
    m.failed("gone", 10.0)
    assert not m.due(10.1)
    m.news()
    assert m.due(10.1) and m.state is S.IDLE and m.retry_at == 0.0


def test_news_during_a_fill_does_not_stop_it():
    m = FillMachine()
    m.start()
    m.news()
    assert m.filling
    m.ended()
    assert m.events == [(E.START, S.FILLING), (E.NEWS, S.FILLING), (E.ENDED, S.IDLE)]


def test_a_crash_waits_the_longest():
    m = FillMachine()
    m.start()
    m.crashed(5.0)
    assert m.retry_at == 5.0 + RETRY_MAX and m.state is S.WAITING


def test_cancelled_is_final_and_a_running_fill_ending_finds_it():
    m = FillMachine()
    m.start()
    m.cancel()
    m.ended()  # the fill task winds down after the version was replaced
    assert m.cancelled and not m.filling and not m.due(0.0)


@given(st.lists(st.sampled_from(["start", "ended", "failed", "crashed", "news", "cancel"]), max_size=40))
def test_any_sequence_keeps_the_machine_in_its_table(calls):
    m = FillMachine()
    now = 0.0
    for call in calls:
        now += 1.0
        before = m.state
        try:
            if call in ("failed", "crashed"):
                getattr(m, call)(*(("why", now) if call == "failed" else (now,)))
            else:
                getattr(m, call)()
        except BadTransition:
            assert (before, E.FAILED if call == "crashed" else E(call)) not in TRANSITIONS
            assert m.state is before
            continue
        assert m.state is TRANSITIONS[(before, E.FAILED if call == "crashed" else E(call))]
        assert 0.0 <= m.retry_at <= now + RETRY_MAX and RETRY_INITIAL <= m.backoff <= RETRY_MAX
        if before is S.CANCELLED:
            assert m.cancelled
