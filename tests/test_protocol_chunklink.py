"""The chunk link's conversation without any I/O: which answer belongs to which request,
how many GETs are out at once, and what a bad or unexpected answer means."""

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncfs.protocol.chunklink import Announced, Answer, Asking, Serving, Verdict
from syncfs.protocol.errors import ProtocolError
from syncfs.protocol.messages import Accept, Data, Get, HasChunks, Missing


def dig(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


A, B = b"chunk a", b"chunk b"
DA, DB = dig(A), dig(B)


def asking(max_in_flight: int = 32) -> Asking:
    return Asking(dig, max_in_flight)


def sent(conv: Asking, want: bytes, length: int) -> int:
    """A ticket whose GET went out (the caller checked it was due)."""
    ticket = conv.ask(want, length)
    assert ticket in conv.due()
    assert conv.get(ticket) == Get(want)
    return ticket


@pytest.mark.parametrize(("answer", "expected"), [
    (Data(DA, A), Answer(0, Verdict.HAVE, A)),
    (Missing(DA), Answer(0, Verdict.MISSING)),
    (Data(DA, B), Answer(0, Verdict.CORRUPT)),  # other bytes under the digest asked for
    (Data(DA, A + b"!"), Answer(0, Verdict.CORRUPT)),  # not the length asked for
])
def test_an_answer_is_judged_against_what_was_asked(answer, expected):
    conv = asking()
    sent(conv, DA, len(A))
    assert conv.receive(answer) == expected
    assert conv.in_flight == 0


@pytest.mark.parametrize(("msg", "error"), [
    (Data(DB, B), "did not ask for"),
    (Missing(DB), "did not ask for"),
    (Get(DA), "expected data, got get"),
    (Accept(), "expected data, got accept"),
])
def test_an_unexpected_message_breaks_the_protocol(msg, error):
    conv = asking()
    sent(conv, DA, len(A))
    with pytest.raises(ProtocolError, match=error):
        conv.receive(msg)


def test_an_answer_not_yet_asked_for_breaks_the_protocol():
    # asked and due, but the GET never went out
    conv = asking()
    conv.ask(DA, len(A))
    with pytest.raises(ProtocolError):
        conv.receive(Missing(DA))


def test_announcements_come_unasked():
    conv = asking()
    assert conv.receive(HasChunks((DA, DB))) == Announced((DA, DB))


def test_answers_match_requests_by_digest_in_any_order_and_first_asked_first_answered():
    conv = asking()
    a1, b1, a2 = sent(conv, DA, len(A)), sent(conv, DB, len(B)), sent(conv, DA, len(A))
    assert conv.receive(Missing(DB)) == Answer(b1, Verdict.MISSING)
    assert conv.receive(Data(DA, A)) == Answer(a1, Verdict.HAVE, A)
    assert conv.receive(Missing(DA)) == Answer(a2, Verdict.MISSING)
    with pytest.raises(ProtocolError):
        conv.receive(Data(DA, A))


def test_requests_beyond_the_limit_wait_in_line_for_a_slot():
    conv = asking(max_in_flight=2)
    tickets = [conv.ask(DA, len(A)) for _ in range(4)]
    assert conv.due() == tickets[:2] and conv.in_flight == 2
    for t in tickets[:2]:
        conv.get(t)
    assert conv.receive(Data(DA, A)).ticket == tickets[0]  # type: ignore[union-attr]
    assert conv.due() == [tickets[2]]
    conv.withdraw(tickets[3])  # gave up while in line: never due
    conv.withdraw(tickets[1])
    assert conv.due() == [] and conv.in_flight == 1


def test_a_withdrawn_request_frees_its_slot_and_its_answer_is_dropped():
    conv = asking(max_in_flight=1)
    first = sent(conv, DA, len(A))
    second = conv.ask(DA, len(A))
    assert conv.due() == []
    conv.withdraw(first)
    assert conv.due() == [second]
    conv.get(second)
    assert conv.receive(Data(DA, A)) is None  # the first GET's answer
    assert conv.receive(Data(DA, A)) == Answer(second, Verdict.HAVE, A)


def test_withdrawing_an_answered_request_changes_nothing():
    conv = asking()
    first = sent(conv, DA, len(A))
    conv.receive(Missing(DA))
    conv.withdraw(first)
    assert conv.in_flight == 0


def test_the_end_names_every_request_left_without_an_answer():
    conv = asking(max_in_flight=1)
    answered = sent(conv, DA, len(A))
    conv.receive(Missing(DA))
    out, waiting = sent(conv, DB, len(B)), conv.ask(DA, len(A))
    assert sorted(conv.end("peer went offline")) == sorted([out, waiting])
    assert conv.ended == "peer went offline" and conv.in_flight == 0
    assert answered not in conv.end("again") and conv.ended == "peer went offline"
    with pytest.raises(RuntimeError):
        conv.ask(DA, len(A))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["ask", "answer", "withdraw"]), st.integers(0, 5), st.booleans()),
                max_size=60),
       st.integers(1, 4))
def test_every_request_gets_its_own_answer_and_the_limit_holds(steps, limit):
    """A serving side that answers the GETs sent so far, in any order: every answer the
    conversation hands out is for the earliest live GET of its digest, no ticket is
    answered twice, and no more than ``limit`` GETs are out at once."""
    chunks = [bytes([i]) * 10 for i in range(3)]
    conv = asking(limit)
    on_wire: list[tuple[int, bytes]] = []  # (ticket, digest) of GETs the server has not answered
    live: dict[int, bytes] = {}  # ticket -> digest, not answered nor withdrawn
    answered: set[int] = set()
    for op, n, have in steps:
        if op == "ask":
            data = chunks[n % 3]
            live[conv.ask(dig(data), len(data))] = dig(data)
        elif op == "withdraw" and live:
            ticket = sorted(live)[n % len(live)]
            conv.withdraw(ticket)
            del live[ticket]
        elif op == "answer" and on_wire:
            ticket, want = on_wire.pop(n % len(on_wire))
            data = next(c for c in chunks if dig(c) == want)
            event = conv.receive(Data(want, data) if have else Missing(want))
            if event is not None:
                assert isinstance(event, Answer) and event.ticket in live and event.ticket not in answered
                assert live.pop(event.ticket) == want
                assert event.verdict is (Verdict.HAVE if have else Verdict.MISSING)
                answered.add(event.ticket)
        for ticket in conv.due():
            assert ticket in live
            on_wire.append((ticket, conv.get(ticket).digest))
        # a live ticket waits in line only while every slot is taken
        assert conv.in_flight == min(limit, len(live))


def test_the_serving_side_answers_gets_only():
    serving = Serving(1 << 20)
    assert serving.opening() == Accept(max_frame=1 << 20)
    assert serving.receive(Get(DA)) == DA
    assert serving.answer(DA, A) == Data(DA, A)
    assert serving.answer(DA, None) == Missing(DA)
    assert serving.announce([DA]) == HasChunks((DA,))
    with pytest.raises(ProtocolError, match="expected get, got data"):
        serving.receive(Data(DA, A))
