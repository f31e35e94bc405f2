"""Peer-to-peer chunk transfer: a server that answers GET from the local store, and a pool
of client connections that fetch chunks by digest, verified, from the peers holding them."""

import itertools
import logging
from collections.abc import Callable, Sequence

import trio

from .chunking import digest
from .handshake import HandshakeFailed, client_handshake, make_hello, server_handshake
from .protocol.errors import ProtocolError
from .protocol.framing import DEFAULT_MAX_FRAME
from .protocol.messages import Accept, Data, Get, Missing, PeerInfo
from .wire import FramedStream, LinkClosed

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
IDLE_TIMEOUT = 300.0
MAX_IN_FLIGHT = 32
HANDSHAKE_SLACK = 10.0


class ChunkUnavailable(Exception):
    """No online holder could give us the chunk.

    ``lost`` is True when every holder was asked (or is this peer) and none has it any
    more: the bytes are gone from the share, and waiting will not bring them back.
    """

    def __init__(self, digest_: bytes, why: str, lost: bool = False) -> None:
        super().__init__(digest_.hex()[:16], why)
        self.digest = digest_
        self.why = why
        self.lost = lost

    def __str__(self) -> str:
        return f"chunk {self.digest.hex()[:16]} unavailable: {self.why}"


class BadChunk(Exception):
    """A peer sent bytes whose digest does not match what we asked for."""

    def __init__(self, peer_id: str, digest_: bytes) -> None:
        super().__init__(peer_id, digest_.hex()[:16])
        self.peer_id = peer_id

    def __str__(self) -> str:
        return f"peer {self.peer_id} sent a corrupt chunk {self.args[1]}"


class ChunkServer:
    """Serves chunks of the local store to authenticated peers."""

    def __init__(self, read_chunk: Callable, secret: bytes, peer_id: str, host: str, port: int) -> None:
        # read_chunk: async (digest) -> bytes | None, verified against the digest
        self.read_chunk = read_chunk
        self.secret = secret
        self.peer_id = peer_id
        self.host = host
        self.port = port
        self.bytes_sent = 0

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host=self.host or None)
        self.port = listeners[0].socket.getsockname()[1]
        log.info("serving chunks on %s:%d", self.host or "*", self.port)
        async with trio.open_nursery() as nursery:
            task_status.started(self.port)
            await trio.serve_listeners(self._serve, listeners, handler_nursery=nursery)

    async def _serve(self, stream: trio.SocketStream) -> None:
        link = FramedStream(stream)
        who = "unknown peer"
        try:
            hello = await server_handshake(link, self.secret, role="p2p", server_id=self.peer_id)
            who = hello.peer_id
            await link.send(Accept(max_frame=DEFAULT_MAX_FRAME))
            link.max_frame = DEFAULT_MAX_FRAME
            while True:
                with trio.move_on_after(IDLE_TIMEOUT) as idle:
                    msg = await link.receive()
                if idle.cancelled_caught:
                    log.info("closing idle chunk link from %s", who)
                    return
                if not isinstance(msg, Get):
                    raise ProtocolError(f"expected get, got {msg.TYPE}")
                data = await self.read_chunk(msg.digest)
                if data is None:
                    await link.send(Missing(msg.digest))
                else:
                    await link.send(Data(msg.digest, data))
                    self.bytes_sent += len(data)
        except (HandshakeFailed, ProtocolError) as exc:
            log.warning("chunk link from %s closed: %s", who, exc)
        except (LinkClosed, trio.TooSlowError):
            pass
        finally:
            await link.aclose()


class _Connection:
    """One outgoing link to a peer; requests are pipelined and matched by digest."""

    def __init__(self, info: PeerInfo) -> None:
        self.info = info
        self.link: FramedStream | None = None
        self.waiters: dict[bytes, list[trio.MemorySendChannel]] = {}
        self.ready = trio.Event()
        self.failed: str | None = None
        self.slots = trio.Semaphore(MAX_IN_FLIGHT)
        self.bytes_received = 0

    def fail(self, why: str) -> None:
        self.failed = why
        self.ready.set()
        for chans in self.waiters.values():
            for ch in chans:
                ch.send_nowait(None)
        self.waiters.clear()


