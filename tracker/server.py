"""The tracker server: who is online, the global file table, and its broadcast.

Each connection is a session: handshake, ACCEPT, then three tasks in one nursery (receive
messages, send from the session's bounded queue, watch liveness). Changes are merged and
committed synchronously in the receive task, then put on every online session's queue
without waiting, so every peer sees the accepted rows in seq order and a slow peer (full
queue) is dropped instead of holding up the others; it reconnects and catches up by the
delta.
"""

import dataclasses
import logging
from collections.abc import Awaitable

import trio

from syncfs.handshake import (
    HandshakeFailed,
    admit_peer,
    channel_binding,
    server_context,
    tls_accept,
)
from syncfs.identity import Identity
from syncfs.limits import HandshakeSlots
from syncfs.protocol.errors import ProtocolError
from syncfs.protocol.framing import DEFAULT_MAX_FRAME
from syncfs.protocol.messages import (
    Accept,
    Alive,
    ChunkParams,
    Drop,
    DropAnswer,
    Have,
    Message,
    PeerInfo,
    Peers,
    Reject,
    Table,
    TableRow,
    Update,
)
from syncfs.wire import FramedStream, LinkBroken, LinkClosed, remote_ip

from .state import TrackerState

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 2.0
DEFAULT_CHUNKING = ChunkParams(256 * 1024, 1024 * 1024, 4 * 1024 * 1024)
MAX_FRAME = DEFAULT_MAX_FRAME
BATCH_ROWS = 500
QUEUE_SIZE = 1000
SILENT_INTERVALS = 3
HANDSHAKE_DEADLINE = 15.0
# connections not yet through the handshake: beyond these, new ones are closed at once
MAX_PENDING = 512
MAX_PENDING_PER_IP = 64
MAX_SESSIONS = 10_000
REVOCATION_POLL = 1.0
MIN_SEND_TIMEOUT = 10.0
UNSPECIFIED_ADDRS = ("", "0.0.0.0", "::")


