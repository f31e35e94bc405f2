"""The trio edge of the protocol: framed messages over a byte stream, with deadlines."""

import logging
import ssl

import trio

from .protocol.errors import ProtocolError
from .protocol.framing import HANDSHAKE_MAX_FRAME, FrameDecoder
from .protocol.messages import Message, decode_message, encode_message

log = logging.getLogger(__name__)

RECEIVE_SIZE = 256 * 1024
DRAIN_MAX = 4 * 1024 * 1024  # per receive: let other tasks run between large frames
# closing TLS sends a close_notify; a peer that reads nothing must not hold us up
CLOSE_TIMEOUT = 2.0


TRANSPORT_RECEIVE_SIZE = 1024 * 1024


class BulkReceive(trio.abc.Stream):
    """A socket stream whose reads take up to 1 MiB when asked for "whatever is there".

    ``trio.SSLStream`` refills from its transport with ``receive_some()`` and no size,
    which a ``trio.SocketStream`` caps at 64 KiB: a 1 MiB chunk took 16 passes through the
    scheduler and TLS's locks on the receiving side, although the socket buffers hold it.
    """

    def __init__(self, inner: trio.SocketStream) -> None:
        self.inner = inner
        self.socket = inner.socket

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(TRANSPORT_RECEIVE_SIZE if max_bytes is None else max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


class LinkClosed(Exception):
    """This side closed the link (another task did, usually) while it was being used."""

    def __init__(self, why: str = "link closed by this side") -> None:
        super().__init__(why)
        self.why = why

    def __str__(self) -> str:
        return self.why


class LinkBroken(Exception):
    """The other side closed the link, or it broke (the network, TLS), while we used it."""

    def __init__(self, why: str = "link closed by the other side") -> None:
        super().__init__(why)
        self.why = why

    def __str__(self) -> str:
        return self.why


class FramedStream:
    """Send and receive whole protocol messages over a trio stream.

    Decoding errors raise ProtocolError; the caller closes the link and logs the reason.
    Using a link this side closed raises LinkClosed; a link the other side ended, LinkBroken.
    """

    def __init__(self, stream: trio.abc.Stream, max_frame: int = HANDSHAKE_MAX_FRAME) -> None:
        self.stream = stream
        self._decoder = FrameDecoder(max_frame)
        self._pending: list[Message] = []
        self._send_lock = trio.Lock()
        self.bytes_received = 0
        self.bytes_sent = 0

    @property
    def max_frame(self) -> int:
        return self._decoder.max_frame

    @max_frame.setter
    def max_frame(self, value: int) -> None:
        self._decoder.max_frame = value

    async def send(self, msg: Message) -> None:
        data = encode_message(msg)
        async with self._send_lock:
            try:
                await self.stream.send_all(data)
            except trio.ClosedResourceError as exc:
                raise LinkClosed() from exc
            except (trio.BrokenResourceError, OSError) as exc:
                raise LinkBroken() from exc
        self.bytes_sent += len(data)

    async def receive(self) -> Message:
        while not self._pending:
            for payload in self._decoder.frames():
                self._pending.append(decode_message(payload))
            if self._pending:
                break
            try:
                data = await self.stream.receive_some(RECEIVE_SIZE)
            except trio.ClosedResourceError as exc:
                raise LinkClosed() from exc
            except (trio.BrokenResourceError, OSError) as exc:
                raise LinkBroken() from exc
            if not data:
                raise LinkBroken()
            self._decoder.feed(data)
            self.bytes_received += len(data) + self._drain_tls()
        return self._pending.pop(0)

    def _drain_tls(self) -> int:
        """Feed the decoder what TLS can decrypt from bytes already received, without waiting.

        ``trio.SSLStream.receive_some`` hands out one TLS record (at most 16 KiB) per call
        and passes through the scheduler each time; a 1 MiB chunk would take 64 of those.
        Reading the TLS object directly until it wants more bytes from the socket gets the
        same data in one go (the socket itself is still read only by ``receive_some``).
        """
        tls = getattr(self.stream, "_ssl_object", None) if isinstance(self.stream, trio.SSLStream) else None
        if tls is None:
            return 0
        total = 0
        while total < DRAIN_MAX:
            try:
                data = tls.read(RECEIVE_SIZE)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except ssl.SSLError as exc:
                raise LinkBroken(f"TLS: {exc}") from exc
            if not data:
                break  # the other side closed: the next receive_some says so
            self._decoder.feed(data)
            total += len(data)
        return total

    async def receive_within(self, seconds: float) -> Message:
        with trio.fail_after(seconds):
            return await self.receive()

    async def expect(self, cls: type[Message], seconds: float) -> Message:
        msg = await self.receive_within(seconds)
        if not isinstance(msg, cls):
            raise ProtocolError(f"expected {cls.TYPE}, got {msg.TYPE}")
        return msg

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + CLOSE_TIMEOUT
            try:
                await self.stream.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
        if scope.cancelled_caught:
            await trio.aclose_forcefully(self.stream)


def remote_ip(stream: trio.abc.Stream) -> str:
    """The address at the other end of a TCP stream, for logs and per-address limits."""
    sock = getattr(stream, "socket", None)
    try:
        return str(sock.getpeername()[0]) if sock is not None else "?"
    except OSError:
        return "?"
