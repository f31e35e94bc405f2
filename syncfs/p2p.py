"""Peer-to-peer chunk transfer: a server that answers GET from the local store, and a pool
of client connections that fetch chunks by digest, verified, from the peers holding them."""

import itertools
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence

import trio

from .chunking import digest
from .handshake import (
    HandshakeFailed,
    client_context,
    p2p_hello,
    p2p_welcome,
    peer_id_of,
    server_context,
    tls_accept,
    tls_connect,
    trust,
)
from .identity import Identity
from .limits import HandshakeSlots
from .protocol.chunklink import Announced, Answer, Asking, Serving, Verdict
from .protocol.errors import ProtocolError
from .protocol.framing import DEFAULT_MAX_FRAME
from .protocol.messages import HasChunks, PeerInfo, Reject
from .sources import Quarantine, plan
from .wire import FramedStream, LinkBroken, LinkClosed, remote_ip

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
IDLE_TIMEOUT = 300.0
SOCKET_BUFFER = 4 * 1024 * 1024
ANSWERS_IN_FLIGHT = 3  # GETs of one link being answered at once
HANDSHAKE_SLACK = 10.0
# the whole opening (TLS and hello) of an incoming link
HANDSHAKE_DEADLINE = 10.0
# incoming links not yet through the handshake: beyond these, new ones are closed at once
MAX_PENDING = 256
MAX_PENDING_PER_IP = 32
# authenticated incoming links (a peer needs one; a few more cover reconnects)
MAX_LINKS_PER_PEER = 4
MAX_LINKS = 512
# a peer that just joined may reach a holder before the holder heard of it from the tracker
CONNECT_RETRIES = 4
CONNECT_RETRY_DELAY = 0.25
# digests a peer may announce to us (HasChunks) before we forget the oldest ones
MAX_KNOWN_PER_PEER = 200_000
ANNOUNCE_TIMEOUT = 5.0
# a warm link that the holder closed after at least this long (its idle timeout) is opened
# again, so that the next on-demand read does not pay for TCP, TLS and hello
WARM_REOPEN_AFTER = 60.0
MAX_WARM_LINKS = 64  # every peer serves at most MAX_LINKS links in all


def _big_buffers(stream: trio.SocketStream) -> None:
    """Socket buffers that hold a whole chunk: a chunk then leaves in one send and arrives
    in few reads, instead of trickling through buffers that autotuning grows only while a
    transfer runs (and that start small again on a link that sat idle)."""
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        try:
            stream.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
        except OSError:
            pass


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


class ChunkWithheld(Exception):
    """Raised by a chunk server's ``read_chunk``: this peer has no good copy of the chunk
    now but is mending one. MISSING would tell the asker the version is gone from here, so
    the link is closed instead, and the asker goes elsewhere or waits."""

    def __init__(self, digest_: bytes, why: str) -> None:
        super().__init__(digest_.hex()[:16], why)
        self.digest = digest_
        self.why = why

    def __str__(self) -> str:
        return f"chunk {self.digest.hex()[:16]} withheld: {self.why}"