class PeerPool:
    """Outgoing chunk links to other peers, opened on demand and shared by all downloads."""

    def __init__(self, secret: bytes, peer_id: str, local_host: str | None) -> None:
        self.secret = secret
        self.peer_id = peer_id
        self.local_host = local_host
        self.peers: dict[str, PeerInfo] = {}
        self._conns: dict[str, _Connection] = {}
        self._nursery: trio.Nursery | None = None
        self._rr = itertools.count()
        self.bytes_received = 0

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def set_peers(self, peers: Sequence[PeerInfo]) -> None:
        self.peers = {p.peer_id: p for p in peers if p.peer_id != self.peer_id}
        for pid in list(self._conns):
            conn = self._conns[pid]
            if pid not in self.peers or self.peers[pid] != conn.info:
                self._drop(pid, "peer went offline")

    def online(self, holders: Sequence[str]) -> list[str]:
        return [h for h in holders if h in self.peers]

    def _drop(self, pid: str, why: str) -> None:
        conn = self._conns.pop(pid, None)
        if conn is not None:
            conn.fail(why)
            if conn.link is not None:
                link = conn.link
                assert self._nursery is not None
                self._nursery.start_soon(link.aclose)

    def _connection(self, pid: str) -> _Connection:
        conn = self._conns.get(pid)
        if conn is None or conn.failed:
            conn = _Connection(self.peers[pid])
            self._conns[pid] = conn
            assert self._nursery is not None
            self._nursery.start_soon(self._run_connection, conn)
        return conn

    async def _run_connection(self, conn: _Connection) -> None:
        info = conn.info
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                stream = await trio.open_tcp_stream(info.addr, info.port, local_address=self.local_host)
            conn.link = link = FramedStream(stream)
            challenge, _ = await client_handshake(link, self.secret, make_hello("p2p", self.peer_id))
            if challenge.peer_id != info.peer_id:
                raise HandshakeFailed(f"expected peer {info.peer_id}, reached {challenge.peer_id}")
            link.max_frame = DEFAULT_MAX_FRAME
            conn.ready.set()
            while True:
                msg = await link.receive()
                if not isinstance(msg, Data | Missing):
                    raise ProtocolError(f"expected data, got {msg.TYPE}")
                chans = conn.waiters.get(msg.digest)
                if not chans:
                    raise ProtocolError("answer to a chunk we did not ask for")
                ch = chans.pop(0)
                if not chans:
                    del conn.waiters[msg.digest]
                ch.send_nowait(msg)
        except (OSError, trio.TooSlowError, LinkClosed, HandshakeFailed, ProtocolError) as exc:
            if self._conns.get(info.peer_id) is conn:
                log.info("chunk link to %s (%s:%d) ended: %s", info.peer_id, info.addr, info.port, exc or type(exc).__name__)
            conn.fail(str(exc) or type(exc).__name__)
            if self._conns.get(info.peer_id) is conn:
                del self._conns[info.peer_id]
        finally:
            if conn.link is not None:
                await conn.link.aclose()

    async def _fetch_from(self, pid: str, want: bytes, length: int) -> bytes | None:
        conn = self._connection(pid)
        with trio.fail_after(CONNECT_TIMEOUT + HANDSHAKE_SLACK):
            await conn.ready.wait()
        if conn.failed or conn.link is None:
            raise LinkClosed(conn.failed or "not connected")
        async with conn.slots:
            send, receive = trio.open_memory_channel[Data | Missing | None](1)
            conn.waiters.setdefault(want, []).append(send)
            await conn.link.send(Get(want))
            # a chunk takes at most a few seconds even on a slow link; a stalled peer loses it
            with trio.fail_after(max(30.0, length / (1 << 20))):
                msg = await receive.receive()
        if not isinstance(msg, Data):
            return None
        if len(msg.data) != length or digest(msg.data) != want:
            log.warning("%s", BadChunk(pid, want))
            self._drop(pid, "sent a corrupt chunk")
            raise BadChunk(pid, want)
        conn.bytes_received += length
        self.bytes_received += length
        return msg.data

    async def fetch(self, want: bytes, length: int, holders: Sequence[str], avoid: set[str] | None = None) -> bytes:
        """Fetch one chunk from one of ``holders`` (online ones, spread round-robin), verified."""
        others = [h for h in holders if h != self.peer_id]
        candidates = [h for h in self.online(others) if not avoid or h not in avoid]
        if not candidates:
            raise ChunkUnavailable(want, "no online peer holds it", lost=not others)
        start = next(self._rr) % len(candidates)
        errors = []
        missing = 0
        for pid in candidates[start:] + candidates[:start]:
            try:
                data = await self._fetch_from(pid, want, length)
            except BadChunk as exc:
                if avoid is not None:
                    avoid.add(pid)
                errors.append(str(exc))
                continue
            except (trio.TooSlowError, LinkClosed) as exc:
                self._drop(pid, f"stalled: {exc or 'timeout'}")
                errors.append(f"{pid}: {exc or 'timed out'}")
                continue
            if data is not None:
                return data
            missing += 1
            errors.append(f"{pid}: missing")
        lost = missing == len(candidates) == len(others)
        raise ChunkUnavailable(want, "; ".join(errors), lost=lost)

