"""Messages and entries: round trips, strict decoding of every field, and a decode fuzz.

The hypothesis strategies here (``entries``, ``messages``, ``paths``, ``versions``, ...)
can be imported by other tests: ``from test_protocol_messages import entries``.
"""

import dataclasses
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncfs.protocol.entries import DIGEST_SIZE, Chunk, Entry, Kind
from syncfs.protocol.errors import ProtocolError
from syncfs.protocol.framing import DEFAULT_MAX_FRAME, FrameDecoder, encode_frame
from syncfs.protocol.messages import (
    MESSAGE_TYPES,
    Accept,
    Alive,
    Auth,
    Challenge,
    ChunkParams,
    Data,
    Drop,
    DropAnswer,
    Get,
    HasChunks,
    Have,
    Hello,
    Message,
    Missing,
    PeerInfo,
    Peers,
    Reject,
    Table,
    TableRow,
    Update,
    decode_message,
    encode_message,
)

UINT = st.integers(min_value=0, max_value=(1 << 63) - 1)
SMALL_UINT = st.integers(min_value=0, max_value=1 << 40)
INT64 = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)

peer_ids = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="/"),
    min_size=1,
    max_size=64,
)

# any code point but surrogates, '/' and NUL
part_chars = st.characters(exclude_categories=["Cs"], exclude_characters="/\0")
path_parts = st.text(alphabet=part_chars, min_size=1, max_size=40).filter(
    lambda p: p not in (".", "..") and len(p.encode()) <= 255
)
paths = st.lists(path_parts, min_size=1, max_size=6).map("/".join)

versions = st.dictionaries(peer_ids, UINT, max_size=4)
digests = st.binary(min_size=DIGEST_SIZE, max_size=DIGEST_SIZE)
chunk_lists = st.lists(
    st.builds(Chunk, digests, st.integers(min_value=0, max_value=1 << 24)), max_size=4
).map(tuple)
targets = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\0"), max_size=60
)


@st.composite
def entries(draw: st.DrawFn) -> Entry:
    kind = draw(st.sampled_from(Kind))
    deleted = draw(st.booleans())
    chunks = draw(chunk_lists) if kind is Kind.FILE else ()
    if kind is Kind.FILE and not deleted:
        size = sum(c.length for c in chunks)
    else:
        size = draw(SMALL_UINT)
    return Entry(
        path=draw(paths),
        kind=kind,
        size=size,
        mode=draw(st.integers(min_value=0, max_value=0o7777)),
        mtime_ns=draw(INT64),
        version=draw(versions),
        chunks=chunks,
        deleted=deleted,
        target=draw(targets) if kind is Kind.SYMLINK else "",
        held=draw(st.booleans()),
        held_by=tuple(draw(st.lists(peer_ids, max_size=3))),
    )


def short_text(limit: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=min(limit, 40))


nonces = st.binary(min_size=16, max_size=64)
proofs = st.binary(min_size=32, max_size=32)
ports = st.integers(min_value=0, max_value=65535)
peer_infos = st.builds(PeerInfo, peer_id=peer_ids, addr=short_text(255), port=ports)


@st.composite
def chunk_params(draw: st.DrawFn) -> ChunkParams:
    a, b, c = sorted(draw(st.lists(st.integers(64, 16 * 1024 * 1024), min_size=3, max_size=3)))
    return ChunkParams(a, b, c)


table_rows = st.builds(
    TableRow, entry=entries(), seq=UINT, holders=st.lists(peer_ids, max_size=3).map(tuple)
)

