"""The chunk link's conversation, sans I/O: messages in, decisions out.

A chunk link is opened by the asking peer (TLS, then HELLO → ACCEPT). From then on the
asking side sends ``GET {digest}``, and the serving side answers every GET with one
``DATA {digest, bytes}`` or ``MISSING {digest}``. GETs are pipelined: several are out at
once, and their answers come back in any order. The serving side may also send
``HAS_CHUNKS {digests}`` unasked, at any time.

Answers carry no request id: an answer belongs to the earliest GET of its digest that is
still unanswered. Anything else from the serving side (an answer to a digest with no GET
out, any other message) breaks the protocol: the link must be closed.

``Asking`` is the asking side, ``Serving`` the serving side. Neither does I/O or keeps
time: the trio code (``syncfs.p2p``) sends the messages they return, feeds them what it
receives, and wakes the tasks they name.
"""

import dataclasses
import enum
from collections import deque
from collections.abc import Callable

from .errors import ProtocolError
from .messages import Accept, Data, Get, HasChunks, Message, Missing

# GETs one link may have out at once; beyond that an asker waits for a free slot
MAX_IN_FLIGHT = 32


class Verdict(enum.Enum):
    HAVE = "have"  # the bytes asked for
    MISSING = "missing"  # the serving peer does not have the chunk
    CORRUPT = "corrupt"  # bytes whose length or digest is not what was asked for


@dataclasses.dataclass(frozen=True)
class Answer:
    """The answer to the request ``ticket``; ``data`` is set only when it is HAVE."""

    ticket: int
    verdict: Verdict
    data: bytes = b""


@dataclasses.dataclass(frozen=True)
class Announced:
    """The serving peer now also serves ``digests`` (pieces of a version it is fetching)."""

    digests: tuple[bytes, ...]


class Asking:
    """The asking side of one chunk link.

    Every request gets a ticket (``ask``). A ticket waits in line until one of the
    ``max_in_flight`` slots is free; ``due`` then names it, and its owner sends ``get``'s
    message. ``receive`` matches each answer to the ticket it belongs to, and judges it
    against the length and digest asked for (``digest_of`` computes a chunk's digest).
    An owner that gives up calls ``withdraw``: its slot is free at once, and the answer to
    a GET already sent is taken off the link and dropped when it comes. ``end`` closes the
    conversation and names every ticket that will get no answer.

    Invariants: a ticket is in exactly one of the line, the sent GETs, or neither (done);
    ``in_flight`` counts the due tickets not yet answered or withdrawn.
    """

    def __init__(self, digest_of: Callable[[bytes], bytes], max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._digest_of = digest_of
        self.max_in_flight = max_in_flight
        self.ended: str | None = None  # why the conversation ended, once it has
        self._next = 0
        self._wants: dict[int, tuple[bytes, int]] = {}  # live ticket -> (digest, length)
        self._line: deque[int] = deque()
        self._due: list[int] = []  # given a slot since the last ``due``
        self._sent: dict[bytes, deque[int]] = {}  # digest -> tickets with a GET out, oldest first
        self._withdrawn: set[int] = set()  # GET out, answer to be dropped
        self.in_flight = 0

    def ask(self, want: bytes, length: int) -> int:
        """A new request for the chunk ``want`` of ``length`` bytes; returns its ticket."""
        if self.ended is not None:
            raise RuntimeError(f"asked on an ended chunk link ({self.ended})")
        ticket = self._next
        self._next += 1
        self._wants[ticket] = (want, length)
        self._line.append(ticket)
        self._fill_slots()
        return ticket

    def due(self) -> list[int]:
        """The tickets given a slot since the last call: their owners may send now."""
        due, self._due = self._due, []
        return due

    def get(self, ticket: int) -> Get:
        """The GET for a due ``ticket``, counted as sent from now on (send it at once)."""
        want, _ = self._wants[ticket]
        self._sent.setdefault(want, deque()).append(ticket)
        return Get(want)

    def withdraw(self, ticket: int) -> None:
        """The owner of ``ticket`` no longer waits for its answer."""
        if ticket not in self._wants:
            return  # answered meanwhile, or the link ended
        want, _ = self._wants.pop(ticket)
        if ticket in self._line:
            self._line.remove(ticket)
            return
        if ticket in self._due:
            self._due.remove(ticket)
        if ticket in self._sent.get(want, ()):
            self._withdrawn.add(ticket)
        self.in_flight -= 1
        self._fill_slots()

    def receive(self, msg: Message) -> Answer | Announced | None:
        """What ``msg`` from the serving side means; None: an answer nobody waits for any
        more. Raises ProtocolError for anything the serving side may not send."""
        if isinstance(msg, HasChunks):
            return Announced(msg.digests)
        if not isinstance(msg, Data | Missing):
            raise ProtocolError(f"expected data, got {msg.TYPE}")
        waiting = self._sent.get(msg.digest)
        if not waiting:
            raise ProtocolError("answer to a chunk we did not ask for")
        ticket = waiting.popleft()
        if not waiting:
            del self._sent[msg.digest]
        if ticket in self._withdrawn:
            self._withdrawn.discard(ticket)
            return None
        want, length = self._wants.pop(ticket)
        self.in_flight -= 1
        self._fill_slots()
        if isinstance(msg, Missing):
            return Answer(ticket, Verdict.MISSING)
        if len(msg.data) != length or self._digest_of(msg.data) != want:
            return Answer(ticket, Verdict.CORRUPT)
        return Answer(ticket, Verdict.HAVE, msg.data)

    def end(self, why: str) -> list[int]:
        """The link is gone (``why``): the tickets that will get no answer, in line or not."""
        if self.ended is None:
            self.ended = why
        orphans = list(self._wants)
        self._wants.clear()
        self._line.clear()
        self._due.clear()
        self._sent.clear()
        self._withdrawn.clear()
        self.in_flight = 0
        return orphans

    def _fill_slots(self) -> None:
        while self._line and self.in_flight < self.max_in_flight:
            self._due.append(self._line.popleft())
            self.in_flight += 1


class Serving:
    """The serving side of one chunk link, once the opening is done: ``opening`` is the
    ACCEPT to send, then every message received must be a GET (``receive`` gives the digest
    wanted), and each GET is answered with ``answer``'s message."""

    def __init__(self, max_frame: int) -> None:
        self.max_frame = max_frame

    def opening(self) -> Accept:
        return Accept(max_frame=self.max_frame)

    @staticmethod
    def receive(msg: Message) -> bytes:
        """The digest ``msg`` asks for; raises ProtocolError if it is not a GET."""
        if not isinstance(msg, Get):
            raise ProtocolError(f"expected get, got {msg.TYPE}")
        return msg.digest

    @staticmethod
    def answer(want: bytes, data: bytes | bytearray | None) -> Data | Missing:
        """The answer to a GET of ``want``: its bytes (verified by the caller), or None."""
        return Missing(want) if data is None else Data(want, data)  # type: ignore[arg-type]

    @staticmethod
    def announce(digests: list[bytes]) -> HasChunks:
        return HasChunks(tuple(digests))