class ChunkServer:
    """Serves chunks of the local store to the peers the tracker lists (mutual TLS).

    A link whose peer leaves the tracker's list (offline, revoked) is closed at once.
    """

    def __init__(self, read_chunk: Callable[[bytes], Awaitable[bytes | bytearray | None]], pool: "PeerPool",
                 host: str, port: int,
                 indexed: "trio.MemoryReceiveChannel[list[bytes]] | None" = None) -> None:
        # read_chunk: async (digest) -> bytes | None, verified against the digest
        self.read_chunk = read_chunk
        self._indexed = indexed  # digests to announce as they become servable
        self.pool = pool
        self.peer_id = pool.peer_id
        self.host = host
        self.port = port
        self.bytes_sent = 0
        self._handshakes = HandshakeSlots(MAX_PENDING, MAX_PENDING_PER_IP)
        self._links: dict[str, set[trio.CancelScope]] = {}
        self._answering: set[FramedStream] = set()  # links past the handshake
        self._nursery: trio.Nursery | None = None
        pool.on_peers_changed.append(self._peers_changed)

    def _peers_changed(self) -> None:
        for pid in list(self._links):
            if pid not in self.pool.peers:
                log.info("closing chunk links from %s: no longer listed by the tracker", pid)
                for scope in self._links.pop(pid):
                    scope.cancel()

    async def run(self, *, task_status: "trio.TaskStatus[int]" = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host=self.host or None)
        self.port = listeners[0].socket.getsockname()[1]
        log.info("serving chunks on %s:%d", self.host or "*", self.port)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if self._indexed is not None:
                nursery.start_soon(self._announce_indexed, self._indexed)
            task_status.started(self.port)
            await trio.serve_listeners(self._serve, listeners, handler_nursery=nursery)

    async def _announce_indexed(self, indexed: "trio.MemoryReceiveChannel[list[bytes]]") -> None:
        async for digests in indexed:
            self.announce(digests)

    def announce(self, digests: list[bytes]) -> None:
        """Tell every peer linked to us that we now serve ``digests`` (pieces of versions we
        are still fetching: peers fetching the same version may take them from us)."""
        if not digests or self._nursery is None:
            return
        msg = Serving.announce(digests)
        for link in list(self._answering):
            self._nursery.start_soon(self._send_quietly, link, msg)

    @staticmethod
    async def _send_quietly(link: FramedStream, msg: HasChunks) -> None:
        # a hint: a link too slow to take it now goes without (its own answers end it)
        with trio.move_on_after(ANNOUNCE_TIMEOUT):
            try:
                await link.send(msg)
            except (LinkClosed, LinkBroken):
                pass

    async def _serve(self, stream: trio.SocketStream) -> None:
        remote = remote_ip(stream)
        _big_buffers(stream)
        if sum(len(v) for v in self._links.values()) >= MAX_LINKS:
            log.info("refused a chunk link from %s: too many connections", remote)
            await trio.aclose_forcefully(stream)
            return
        link = FramedStream(stream)
        who = remote
        scope = trio.CancelScope()
        try:
            with self._handshakes.hold(remote) as slot, slot, trio.fail_after(HANDSHAKE_DEADLINE):
                tls = await tls_accept(stream, self.pool.server_tls, remote, bulk=True)
                link.stream = tls
                client_id = peer_id_of(tls) or ""
                who = f"{client_id[:16]} ({remote})"
                await p2p_welcome(link, client_id)
                if client_id not in self.pool.peers:
                    await link.send(Reject("not a peer of this share"))
                    raise HandshakeFailed(f"{client_id} is not on the tracker's list")
                if len(self._links.get(client_id, ())) >= MAX_LINKS_PER_PEER:
                    await link.send(Reject("too many links"))
                    raise HandshakeFailed(f"{client_id} has too many links open")
            if slot.cancelled_caught:
                log.info("closed a pending chunk link from %s to make room for newer ones", remote)
                return
            self._links.setdefault(client_id, set()).add(scope)
            with scope:
                self._answering.add(link)
                await self._answer(link, who)
        except (HandshakeFailed, ProtocolError) as exc:
            log.warning("chunk link from %s closed: %s", who, exc)
        except (LinkClosed, LinkBroken, ChunkWithheld, trio.TooSlowError):
            pass
        finally:
            self._answering.discard(link)
            for pid, scopes in list(self._links.items()):
                scopes.discard(scope)
                if not scopes:
                    del self._links[pid]
            await link.aclose()

    async def _answer(self, link: FramedStream, who: str) -> None:
        serving = Serving(DEFAULT_MAX_FRAME)
        await link.send(serving.opening())
        link.max_frame = serving.max_frame
        # a few requests at a time per link, so that reading (and checking) the next chunk
        # overlaps sending this one; beyond that a peer that pipelines many GETs waits for
        # its own answers (TCP pushes back), and every link gets its turn on the event loop
        slots = trio.Semaphore(ANSWERS_IN_FLIGHT)
        failed: list[BaseException] = []  # what ended the link, raised after the nursery
        async with trio.open_nursery() as nursery:
            try:
                while True:
                    with trio.move_on_after(IDLE_TIMEOUT) as idle:
                        msg = await link.receive()
                    if idle.cancelled_caught:
                        log.info("closing idle chunk link from %s", who)
                        break
                    want = serving.receive(msg)
                    await slots.acquire()
                    nursery.start_soon(self._answer_one, link, want, slots, failed, nursery.cancel_scope)
            except (LinkClosed, LinkBroken, ProtocolError, trio.TooSlowError) as exc:
                failed.append(exc)
            nursery.cancel_scope.cancel()
        if failed:
            raise failed[0]

    async def _answer_one(self, link: FramedStream, want: bytes, slots: trio.Semaphore,
                          failed: list[BaseException], link_scope: trio.CancelScope) -> None:
        try:
            data = await self.read_chunk(want)
            with trio.fail_after(IDLE_TIMEOUT):
                await link.send(Serving.answer(want, data))
            if data is not None:
                self.bytes_sent += len(data)
        except (LinkClosed, LinkBroken, ChunkWithheld, trio.TooSlowError) as exc:
            failed.append(exc)
            link_scope.cancel()
        finally:
            slots.release()


