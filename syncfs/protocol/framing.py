"""Frames: a 4-byte big-endian length, then one msgpack map with a 't' key."""

import struct
from collections.abc import Iterator
from typing import Any

import msgpack

from .errors import FrameTooLarge, ProtocolError

HEADER = struct.Struct(">I")
DEFAULT_MAX_FRAME = 16 * 1024 * 1024
# Before ACCEPT the other side is unknown: keep its frames small.
HANDSHAKE_MAX_FRAME = 64 * 1024


def encode_frame(payload: dict[str, Any]) -> bytes:
    body = msgpack.packb(payload, use_bin_type=True)
    return HEADER.pack(len(body)) + body


class FrameDecoder:
    """Feed bytes in, take decoded maps out; raises ProtocolError on the first bad frame."""

    def __init__(self, max_frame: int = HANDSHAKE_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()

    def feed(self, data: bytes | bytearray) -> None:
        self._buf += data

    def frames(self) -> Iterator[dict[str, Any]]:
        while len(self._buf) >= HEADER.size:
            (length,) = HEADER.unpack_from(self._buf)
            if length > self.max_frame:
                raise FrameTooLarge(length, self.max_frame)
            if len(self._buf) < HEADER.size + length:
                return
            # decoded in place: a chunk's bytes are copied once (by msgpack), not three times
            with memoryview(self._buf) as view, view[HEADER.size : HEADER.size + length] as body:
                payload = decode_body(body)
            del self._buf[: HEADER.size + length]
            yield payload

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a whole frame."""
        return len(self._buf)


def decode_body(body: bytes | memoryview) -> dict[str, Any]:
    try:
        payload = msgpack.unpackb(body, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises many types for garbage
        raise ProtocolError(f"undecodable frame: {type(exc).__name__}") from None
    if not isinstance(payload, dict):
        raise ProtocolError("frame is not a map")
    if not isinstance(payload.get("t"), str):
        raise ProtocolError("frame has no type")
    return payload
