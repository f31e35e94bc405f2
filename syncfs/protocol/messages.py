"""Every message of both links as a frozen dataclass, with its wire form.

``decode_message`` turns a decoded frame (a map with a 't' key) into a message or raises
ProtocolError; ``encode_message`` turns a message into frame bytes.
"""

import dataclasses
import hashlib
from collections.abc import Callable
from typing import Any, ClassVar, Self, TypeVar

from .entries import (
    DIGEST_SIZE,
    Entry,
    decode_version,
    require,
    require_peer_id,
    require_uint,
)
from .errors import ProtocolError
from .framing import encode_frame
from .paths import validate_path

MAX_NONCE = 64

T = TypeVar("T")
MAX_LIST = 100_000
MAX_REASON = 1024
MAX_CHUNK_DATA = 16 * 1024 * 1024
MAX_CERT = 4096
MAX_SIGNATURE = 256


def _str(limit: int) -> Callable[[object], str]:
    def check(v: object) -> str:
        s = require(v, str, "string")
        if len(s) > limit:
            raise ProtocolError("string too long")
        return s

    return check


def _bytes(low: int, high: int) -> Callable[[object], bytes]:
    def check(v: object) -> bytes:
        b = require(v, bytes, "bytes")
        if not low <= len(b) <= high:
            raise ProtocolError("bytes of the wrong length")
        return b

    return check


def _uint(v: object) -> int:
    return require_uint(v, "integer")


def _port(v: object) -> int:
    n = require_uint(v, "port")
    if n > 65535:
        raise ProtocolError("port out of range")
    return n


def _number(v: object) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < 1e6:
        raise ProtocolError("bad number")
    return float(v)


def _list_of(item: Callable[[object], T]) -> Callable[[object], tuple[T, ...]]:
    def check(v: object) -> tuple[T, ...]:
        items = require(v, list, "list")
        if len(items) > MAX_LIST:
            raise ProtocolError("list too long")
        return tuple(item(x) for x in items)

    return check


def _wire(value: object) -> object:
    if isinstance(value, Entry | PeerInfo | TableRow | ChunkParams):
        return value.to_wire()
    if isinstance(value, tuple):
        return [_wire(x) for x in value]
    return value


def field(check: Callable[[object], Any], **kw: Any) -> Any:
    return dataclasses.field(metadata={"check": check}, **kw)


class _Wire:
    """Shared wire conversion for dataclasses whose fields carry a ``check`` decoder."""

    # every subclass is a dataclass; declaring it lets dataclasses.fields() take self and cls
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def to_wire(self) -> dict[str, Any]:
        fields = dataclasses.fields(self)
        return {f.name: _wire(getattr(self, f.name)) for f in fields if getattr(self, f.name) is not None}

    @classmethod
    def from_wire(cls, raw: object) -> Self:
        m = require(raw, dict, cls.__name__)
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name not in m:
                if (
                    f.default is not dataclasses.MISSING
                    or f.default_factory is not dataclasses.MISSING
                ):
                    continue
                raise ProtocolError(f"{cls.__name__}: missing field {f.name!r}")
            kwargs[f.name] = f.metadata["check"](m[f.name])
        return cls(**kwargs)


@dataclasses.dataclass(frozen=True)
class PeerInfo(_Wire):
    """An admitted peer online now: where it serves chunks and its certificate (DER),
    whose SHA-256 fingerprint is its id."""

    peer_id: str = field(require_peer_id)
    addr: str = field(_str(255))
    port: int = field(_port)
    cert: bytes = field(_bytes(0, MAX_CERT), default=b"")

    def __post_init__(self) -> None:
        if self.cert and hashlib.sha256(self.cert).hexdigest() != self.peer_id:
            raise ProtocolError("peer id is not the fingerprint of its certificate")


@dataclasses.dataclass(frozen=True)
class ChunkParams(_Wire):
    min_size: int = field(_uint)
    avg_size: int = field(_uint)
    max_size: int = field(_uint)

    def __post_init__(self) -> None:
        if not 64 <= self.min_size <= self.avg_size <= self.max_size <= MAX_CHUNK_DATA:
            raise ProtocolError("chunk parameters out of order or range")


@dataclasses.dataclass(frozen=True)
class TableRow(_Wire):
    """One path of the tracker's table: the newest entry, when it last changed, who holds it."""

    entry: Entry = field(Entry.from_wire)
    seq: int = field(_uint)
    holders: tuple[str, ...] = field(_list_of(require_peer_id), default=())


class Message(_Wire):
    TYPE: ClassVar[str]

    def to_wire(self) -> dict[str, Any]:
        out = super().to_wire()
        out["t"] = self.TYPE
        return out


@dataclasses.dataclass(frozen=True)
class Hello(Message):
    """First frame of every link (inside TLS). ``role`` is 'tracker' (peer to tracker) or
    'p2p'. ``cert``: the peer's certificate (DER) on tracker links, where TLS does not
    carry it; ``peer_id`` is its fingerprint."""

    TYPE = "hello"
    proto: str = field(_str(32))
    ver: int = field(_uint)
    role: str = field(_str(16))
    peer_id: str = field(require_peer_id)
    nonce: bytes = field(_bytes(16, MAX_NONCE))
    addr: str = field(_str(255), default="")
    port: int = field(_port, default=0)
    last_seq: int = field(_uint, default=0)
    cert: bytes = field(_bytes(0, MAX_CERT), default=b"")


