"""The peer's link to the tracker: connect, hand over the outbox, apply the table, stay alive.

When the tracker is unreachable the mount keeps working; this task retries with backoff and
catches up by asking for the changes after the last sequence it applied. A refusal that
trying again does not cure (a wrong secret, a revoked peer, a tracker with another
certificate) ends the start-up at once (``first_contact`` raises ``TrackerRefused``); once
running, it is retried ever more rarely (up to every ``REFUSED_BACKOFF_MAX`` seconds) and
shown as the link's ``state`` "refused".
"""

import dataclasses
import logging
import time

import trio

from .claims import ClaimSender
from .engine import Engine
from .errors import first_error
from .handshake import (
    HandshakeFailed,
    NotAdmitted,
    WrongServer,
    channel_binding,
    client_context,
    join_tracker,
    make_hello,
    tls_connect,
)
from .identity import Identity
from .invite import Invite
from .protocol.errors import ProtocolError
from .protocol.messages import Accept, Alive, DropAnswer, Peers, Table, Update
from .wire import FramedStream, LinkBroken, LinkClosed

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
FIRST_CONTACT_TIMEOUT = 10.0  # how long a start waits for the tracker before working offline
BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 2.0
REFUSED_BACKOFF_INITIAL = 5.0
REFUSED_BACKOFF_MAX = 300.0
UPDATE_BATCH = 500

TRANSIENT = (OSError, trio.TooSlowError, LinkClosed, LinkBroken, HandshakeFailed, ProtocolError)


class TrackerRefused(Exception):
    """The tracker of the join token refuses this peer, and will again: retrying the same
    token does not help. ``address`` is the tracker's; ``cause`` is "secret", "revoked",
    "protocol" or "certificate"; ``detail`` what the handshake said."""

    def __init__(self, address: str, cause: str, detail: str, peer_id: str = "") -> None:
        super().__init__(address, cause, detail)
        self.address = address
        self.cause = cause
        self.detail = detail
        self.peer_id = peer_id

    def __str__(self) -> str:
        head = f"the tracker at {self.address} refused this peer"
        if self.cause == "secret":
            return (f"{head}: authentication failed: the share secret of the join token (or --secret) "
                    "is wrong; ask for the current token (syncfs tracker --print-invite)")
        if self.cause == "revoked":
            return f"{head}: this peer (id {self.peer_id}) has been revoked on the tracker"
        if self.cause == "certificate":
            return (f"{self.address} is not the tracker of this join token: {self.detail}; "
                    "check the token (syncfs tracker --print-invite on the tracker's machine)")
        return f"{head}: {self.detail}"


def permanent(exc: BaseException, address: str, peer_id: str) -> TrackerRefused | None:
    """``exc`` as a TrackerRefused if it is a refusal that retrying does not cure, else None."""
    if isinstance(exc, NotAdmitted):
        return TrackerRefused(address, exc.cause, exc.told, peer_id)
    if isinstance(exc, WrongServer):
        return TrackerRefused(address, "certificate", f"it presented certificate {exc.got or 'none'}, "
                              f"the token names {exc.expected} (a man in the middle, or the wrong address)")
    return None


class Backoff:
    """How long to wait before the next attempt: quick retries while the tracker is merely
    unreachable, ever slower ones (up to 5 min) while it refuses this peer."""

    def __init__(self) -> None:
        self.delay = 0.0
        self._refused = False

    def connected(self) -> None:
        self.delay = 0.0

    def next(self, refused: bool) -> float:
        if refused != self._refused or not self.delay:
            self._refused = refused
            self.delay = REFUSED_BACKOFF_INITIAL if refused else BACKOFF_INITIAL
        else:
            self.delay = min(self.delay * 2, REFUSED_BACKOFF_MAX if refused else BACKOFF_MAX)
        return self.delay


@dataclasses.dataclass
class Joined:
    """A link through the handshake: the tracker accepted us, nothing else happened yet."""

    link: FramedStream
    accept: Accept