MESSAGE_STRATEGIES: dict[type[Message], st.SearchStrategy[Message]] = {
    Hello: st.builds(
        Hello,
        proto=short_text(32),
        ver=UINT,
        role=short_text(16),
        peer_id=peer_ids,
        nonce=nonces,
        addr=short_text(255),
        port=ports,
        last_seq=UINT,
        cert=st.binary(max_size=64),
    ),
    Challenge: st.builds(Challenge, nonce=nonces, peer_id=peer_ids),
    Auth: st.builds(Auth, proof=proofs, sig=st.binary(min_size=8, max_size=256)),
    Accept: st.builds(
        Accept,
        interval=st.floats(min_value=1e-3, max_value=1e5),
        chunking=st.none() | chunk_params(),
        seq=UINT,
        max_frame=UINT,
        peers=st.lists(peer_infos, max_size=3).map(tuple),
    ),
    Reject: st.builds(Reject, reason=short_text(1024)),
    Alive: st.just(Alive()),
    Update: st.builds(Update, entries=st.lists(entries(), max_size=3).map(tuple)),
    Table: st.builds(
        Table,
        rows=st.lists(table_rows, max_size=3).map(tuple),
        seq=UINT,
        caught_up=st.booleans(),
    ),
    Have: st.builds(Have, path=paths, version=versions),
    Drop: st.builds(Drop, path=paths, version=versions),
    DropAnswer: st.builds(DropAnswer, path=paths, version=versions, granted=st.booleans(),
                          reason=short_text(1024)),
    Peers: st.builds(Peers, peers=st.lists(peer_infos, max_size=3).map(tuple)),
    Get: st.builds(Get, digest=digests),
    Data: st.builds(Data, digest=digests, data=st.binary(max_size=300)),
    Missing: st.builds(Missing, digest=digests),
    HasChunks: st.builds(HasChunks, digests=st.lists(digests, max_size=5).map(tuple)),
}

messages = st.one_of(*MESSAGE_STRATEGIES.values())

# msgpack-encodable values of every shape, for fuzzing decoders
msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1)
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def through_the_wire(msg: Message) -> Message:
    decoder = FrameDecoder(DEFAULT_MAX_FRAME)
    decoder.feed(encode_message(msg))
    (frame,) = decoder.frames()
    assert decoder.pending == 0
    return decode_message(frame)


def decode_frame(payload: Any) -> Message:
    decoder = FrameDecoder(DEFAULT_MAX_FRAME)
    decoder.feed(encode_frame(payload))
    (frame,) = decoder.frames()
    return decode_message(frame)


# ----------------------------------------------------------------------------- round trips


def test_every_message_type_has_a_strategy() -> None:
    assert set(MESSAGE_STRATEGIES) == set(MESSAGE_TYPES.values())
    assert {cls.TYPE for cls in MESSAGE_STRATEGIES} == set(MESSAGE_TYPES)


@pytest.mark.parametrize("cls", list(MESSAGE_STRATEGIES), ids=lambda c: c.TYPE)
@FAST
@given(data=st.data())
def test_message_round_trip(cls: type[Message], data: st.DataObject) -> None:
    msg = data.draw(MESSAGE_STRATEGIES[cls])
    back = through_the_wire(msg)
    assert type(back) is cls
    assert back == msg


@FAST
@given(entries())
def test_entry_round_trip(entry: Entry) -> None:
    wire = msgpack.unpackb(msgpack.packb(entry.to_wire(), use_bin_type=True), raw=False)
    assert Entry.from_wire(wire) == entry


@FAST
@given(st.lists(messages, min_size=1, max_size=4))
def test_pipelined_messages_fed_byte_by_byte(msgs: list[Message]) -> None:
    stream = b"".join(encode_message(m) for m in msgs)
    decoder = FrameDecoder(DEFAULT_MAX_FRAME)
    got = []
    for i in range(len(stream)):
        decoder.feed(stream[i : i + 1])
        got.extend(decode_message(f) for f in decoder.frames())
    assert got == msgs


# ----------------------------------------------------------------------------- strictness

SAMPLE_ENTRY = Entry(
    path="dir/file.txt",
    kind=Kind.FILE,
    size=10,
    mode=0o644,
    mtime_ns=1_700_000_000_000_000_000,
    version={"peer-a": 3, "peer-b": 1},
    chunks=(Chunk(b"\x01" * 32, 4), Chunk(b"\x02" * 32, 6)),
)

SAMPLES: list[Message] = [
    Hello(proto="syncfs", ver=1, role="tracker", peer_id="peer-a", nonce=b"n" * 32,
          addr="127.0.0.12", port=7000, last_seq=5),
    Challenge(nonce=b"m" * 32, peer_id="tracker"),
    Auth(proof=b"p" * 32, sig=b"s" * 70),
    Accept(interval=0.5, chunking=ChunkParams(1024, 4096, 16384), seq=3, max_frame=1 << 20,
           peers=(PeerInfo("peer-b", "127.0.0.13", 7001),)),
    Reject(reason="bad secret"),
    Update(entries=(SAMPLE_ENTRY,)),
    Table(rows=(TableRow(SAMPLE_ENTRY, 7, ("peer-a",)),), seq=7, caught_up=False),
    Have(path="dir/file.txt", version={"peer-a": 3}),
    Drop(path="dir/file.txt", version={"peer-a": 3}),
    DropAnswer(path="dir/file.txt", version={"peer-a": 3}, granted=False, reason="this peer holds the only copy"),
    Peers(peers=(PeerInfo("peer-b", "127.0.0.13", 7001),)),
    Get(digest=b"\x01" * 32),
    Data(digest=b"\x01" * 32, data=b"abcd"),
    Missing(digest=b"\x01" * 32),
    HasChunks(digests=(b"\x01" * 32, b"\x02" * 32)),
]  # fmt: skip