class _Waiter:
    """One request's owner, woken when its GET may go out and when its answer is in."""

    def __init__(self) -> None:
        self.due = trio.Event()
        self.done = trio.Event()
        self.answer: Answer | None = None


class _Connection:
    """One outgoing link to a peer: the trio side of its ``Asking`` conversation."""

    def __init__(self, info: PeerInfo) -> None:
        self.info = info
        self.link: FramedStream | None = None
        self.asking = Asking(digest)
        self.waiters: dict[int, _Waiter] = {}
        self.ready = trio.Event()
        self.broken = False  # ended by the peer or the network, not by this side
        self.bytes_received = 0

    @property
    def failed(self) -> str | None:
        return self.asking.ended

    def ended(self) -> LinkClosed | LinkBroken:
        """The error for a request that the end of this link left without an answer."""
        why = self.asking.ended or "not connected"
        return LinkBroken(why) if self.broken else LinkClosed(why)

    def fail(self, why: str, *, broken: bool) -> None:
        if self.asking.ended is None:
            self.broken = broken
        self.ready.set()
        for ticket in self.asking.end(why):
            waiter = self.waiters.pop(ticket)
            waiter.due.set()
            waiter.done.set()

    def wake_due(self) -> None:
        for ticket in self.asking.due():
            self.waiters[ticket].due.set()

    def deliver(self, answer: Answer) -> None:
        waiter = self.waiters.pop(answer.ticket)
        waiter.answer = answer
        waiter.done.set()

    async def request(self, want: bytes, length: int) -> Answer:
        """Ask for ``want`` and wait for the answer (the deadline runs once the GET is out);
        raises LinkClosed or LinkBroken if the link ends first."""
        assert self.link is not None
        ticket = self.asking.ask(want, length)
        waiter = self.waiters[ticket] = _Waiter()
        try:
            self.wake_due()
            await waiter.due.wait()
            if not waiter.done.is_set():
                await self.link.send(self.asking.get(ticket))
                # a chunk takes at most a few seconds even on a slow link; a stalled peer loses it
                with trio.fail_after(max(30.0, length / (1 << 20))):
                    await waiter.done.wait()
        finally:
            if not waiter.done.is_set():  # given up (timeout, cancelled, failed send)
                self.waiters.pop(ticket, None)
                self.asking.withdraw(ticket)
                self.wake_due()
        if waiter.answer is None:
            # the link ended before the answer: that says nothing about the peer's bytes
            raise self.ended()
        return waiter.answer


