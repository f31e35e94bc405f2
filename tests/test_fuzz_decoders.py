"""Fuzzing the decoders (hypothesis, bounded): whatever arrives, the only outcome besides a
message is ProtocolError, quickly and without building anything large."""

import time
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_protocol_messages import SAMPLES

from syncfs.protocol.errors import ProtocolError
from syncfs.protocol.framing import HANDSHAKE_MAX_FRAME, HEADER, FrameDecoder
from syncfs.protocol.messages import MESSAGE_TYPES, decode_message, encode_message

FUZZ = settings(max_examples=400, deadline=1000, suppress_health_check=list(HealthCheck))
# the whole module must finish within this (checked by the last test)
BUDGET_SECONDS = 60.0
_START: list[float] = []


@pytest.fixture(autouse=True, scope="module")
def _clock():
    _START.append(time.monotonic())

leaves = (
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True) | st.text(max_size=40) | st.binary(max_size=64)
)
values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)


def decode_all(data: bytes, max_frame: int = HANDSHAKE_MAX_FRAME) -> list:
    decoder = FrameDecoder(max_frame)
    decoder.feed(data)
    out = []
    try:
        for payload in decoder.frames():
            out.append(decode_message(payload))
    except ProtocolError:
        pass
    return out


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    decode_all(data)
    decode_all(HEADER.pack(len(data)) + data)


@FUZZ
@given(st.sampled_from(sorted(MESSAGE_TYPES)), st.dictionaries(st.text(max_size=12), values, max_size=8))
def test_random_maps_of_every_type(t: str, fields: dict[str, Any]) -> None:
    payload = dict(fields, t=t)
    try:
        msg = decode_message(payload)
    except ProtocolError:
        return
    assert msg.TYPE == t
    encode_message(msg)  # whatever decodes can be sent on


@FUZZ
@given(st.sampled_from(SAMPLES), st.data())
def test_one_field_of_a_valid_message_replaced(sample, data) -> None:
    wire = sample.to_wire()
    key = data.draw(st.sampled_from(sorted(wire)))
    wire[key] = data.draw(values)
    try:
        decode_message(wire)
    except ProtocolError:
        pass


@FUZZ
@given(st.sampled_from(SAMPLES), st.data())
def test_bytes_of_a_valid_frame_flipped(sample, data) -> None:
    frame = bytearray(encode_message(sample))
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(HEADER.size, len(frame) - 1))
        frame[i] = data.draw(st.integers(0, 255))
    decode_all(bytes(frame), max_frame=1 << 24)


@pytest.mark.parametrize(
    "body",
    [
        b"\xdd\xff\xff\xff\xff",  # an array claiming 4 G elements
        b"\xdf\xff\xff\xff\xff",  # a map claiming 4 G pairs
        b"\xdb\xff\xff\xff\xff",  # a string claiming 4 GiB
        b"\x91" * 50_000,  # nesting 50 000 deep
        msgpack.packb({"t": "update", "entries": [[[[]]]] * 1000}),
    ],
)
def test_bombs_are_refused_cheaply(body: bytes) -> None:
    start = time.monotonic()
    assert decode_all(HEADER.pack(len(body)) + body, max_frame=1 << 24) == []
    assert time.monotonic() - start < 1.0


def test_a_huge_length_is_refused_before_anything_is_buffered() -> None:
    decoder = FrameDecoder(HANDSHAKE_MAX_FRAME)
    decoder.feed(HEADER.pack(2**32 - 1))
    with pytest.raises(ProtocolError):
        list(decoder.frames())


def test_the_fuzzing_stayed_within_its_budget() -> None:
    elapsed = time.monotonic() - _START[0]
    print(f"fuzzing took {elapsed:.1f} s")
    assert elapsed < BUDGET_SECONDS
