"""The peer's link to the tracker: connect, hand over the outbox, apply the table, stay alive.

When the tracker is unreachable the mount keeps working; this task retries with backoff and
catches up by asking for the changes after the last sequence it applied.
"""

import logging

import trio

from .claims import ClaimSender
from .engine import Engine
from .errors import first_error
from .handshake import (
    HandshakeFailed,
    channel_binding,
    client_context,
    join_tracker,
    make_hello,
    tls_connect,
)
from .identity import Identity
from .invite import Invite
from .protocol.errors import ProtocolError
from .protocol.messages import Alive, DropAnswer, Peers, Table, Update
from .wire import FramedStream, LinkBroken, LinkClosed

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 2.0
UPDATE_BATCH = 500


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
        self.last_error = ""
        self._link: FramedStream | None = None

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        backoff = BACKOFF_INITIAL
        while True:
            try:
                await self._session()
            except (OSError, trio.TooSlowError, LinkClosed, LinkBroken, HandshakeFailed, ProtocolError) as exc:
                reason = str(exc) or type(exc).__name__
                if reason != self.last_error or self.connected:
                    log.warning("tracker %s:%d: %s; retrying", self.host, self.port, reason)
                self.last_error = reason
                if self.connected:
                    backoff = BACKOFF_INITIAL
            except Exception:
                # a bug in handling one message must not take the mount down
                log.exception("tracker link failed")
            finally:
                self.connected = False
                self._link = None
            await trio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _session(self) -> None:
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
            link.max_frame = accept.max_frame
            if accept.chunking is not None:
                self.engine.set_chunking(accept.chunking)
            self.engine.set_peers(accept.peers)
            self._link = link
            self.connected = True
            self.last_error = ""
            log.info("connected to tracker %s:%d", self.host, self.port)
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
