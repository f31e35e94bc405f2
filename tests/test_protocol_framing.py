"""Framing: length-prefixed msgpack maps, decoded incrementally and defensively."""

import struct

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncfs.protocol.errors import FrameTooLarge, ProtocolError
from syncfs.protocol.framing import (
    DEFAULT_MAX_FRAME,
    HANDSHAKE_MAX_FRAME,
    HEADER,
    FrameDecoder,
    decode_body,
    encode_frame,
)

FAST = settings(max_examples=150, deadline=None)

frame_payloads = st.dictionaries(
    st.text(max_size=8),
    st.none()
    | st.booleans()
    | st.integers(-(1 << 63), (1 << 63) - 1)
    | st.text(max_size=30)
    | st.binary(max_size=60)
    | st.lists(st.integers(0, 9), max_size=5),
    max_size=5,
).map(lambda d: {**d, "t": "x"})


def raw_frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def test_encode_frame_layout() -> None:
    frame = encode_frame({"t": "alive"})
    (length,) = struct.unpack(">I", frame[:4])
    assert HEADER.size == 4 and length == len(frame) - 4
    assert msgpack.unpackb(frame[4:]) == {"t": "alive"}


@FAST
@given(st.lists(frame_payloads, min_size=1, max_size=5))
def test_round_trip_whole_and_byte_by_byte(payloads: list[dict]) -> None:
    stream = b"".join(encode_frame(p) for p in payloads)

    whole = FrameDecoder(DEFAULT_MAX_FRAME)
    whole.feed(stream)
    assert list(whole.frames()) == payloads
    assert whole.pending == 0

    trickle = FrameDecoder(DEFAULT_MAX_FRAME)
    got = []
    for i in range(len(stream)):
        trickle.feed(stream[i : i + 1])
        got.extend(trickle.frames())
    assert got == payloads
    assert trickle.pending == 0


@FAST
@given(frame_payloads, st.data())
def test_partial_frames_wait_for_the_rest(payload: dict, data: st.DataObject) -> None:
    frame = encode_frame(payload)
    cut = data.draw(st.integers(0, len(frame) - 1))
    decoder = FrameDecoder()
    decoder.feed(frame[:cut])
    assert list(decoder.frames()) == []
    assert decoder.pending == cut
    decoder.feed(frame[cut:])
    assert list(decoder.frames()) == [payload]


def test_default_limit_is_the_handshake_limit() -> None:
    assert FrameDecoder().max_frame == HANDSHAKE_MAX_FRAME < DEFAULT_MAX_FRAME


def test_frame_at_the_limit_is_accepted() -> None:
    payload = {"t": "data", "data": b""}
    overhead = len(encode_frame(payload)) - 4
    payload["data"] = b"x" * (1000 - overhead - 2)  # bin8 -> bin16 header grows by 1..2
    frame = encode_frame(payload)
    decoder = FrameDecoder(max_frame=len(frame) - 4)
    decoder.feed(frame)
    assert list(decoder.frames()) == [payload]


@pytest.mark.parametrize("limit", [0, 10, HANDSHAKE_MAX_FRAME])
def test_oversized_frame_is_refused_from_its_header(limit: int) -> None:
    decoder = FrameDecoder(max_frame=limit)
    decoder.feed(struct.pack(">I", limit + 1))  # no body yet: the header alone decides
    with pytest.raises(FrameTooLarge) as info:
        list(decoder.frames())
    assert info.value.length == limit + 1 and info.value.limit == limit
    assert isinstance(info.value, ProtocolError)
    assert str(limit + 1) in str(info.value)


def test_huge_length_is_refused() -> None:
    decoder = FrameDecoder(DEFAULT_MAX_FRAME)
    decoder.feed(b"\xff\xff\xff\xff")
    with pytest.raises(FrameTooLarge):
        list(decoder.frames())


@pytest.mark.parametrize(
    "body, why",
    [
        (b"", "undecodable"),
        (b"\xc1", "undecodable"),  # a byte msgpack never uses
        (b"\x81\xa1t", "undecodable"),  # truncated map
        (b"\x81\xa1t\xa1x\x00", "undecodable"),  # trailing bytes
        (msgpack.packb([1, 2]), "not a map"),
        (msgpack.packb("t"), "not a map"),
        (msgpack.packb(None), "not a map"),
        (msgpack.packb({"x": 1}), "no type"),
        (msgpack.packb({"t": 1}), "no type"),
        (msgpack.packb({"t": b"alive"}), "no type"),
        (msgpack.packb({1: "x", "t": "alive"}), "undecodable"),  # non-str key
        (b"\xdf\xff\xff\xff\xff", "undecodable"),  # map claims 4G items
        (b"\x91" * 100_000 + b"\xc0", "undecodable"),  # nested too deep
        (b"\xa2\xff\xfe", "undecodable"),  # invalid UTF-8 in a str
    ],
)
def test_garbage_is_a_protocol_error(body: bytes, why: str) -> None:
    decoder = FrameDecoder(DEFAULT_MAX_FRAME)
    decoder.feed(raw_frame(body))
    with pytest.raises(ProtocolError, match=why):
        list(decoder.frames())
    with pytest.raises(ProtocolError):
        decode_body(body)


def test_good_frames_before_garbage_come_out_first() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode_frame({"t": "a"}) + raw_frame(b"\xc1"))
    frames = decoder.frames()
    assert next(frames) == {"t": "a"}
    with pytest.raises(ProtocolError):
        next(frames)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(1, 64))
def test_random_bytes_only_raise_protocol_error(data: bytes, step: int) -> None:
    decoder = FrameDecoder(max_frame=4096)
    try:
        for i in range(0, len(data), step):
            decoder.feed(data[i : i + step])
            for frame in decoder.frames():
                assert isinstance(frame, dict) and isinstance(frame["t"], str)
    except ProtocolError:
        pass