@dataclasses.dataclass(frozen=True)
class Challenge(Message):
    """The tracker's nonce (the tracker itself is known by its TLS certificate)."""

    TYPE = "challenge"
    nonce: bytes = field(_bytes(16, MAX_NONCE))
    peer_id: str = field(require_peer_id, default="tracker")


@dataclasses.dataclass(frozen=True)
class Auth(Message):
    """The joining peer's proof of the share secret and its signature, over one transcript
    (``syncfs.protocol.auth.transcript``)."""

    TYPE = "auth"
    proof: bytes = field(_bytes(32, 32))
    sig: bytes = field(_bytes(8, MAX_SIGNATURE))


@dataclasses.dataclass(frozen=True)
class Accept(Message):
    TYPE = "accept"
    interval: float = field(_number, default=1.0)
    chunking: ChunkParams | None = field(ChunkParams.from_wire, default=None)
    seq: int = field(_uint, default=0)
    max_frame: int = field(_uint, default=16 * 1024 * 1024)
    peers: tuple[PeerInfo, ...] = field(_list_of(PeerInfo.from_wire), default=())


@dataclasses.dataclass(frozen=True)
class Reject(Message):
    TYPE = "reject"
    reason: str = field(_str(MAX_REASON))


@dataclasses.dataclass(frozen=True)
class Alive(Message):
    TYPE = "alive"


@dataclasses.dataclass(frozen=True)
class Update(Message):
    """Local changes a peer committed, in the order it made them."""

    TYPE = "update"
    entries: tuple[Entry, ...] = field(_list_of(Entry.from_wire))


@dataclasses.dataclass(frozen=True)
class Table(Message):
    """Accepted changes in sequence order; ``caught_up`` marks the end of a reconnect delta."""

    TYPE = "table"
    rows: tuple[TableRow, ...] = field(_list_of(TableRow.from_wire))
    seq: int = field(_uint)
    caught_up: bool = field(lambda v: require(v, bool, "caught_up"), default=True)


@dataclasses.dataclass(frozen=True)
class Have(Message):
    """A peer holds ``path`` at ``version`` completely and serves its chunks."""

    TYPE = "have"
    path: str = field(validate_path)
    version: dict[str, int] = field(decode_version)


@dataclasses.dataclass(frozen=True)
class Drop(Message):
    """A peer asks to stop being a holder of ``path`` at ``version`` (it wants to free the
    bytes). The tracker grants it only if another holder is online: it broadcasts the row
    without the peer among its holders (a new seq), then answers ``DropAnswer``. The peer
    frees the bytes only on a granted answer, after that row, so no peer can take its
    MISSING for proof that the version is lost."""

    TYPE = "drop"
    path: str = field(validate_path)
    version: dict[str, int] = field(decode_version)


@dataclasses.dataclass(frozen=True)
class DropAnswer(Message):
    """The tracker's answer to one ``Drop``, to the asking peer alone. ``granted``: the
    peer is no longer a holder (the row saying so was queued before this answer); else
    ``reason`` says why it stays one (it holds the only copy online, or the version is
    not the current one)."""

    TYPE = "drop_answer"
    path: str = field(validate_path)
    version: dict[str, int] = field(decode_version)
    granted: bool = field(lambda v: require(v, bool, "granted"))
    reason: str = field(_str(MAX_REASON), default="")


@dataclasses.dataclass(frozen=True)
class Peers(Message):
    """The peers online now; sent whenever one joins or leaves."""

    TYPE = "peers"
    peers: tuple[PeerInfo, ...] = field(_list_of(PeerInfo.from_wire))


@dataclasses.dataclass(frozen=True)
class Get(Message):
    TYPE = "get"
    digest: bytes = field(_bytes(DIGEST_SIZE, DIGEST_SIZE))


@dataclasses.dataclass(frozen=True)
class Data(Message):
    TYPE = "data"
    digest: bytes = field(_bytes(DIGEST_SIZE, DIGEST_SIZE))
    data: bytes = field(_bytes(0, MAX_CHUNK_DATA))


@dataclasses.dataclass(frozen=True)
class Missing(Message):
    TYPE = "missing"
    digest: bytes = field(_bytes(DIGEST_SIZE, DIGEST_SIZE))


@dataclasses.dataclass(frozen=True)
class HasChunks(Message):
    """Sent by the serving side of a chunk link, unasked: it now serves these chunks (the
    verified pieces of a version it is still fetching), so that peers fetching the same
    version can get them from it instead of from the holders alone."""

    TYPE = "has_chunks"
    digests: tuple[bytes, ...] = field(_list_of(_bytes(DIGEST_SIZE, DIGEST_SIZE)))


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        Hello,
        Challenge,
        Auth,
        Accept,
        Reject,
        Alive,
        Update,
        Table,
        Have,
        Drop,
        DropAnswer,
        Peers,
        Get,
        Data,
        Missing,
        HasChunks,
    )
}


def decode_message(payload: dict[str, Any]) -> Message:
    t = payload.get("t")
    cls = MESSAGE_TYPES.get(t) if isinstance(t, str) else None
    if cls is None:
        raise ProtocolError(f"unknown message type {str(payload.get('t'))[:32]!r}")
    return cls.from_wire(payload)


def encode_message(msg: Message) -> bytes:
    return encode_frame(msg.to_wire())