class Dropped(Exception):
    """We closed a session on purpose (silent, too slow, full queue)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


@dataclasses.dataclass(eq=False)
class _Session:
    """One accepted peer connection."""

    info: PeerInfo
    link: FramedStream
    queue: trio.MemorySendChannel[Message]
    outbox: trio.MemoryReceiveChannel[Message]
    cancel_scope: trio.CancelScope
    last_activity: float
    last_bytes: int = 0
    drop_reason: str = ""

    @property
    def peer_id(self) -> str:
        return self.info.peer_id

    def drop(self, reason: str) -> None:
        if not self.drop_reason:
            self.drop_reason = reason
        self.cancel_scope.cancel()


class TrackerServer:
    """Serve the tracker protocol on ``host:port`` (port 0: any free port).

    ``run`` reports the bound port through ``task_status``; cancelling it closes every
    connection. ``state`` is owned by the caller (it is not closed here).
    """

    def __init__(
        self,
        state: TrackerState,
        secret: bytes,
        *,
        identity: Identity,
        host: str = "0.0.0.0",
        port: int = 0,
        interval: float = DEFAULT_INTERVAL,
        chunking: ChunkParams = DEFAULT_CHUNKING,
        queue_size: int = QUEUE_SIZE,
        exit_when_idle: float | None = None,
    ) -> None:
        self.state = state
        self.secret = secret
        self.host = host
        self.port = port
        self.interval = interval
        self.chunking = chunking
        self.queue_size = queue_size
        self.identity = identity
        self._tls = server_context(identity)
        self._online: dict[str, _Session] = {}
        self._handshakes = HandshakeSlots(MAX_PENDING, MAX_PENDING_PER_IP)
        self._revoked = state.revoked()
        self.exit_when_idle = exit_when_idle
        self._connections = 0  # open TCP connections, in the handshake or past it
        self._last_contact = 0.0

    @property
    def online(self) -> list[PeerInfo]:
        """The peers connected now, in the order they joined."""
        return [s.info for s in self._online.values()]

    @property
    def silent_after(self) -> float:
        return SILENT_INTERVALS * self.interval

    @property
    def send_timeout(self) -> float:
        return max(MIN_SEND_TIMEOUT, self.silent_after)

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled, or (with ``exit_when_idle``) until no connection has been
        open for that many seconds: then return."""
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        port = listeners[0].socket.getsockname()[1]
        log.info("tracker listening on %s:%d", self.host, port)
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._serve_connection, listeners)
            nursery.start_soon(self._watch_revocations)
            if self.exit_when_idle is not None:
                nursery.start_soon(self._exit_when_idle, self.exit_when_idle, nursery.cancel_scope)
            task_status.started(port)

    async def _exit_when_idle(self, idle: float, scope: trio.CancelScope) -> None:
        """End ``run`` once no connection (a peer, or one being admitted) was open for ``idle``
        seconds; any connection, even a probe, starts the count again."""
        self._last_contact = trio.current_time()
        while True:
            now = trio.current_time()
            if self._connections:
                self._last_contact = now
            elif now - self._last_contact >= idle:
                log.info("no peer for %g s: stopping", idle)
                scope.cancel()
                return
            await trio.sleep(min(1.0, idle / 4))

    async def _watch_revocations(self) -> None:
        """Pick up ``syncfs tracker --revoke`` (written to the state by another process)."""
        while True:
            await trio.sleep(REVOCATION_POLL)
            self.apply_revocations()

    def apply_revocations(self) -> None:
        revoked = self.state.revoked()
        if revoked == self._revoked:
            return
        self._revoked = revoked
        for peer_id in revoked & self._online.keys():
            session = self._online[peer_id]
            log.warning("dropping %s: revoked", peer_id)
            session.drop("revoked")
            self._forget(session)
        self._broadcast(Peers(tuple(self.online)))

    # -- one connection --------------------------------------------------------

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        remote = remote_ip(stream)
        self._connections += 1
        try:
            await self._serve_counted(stream, remote)
        finally:
            self._connections -= 1
            self._last_contact = trio.current_time()

    async def _serve_counted(self, stream: trio.SocketStream, remote: str) -> None:
        if len(self._online) >= MAX_SESSIONS:
            log.info("refused a connection from %s: too many connections", remote)
            await trio.aclose_forcefully(stream)
            return
        link = FramedStream(stream)
        try:
            await self._session(link, stream, remote)
        except Exception:
            # a bug must not take the whole tracker down with it
            log.exception("unexpected error on the connection from %s", remote)
        finally:
            await link.aclose()

    async def _session(self, link: FramedStream, stream: trio.SocketStream, remote: str) -> None:
        try:
            with self._handshakes.hold(remote) as slot, slot, trio.fail_after(HANDSHAKE_DEADLINE):
                tls = await tls_accept(stream, self._tls, remote)
                link.stream = tls
                hello = await admit_peer(link, self.identity.id, self.secret,
                                         channel_binding(tls), self._revoked)
            if slot.cancelled_caught:
                log.info("closed a pending connection from %s to make room for newer ones", remote)
                return
        except HandshakeFailed as exc:
            log.warning("handshake with %s failed: %s", remote, exc)
            return
        except ProtocolError as exc:
            log.warning("handshake with %s failed: %s", remote, exc)
            return
        except trio.TooSlowError:
            log.warning("handshake with %s timed out", remote)
            return
        except (LinkClosed, LinkBroken):
            log.info("%s closed the link during the handshake", remote)
            return
        self.state.admit(hello.peer_id, hello.cert)

        old = self._online.get(hello.peer_id)
        if old is not None:
            if trio.current_time() - old.last_activity < self.silent_after:
                log.warning("refused %s from %s: already connected", hello.peer_id, remote)
                with trio.move_on_after(self.send_timeout):
                    try:
                        await link.send(Reject(f"peer id {hello.peer_id} is already connected"))
                    except (LinkClosed, LinkBroken):
                        pass
                return
            old.drop("replaced by a new connection")
            self._forget(old)

        addr = remote if hello.addr in UNSPECIFIED_ADDRS else hello.addr
        info = PeerInfo(hello.peer_id, addr, hello.port, hello.cert)
        queue, outbox = trio.open_memory_channel[Message](self.queue_size)
        session = _Session(info, link, queue, outbox, trio.CancelScope(), trio.current_time())
        since = hello.last_seq
        upto = self.state.current_seq
        if since > upto:
            log.warning(
                "%s has seen seq %d but the table is at %d: sending it everything",
                hello.peer_id,
                since,
                upto,
            )
            since = 0
        # join and take the delta's upper bound in one step: every later change is on
        # the session's queue, every earlier one in the delta
        self._online[info.peer_id] = session
        log.info("%s joined from %s:%d (since seq %d)", info.peer_id, addr, info.port, since)
        try:
            self._broadcast(Peers(tuple(self.online)))
            accept = Accept(
                interval=self.interval,
                chunking=self.chunking,
                seq=upto,
                max_frame=MAX_FRAME,
                peers=tuple(self.online),
            )
            with session.cancel_scope:
                await self._guard(session, self._send(session, accept), done=False)
                link.max_frame = MAX_FRAME
                session.last_bytes = link.bytes_received
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._guard, session, self._sender(session, since, upto))
                    nursery.start_soon(self._guard, session, self._receiver(session))
                    nursery.start_soon(self._guard, session, self._watchdog(session))
        finally:
            self._forget(session)
            self._broadcast(Peers(tuple(self.online)))
            log.info("%s left: %s", info.peer_id, session.drop_reason or "closed")

    async def _guard(self, session: _Session, work: Awaitable[None], done: bool = True) -> None:
        """Run one of a session's tasks; any way it fails closes the session.

        ``done``: ending normally closes the session too (true for its long-lived tasks).
        """
        peer = session.peer_id
        try:
            await work
        except ProtocolError as exc:
            log.warning("closing %s: protocol error: %s", peer, exc)
            session.drop(f"protocol error: {exc}")
        except (LinkClosed, LinkBroken):
            session.drop("link closed")
        except Dropped as exc:
            log.warning("dropping %s: %s", peer, exc)
            session.drop(str(exc))
        except trio.TooSlowError:
            log.warning("dropping %s: it does not take what we send", peer)
            session.drop("too slow to receive")
        else:
            if done:
                session.drop("closed")

    async def _send(self, session: _Session, msg: Message) -> None:
        with trio.fail_after(self.send_timeout):
            await session.link.send(msg)

    async def _sender(self, session: _Session, since: int, upto: int) -> None:
        """Send the delta ``(since, upto]`` from the table, then whatever is queued."""
        while True:
            rows = self.state.rows_since(since, BATCH_ROWS, upto)
            last = not rows or rows[-1].seq >= upto or len(rows) < BATCH_ROWS
            seq = upto if last else rows[-1].seq
            await self._send(session, Table(tuple(rows), seq, caught_up=last))
            if last:
                break
            since = rows[-1].seq
        async for msg in session.outbox:
            await self._send(session, msg)

    async def _receiver(self, session: _Session) -> None:
        while True:
            msg = await session.link.receive()
            session.last_activity = trio.current_time()
            if isinstance(msg, Alive):
                continue
            if isinstance(msg, Update):
                rows = self.state.apply_update(session.peer_id, msg.entries)
                log.debug(
                    "%s: update of %d entries, %d rows accepted",
                    session.peer_id,
                    len(msg.entries),
                    len(rows),
                )
                self._broadcast_rows(rows)
            elif isinstance(msg, Have):
                row = self.state.add_holder(session.peer_id, msg.path, msg.version)
                if row is not None:
                    self._broadcast_rows([row])
            elif isinstance(msg, Drop):
                # decided against the sessions online now, in turn with every other
                # withdrawal, so two peers freeing the last copies at once cannot both win
                outcome = self.state.drop_holder(session.peer_id, msg.path, msg.version, self._online.keys())
                if isinstance(outcome, str):
                    log.info("%s may not drop %s: %s", session.peer_id, msg.path, outcome)
                    self._send_to(session, DropAnswer(msg.path, msg.version, False, outcome))
                else:
                    log.debug("%s dropped %s", session.peer_id, msg.path)
                    # the row first: by the answer, the peer has seen itself go from the holders
                    self._broadcast_rows([outcome])
                    self._send_to(session, DropAnswer(msg.path, msg.version, True))
            else:
                raise ProtocolError(f"unexpected {msg.TYPE} message")

    async def _watchdog(self, session: _Session) -> None:
        """Drop the session once nothing (not even part of a frame) arrived for 3 intervals."""
        link = session.link
        while True:
            if link.bytes_received != session.last_bytes:
                session.last_bytes = link.bytes_received
                session.last_activity = trio.current_time()
            silent = trio.current_time() - session.last_activity
            if silent >= self.silent_after:
                raise Dropped(f"silent for {silent:.1f} s")
            await trio.sleep(min(self.interval / 4, self.silent_after - silent))

    # -- the online table and broadcast ---------------------------------------

    def _forget(self, session: _Session) -> None:
        if self._online.get(session.peer_id) is session:
            del self._online[session.peer_id]
            session.queue.close()

    def _broadcast_rows(self, rows: list[TableRow]) -> None:
        for start in range(0, len(rows), BATCH_ROWS):
            batch = tuple(rows[start : start + BATCH_ROWS])
            self._broadcast(Table(batch, batch[-1].seq, caught_up=True))

    def _broadcast(self, msg: Message) -> None:
        """Queue ``msg`` for every online peer, never waiting; a full queue drops its peer."""
        for session in list(self._online.values()):
            self._send_to(session, msg)

    def _send_to(self, session: _Session, msg: Message) -> None:
        """Queue ``msg`` for one peer, after everything broadcast before it."""
        try:
            session.queue.send_nowait(msg)
        except trio.WouldBlock:
            log.warning("dropping %s: its outgoing queue is full", session.peer_id)
            session.drop("outgoing queue full")
            self._forget(session)
        except trio.ClosedResourceError:
            pass