class TrackerLink:
    """The link to the tracker of ``invite`` (TLS pinned to its fingerprint), as ``me``."""

    def __init__(self, engine: Engine, me: Identity, invite: Invite,
                 local_host: str | None, advertise: tuple[str, int]) -> None:
        self.engine = engine
        self.me = me
        self.invite = invite
        self.secret = invite.secret.encode()
        self.host = invite.host
        self.port = invite.port
        self._tls = client_context()
        self.local_host = local_host
        self.advertise = advertise
        self.connected = False
        self.refused = False
        self.last_error = ""
        self._link: FramedStream | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def state(self) -> str:
        """"connected", "refused" (it refuses this peer: see ``last_error``), or
        "connecting" (not reached yet, or lost: retrying)."""
        return "connected" if self.connected else "refused" if self.refused else "connecting"

    async def first_contact(self, timeout: float = FIRST_CONTACT_TIMEOUT) -> Joined | None:
        """One attempt to join, for a start-up: the joined link (hand it to ``run``), or None
        when the tracker is out of reach (``last_error`` says why: work offline). Raises
        TrackerRefused when it refuses this peer."""
        with trio.move_on_after(timeout):
            try:
                return await self._join()
            except TRANSIENT as exc:
                refusal = permanent(exc, self.address, self.me.id)
                if refusal is not None:
                    raise refusal from None
                self.last_error = str(exc) or type(exc).__name__
                return None
        self.last_error = f"no answer within {timeout:g} s"
        return None

    async def run(self, first: Joined | None = None, *,
                  task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Stay linked to the tracker, starting with ``first`` if given."""
        task_status.started()
        backoff = Backoff()
        while True:
            refusal = None
            try:
                joined, first = first or await self._join(), None
                await self._session(joined, backoff)
            except TRANSIENT as exc:
                refusal = permanent(exc, self.address, self.me.id)
                reason = str(refusal or exc) or type(exc).__name__
                if reason != self.last_error or self.connected:
                    log.warning("tracker %s: %s; retrying", self.address, reason)
                self.last_error = reason
            except Exception:
                # a bug in handling one message must not take the mount down
                log.exception("tracker link failed")
            finally:
                self.connected = False
                self._link = None
            self.refused = refusal is not None
            delay = backoff.next(self.refused)
            if self.refused:
                when = time.strftime("%H:%M:%S", time.localtime(time.time() + delay))
                self.last_error = f"{refusal}; next attempt at {when}"
            await trio.sleep(delay)

    async def _join(self) -> Joined:
        with trio.fail_after(CONNECT_TIMEOUT):
            stream = await trio.open_tcp_stream(self.host, self.port, local_address=self.local_host)
        link = FramedStream(stream)
        try:
            with trio.fail_after(CONNECT_TIMEOUT * 2):
                tls = await tls_connect(stream, self._tls, self.invite.fingerprint, "the tracker")
            link.stream = tls
            addr, port = self.advertise
            hello = make_hello("tracker", self.me.id, addr=addr, port=port,
                               last_seq=self.engine.store.last_seq, cert=self.me.cert_der)
            accept = await join_tracker(link, self.me, self.secret, self.invite.fingerprint,
                                        channel_binding(tls), hello)
        except BaseException:
            await link.aclose()
            raise
        return Joined(link, accept)

    async def _session(self, joined: Joined, backoff: Backoff) -> None:
        link, accept = joined.link, joined.accept
        try:
            link.max_frame = accept.max_frame
            if accept.chunking is not None:
                self.engine.set_chunking(accept.chunking)
            self.engine.set_peers(accept.peers)
            self._link = link
            self.connected = True
            self.refused = False
            self.last_error = ""
            backoff.connected()
            log.info("connected to tracker %s", self.address)
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._send_alive, link, accept.interval)
                    nursery.start_soon(self._send_outbox, link)
                    nursery.start_soon(self._send_claims, link)
                    await self._receive(link, accept.interval)
                    nursery.cancel_scope.cancel()
            except ExceptionGroup as group:
                raise first_error(group) from None
        finally:
            await link.aclose()

    async def _receive(self, link: FramedStream, interval: float) -> None:
        while True:
            # the tracker speaks only when something changes: silence is normal; a dead
            # tracker shows as a closed link or a failed ALIVE
            msg = await link.receive()
            if isinstance(msg, Table):
                self.engine.apply_table(msg)
            elif isinstance(msg, Peers):
                self.engine.set_peers(msg.peers)
            elif isinstance(msg, DropAnswer):
                self.engine.pinning.on_answer(msg)
            else:
                raise ProtocolError(f"unexpected {msg.TYPE} from the tracker")

    async def _send_alive(self, link: FramedStream, interval: float) -> None:
        while True:
            await trio.sleep(interval)
            await link.send(Alive())

    async def _send_outbox(self, link: FramedStream) -> None:
        last_id = 0
        outbox = self.engine.outbox
        while True:
            wake = outbox.changed.next()
            batch = outbox.after(last_id, UPDATE_BATCH)
            if batch:
                await link.send(Update(tuple(e for _, e in batch)))
                last_id = batch[-1][0]
                continue
            await wake.wait()

    async def _send_claims(self, link: FramedStream) -> None:
        """Announce completed versions (HAVE) and ask to withdraw from versions we want to
        free (DROP). Both stay in the store until the tracker answers, so a restart or a lost
        link sends them again (``claims``)."""
        claims = self.engine.claims
        sender = ClaimSender()
        while True:
            wake = claims.changed.next()
            for msg in sender.due(*claims.pending()):
                await link.send(msg)
            await wake.wait()