def wrong_values(value: Any) -> list[Any]:
    """Values of the wrong type for a field whose valid wire value is ``value``."""
    if isinstance(value, bool):
        return [1, 0, "true", None]
    if isinstance(value, int):
        return [str(value), True, False, None, float(value) + 0.5, [value]]
    if isinstance(value, float):
        return [str(value), True, None, [value]]
    if isinstance(value, str):
        return [1, True, value.encode() or b"x", None, [value]]
    if isinstance(value, bytes):
        return [value.decode("latin-1") or "x", 1, None, [value]]
    if isinstance(value, list):
        return [{}, "x", 1, None, True]
    if isinstance(value, dict):
        return [[], "x", 1, None]
    raise AssertionError(f"no wrong values for {value!r}")


def mutations(wire: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for key, value in wire.items():
        if key == "t":
            continue
        for bad in wrong_values(value):
            out.append((f"{key}={bad!r}", {**wire, key: bad}))
    return out


def test_samples_are_valid() -> None:
    assert {type(m) for m in SAMPLES} | {Alive} == set(MESSAGE_TYPES.values())
    for msg in [*SAMPLES, Alive()]:
        assert msg.to_wire()["t"] == msg.TYPE
        assert decode_frame(msg.to_wire()) == msg


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: m.TYPE)
def test_ill_typed_fields_are_protocol_errors(msg: Message) -> None:
    for what, wire in mutations(msg.to_wire()):
        with pytest.raises(ProtocolError):
            decode_frame(wire)
            pytest.fail(f"{msg.TYPE} accepted {what}")


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: m.TYPE)
def test_missing_required_fields_are_protocol_errors(msg: Message) -> None:
    required = [
        f.name
        for f in dataclasses.fields(msg)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    for name in required:
        wire = msg.to_wire()
        del wire[name]
        with pytest.raises(ProtocolError, match=name):
            decode_frame(wire)


def entry_mutations() -> list[tuple[str, dict[str, Any]]]:
    wire = SAMPLE_ENTRY.to_wire()
    out = mutations(wire)
    for key in ("path", "kind", "size", "mode", "mtime_ns", "version", "chunks", "deleted"):
        out.append((f"no {key}", {k: v for k, v in wire.items() if k != key}))
    out += [
        ("bad kind", {**wire, "kind": "socket"}),
        ("mode with type bits", {**wire, "mode": 0o100644}),
        ("short digest", {**wire, "chunks": [[b"\x01" * 31, 10]]}),
        ("chunk triple", {**wire, "chunks": [[b"\x01" * 32, 10, 0]]}),
        ("chunk not a pair", {**wire, "chunks": [b"\x01" * 32]}),
        ("negative length", {**wire, "chunks": [[b"\x01" * 32, -1]]}),
        ("negative size", {**wire, "size": -1, "chunks": []}),
        ("negative mode", {**wire, "mode": -1}),
        ("size too big", {**wire, "size": 1 << 63, "chunks": []}),
        ("size mismatch", {**wire, "size": 11}),
        ("bad path", {**wire, "path": "../etc/passwd"}),
        ("absolute path", {**wire, "path": "/etc/passwd"}),
        ("empty peer id", {**wire, "version": {"": 1}}),
        ("slash in peer id", {**wire, "version": {"a/b": 1}}),
        ("negative counter", {**wire, "version": {"a": -1}}),
        ("counter too big", {**wire, "version": {"a": 1 << 63}}),
        ("bool counter", {**wire, "version": {"a": True}}),
        ("NUL in target", {**wire, "kind": "symlink", "target": "a\0b"}),
        ("long target", {**wire, "kind": "symlink", "target": "x" * 4097}),
        ("held_by not a list", {**wire, "held_by": "alice"}),
        ("slash in held_by", {**wire, "held_by": ["a/b"]}),
        ("empty peer id in held_by", {**wire, "held_by": [""]}),
        ("held_by too long", {**wire, "held_by": ["a"] * 4097}),
    ]
    return out


@pytest.mark.parametrize("what, wire", entry_mutations(), ids=lambda x: str(x)[:40])
def test_ill_formed_entries_are_protocol_errors(what: str, wire: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        Entry.from_wire(wire)
    with pytest.raises(ProtocolError):
        decode_frame({"t": "update", "entries": [wire]})


@pytest.mark.parametrize(
    "wire",
    [
        {"t": "nope"},
        {"t": ""},
        {"t": "HELLO"},
        {"t": "__init__"},
        {"t": "x" * 1000},
    ],
)
def test_unknown_types_are_protocol_errors(wire: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError, match="unknown message type"):
        decode_frame(wire)


@pytest.mark.parametrize(
    "wire",
    [
        {"t": "accept", "interval": 0},
        {"t": "accept", "interval": -1.0},
        {"t": "accept", "interval": float("nan")},
        {"t": "accept", "interval": float("inf")},
        {"t": "accept", "chunking": {"min_size": 100, "avg_size": 50, "max_size": 200}},
        {"t": "accept", "chunking": {"min_size": 1, "avg_size": 50, "max_size": 200}},
        {"t": "accept", "chunking": {"min_size": 64, "avg_size": 64}},
        {"t": "accept", "peers": [{"peer_id": "a", "addr": "h", "port": 70000}]},
        {
            "t": "hello",
            "proto": "syncfs",
            "ver": 1,
            "role": "p2p",
            "peer_id": "a",
            "nonce": b"short",
        },
        {"t": "get", "digest": b"\x00" * 33},
        {"t": "reject", "reason": "x" * 2000},
        {"t": "have", "path": "a/./b", "version": {}},
        {"t": "drop", "path": "../escape", "version": {"a": 1}},
        {"t": "drop", "path": "", "version": {"a": 1}},
        {"t": "drop", "path": "a", "version": {"a": -1}},
        {"t": "drop_answer", "path": "a", "version": {}, "granted": False, "reason": "x" * 2000},
        {"t": "drop_answer", "path": "a", "version": {}, "granted": 1},
        {"t": "table", "rows": [], "seq": 1, "caught_up": 1},
    ],
    ids=lambda w: str(w)[:50],
)
def test_out_of_range_values_are_protocol_errors(wire: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        decode_frame(wire)


def test_extra_fields_are_ignored() -> None:
    wire = {**Get(digest=b"\x01" * 32).to_wire(), "future": [1, 2]}
    assert decode_frame(wire) == Get(digest=b"\x01" * 32)


# ----------------------------------------------------------------------------- fuzz


def decode_or_protocol_error(stream: bytes) -> None:
    decoder = FrameDecoder(max_frame=64 * 1024)
    try:
        decoder.feed(stream)
        for frame in decoder.frames():
            assert isinstance(decode_message(frame), Message)
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data: bytes) -> None:
    decode_or_protocol_error(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_frame_bodies(body: bytes) -> None:
    decode_or_protocol_error(len(body).to_bytes(4, "big") + body)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(MESSAGE_TYPES)) | st.text(max_size=8),
    st.dictionaries(st.text(max_size=12), msgpack_values, max_size=6),
)
def test_fuzz_random_maps(t: str, fields: dict[str, Any]) -> None:
    decode_or_protocol_error(encode_frame({**fields, "t": t}))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLES), st.data())
def test_fuzz_mutated_messages(msg: Message, data: st.DataObject) -> None:
    """Valid messages with one field, or one field of an inner entry, replaced by anything."""
    wire = msg.to_wire()
    key = data.draw(st.sampled_from(sorted(wire)))
    wire[key] = data.draw(msgpack_values)
    if "entries" in wire and isinstance(wire["entries"], list) and wire["entries"]:
        inner = dict(SAMPLE_ENTRY.to_wire())
        inner[data.draw(st.sampled_from(sorted(inner)))] = data.draw(msgpack_values)
        wire["entries"] = [inner]
    decode_or_protocol_error(encode_frame(wire))


def test_has_chunks_refuses_digests_of_the_wrong_length_and_too_many() -> None:
    good = HasChunks(digests=(b"\x01" * 32,)).to_wire()
    assert decode_frame(good) == HasChunks(digests=(b"\x01" * 32,))
    for bad in ([b"\x01" * 31], [b"\x01" * 33], [b"\x01" * 32, "x"], [b"\x01" * 32] * 100_001):
        with pytest.raises(ProtocolError):
            decode_frame({**good, "digests": bad})