class PeerPool:
    """Outgoing chunk links to other peers, opened on demand and shared by all downloads.

    It also keeps the tracker's list of peers (``set_peers``), which decides whom the
    chunk server accepts: ``server_tls`` trusts the certificate of every peer ever listed,
    and the server admits only those listed now.
    """

    def __init__(self, me: Identity | None, peer_id: str, local_host: str | None, *, warm: bool = True) -> None:
        # me: None only where nothing connects (tests of the file system without a network)
        self.me = me
        # keep a link open to every listed peer (opened when the list arrives), so that the
        # first read of a stale file does not wait for a connection to be set up
        self.warm = warm and me is not None
        self.peer_id = peer_id
        self.local_host = local_host
        self.peers: dict[str, PeerInfo] = {}
        self.on_peers_changed: list[Callable[[], None]] = []
        self._client_tls: ssl.SSLContext | None = None
        self._server_tls: ssl.SSLContext | None = None
        self._trusted: set[str] = set()
        self._quarantine = Quarantine()
        self._conns: dict[str, _Connection] = {}
        self._nursery: trio.Nursery | None = None
        self._rr = itertools.count()
        self.bytes_received = 0
        self.received_from: dict[str, int] = {}  # peer id -> chunk bytes it sent us
        # peer id -> digests it announced (HasChunks): pieces of versions it is fetching
        self.known: dict[str, set[bytes]] = {}

    def linked(self) -> list[str]:
        """The peers with an open chunk link from this one."""
        return sorted(pid for pid, c in self._conns.items() if c.ready.is_set() and not c.failed)

    @property
    def client_tls(self) -> ssl.SSLContext:
        if self._client_tls is None:
            assert self.me is not None, "a pool without an identity cannot connect"
            self._client_tls = client_context(self.me)
        return self._client_tls

    @property
    def server_tls(self) -> ssl.SSLContext:
        """Accepts the certificates of every peer the tracker ever listed (``set_peers``)."""
        if self._server_tls is None:
            assert self.me is not None, "a pool without an identity cannot serve"
            self._server_tls = server_context(self.me, mutual=True)
            for p in self.peers.values():
                trust(self._server_tls, p.cert)
                self._trusted.add(p.peer_id)
        return self._server_tls

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def set_peers(self, peers: Sequence[PeerInfo]) -> None:
        # a peer whose certificate we do not know cannot be authenticated: leave it out
        self.peers = {p.peer_id: p for p in peers if p.peer_id != self.peer_id and p.cert}
        if self._server_tls is not None:
            for p in self.peers.values():
                if p.peer_id not in self._trusted:
                    trust(self._server_tls, p.cert)
                    self._trusted.add(p.peer_id)
        for pid in list(self._conns):
            conn = self._conns[pid]
            if pid not in self.peers or self.peers[pid] != conn.info:
                self._drop(pid, "peer went offline")
        self._warm_up()
        for callback in self.on_peers_changed:
            callback()

    def _warm_up(self) -> None:
        """Open a link to every listed peer that has none (see ``warm``)."""
        if not self.warm or self._nursery is None:
            return
        for pid in self.peers:
            if len(self._conns) >= MAX_WARM_LINKS:
                break  # a big share: the rest are linked on first use, as before
            if pid not in self._conns and not self._quarantine.holds(pid, trio.current_time()):
                self._connection(pid)

    def online(self, holders: Sequence[str]) -> list[str]:
        return [h for h in holders if h in self.peers]

    def _drop(self, pid: str, why: str) -> None:
        conn = self._conns.pop(pid, None)
        if conn is not None:
            conn.fail(why, broken=False)
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

    async def _open(self, conn: _Connection) -> FramedStream:
        """Connect, TLS (pinning the peer's fingerprint) and hello, with a few retries."""
        info = conn.info
        assert self.me is not None
        for attempt in range(CONNECT_RETRIES):
            with trio.fail_after(CONNECT_TIMEOUT):
                stream = await trio.open_tcp_stream(info.addr, info.port, local_address=self.local_host)
            _big_buffers(stream)
            link = FramedStream(stream)
            try:
                with trio.fail_after(HANDSHAKE_DEADLINE):
                    link.stream = await tls_connect(stream, self.client_tls, info.peer_id, f"peer {info.peer_id[:16]}",
                                                    bulk=True)
                    await p2p_hello(link, self.me)
                return link
            except LinkBroken as exc:
                # TLS 1.3 tells the client it was refused only when it reads: most likely
                # the holder has not yet heard from the tracker that we joined
                await link.aclose()
                if attempt == CONNECT_RETRIES - 1 or self.peers.get(info.peer_id) != info:
                    raise HandshakeFailed(f"refused by the peer: {exc}") from None
            except BaseException:
                await link.aclose()
                raise
            await trio.sleep(CONNECT_RETRY_DELAY * (attempt + 1))
        raise AssertionError("unreachable")

    async def _run_connection(self, conn: _Connection) -> None:
        info = conn.info
        opened_at: float | None = None
        try:
            conn.link = link = await self._open(conn)
            link.max_frame = DEFAULT_MAX_FRAME
            if conn.failed:
                return
            opened_at = trio.current_time()
            conn.ready.set()
            while True:
                event = conn.asking.receive(await link.receive())
                if isinstance(event, Announced):
                    known = self.known.setdefault(info.peer_id, set())
                    if len(known) + len(event.digests) > MAX_KNOWN_PER_PEER:
                        known.clear()
                    known.update(event.digests)
                elif event is not None:
                    conn.deliver(event)
                conn.wake_due()
        except (OSError, trio.TooSlowError, LinkClosed, LinkBroken, HandshakeFailed, ProtocolError) as exc:
            if self._conns.get(info.peer_id) is conn:
                log.info("chunk link to %s (%s:%d) ended: %s", info.peer_id, info.addr, info.port, exc or type(exc).__name__)
            conn.fail(str(exc) or type(exc).__name__, broken=not isinstance(exc, LinkClosed))
            if self._conns.get(info.peer_id) is conn:
                del self._conns[info.peer_id]
                self.known.pop(info.peer_id, None)  # announced over this link
                if (isinstance(exc, LinkBroken) and opened_at is not None
                        and trio.current_time() - opened_at >= WARM_REOPEN_AFTER):
                    self._warm_up()  # the holder closed an idle link: have one ready again
        finally:
            if conn.link is not None:
                await conn.link.aclose()

    async def _fetch_from(self, pid: str, want: bytes, length: int) -> bytes | None:
        """The chunk from peer ``pid``; None: it answered MISSING. Raises BadChunk (and
        quarantines the peer) for bytes that are not the chunk."""
        conn = self._connection(pid)
        with trio.fail_after(CONNECT_TIMEOUT + HANDSHAKE_SLACK):
            await conn.ready.wait()
        if conn.failed or conn.link is None:
            raise conn.ended()
        answer = await conn.request(want, length)
        if answer.verdict is Verdict.MISSING:
            return None
        if answer.verdict is Verdict.CORRUPT:
            log.warning("%s; not asking it again for %.0f s", BadChunk(pid, want), self._quarantine.period)
            self._quarantine.add(pid, trio.current_time())
            self._drop(pid, "sent a corrupt chunk")
            raise BadChunk(pid, want)
        conn.bytes_received += length
        self.bytes_received += length
        self.received_from[pid] = self.received_from.get(pid, 0) + length
        return answer.data

    async def fetch(self, want: bytes, length: int, holders: Sequence[str], avoid: set[str] | None = None) -> bytes:
        """Fetch one chunk, verified: from a peer that announced it (another peer fetching
        the same version: this spares the holders), else from one of ``holders`` (online
        ones, spread round-robin).

        ``ChunkUnavailable.lost`` counts only the holders' answers: a peer that is not a
        holder and answers MISSING proves nothing about the version (``syncfs.sources``).
        """
        shunned = self._quarantine.held(trio.current_time()) | (avoid or set())
        sources = plan(want, holders, me=self.peer_id, online=self.peers, announced=self.known, shunned=shunned)
        if sources.nobody():
            raise ChunkUnavailable(want, "no online peer holds it", lost=sources.lost(()))
        errors = []
        missing: set[str] = set()
        for pid in sources.order(next(self._rr)):
            if pid not in self.peers:
                errors.append(f"{pid}: went offline")  # left while we asked another
                continue
            try:
                data = await self._fetch_from(pid, want, length)
            except BadChunk as exc:
                if avoid is not None:
                    avoid.add(pid)
                errors.append(str(exc))
                continue
            except (trio.TooSlowError, LinkClosed, LinkBroken) as exc:
                self._drop(pid, f"stalled: {exc or 'timeout'}")
                errors.append(f"{pid}: {exc or 'timed out'}")
                continue
            if data is not None:
                return data
            missing.add(pid)
            if pid not in sources.elsewhere:
                self.known.get(pid, set()).discard(want)  # it dropped that version
            errors.append(f"{pid}: missing")
        raise ChunkUnavailable(want, "; ".join(errors), lost=sources.lost(missing))
