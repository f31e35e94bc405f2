"""File entries, the unit of the file table, and their wire form."""

import dataclasses
import enum
from typing import Any, TypeVar

from .errors import ProtocolError
from .paths import validate_path

DIGEST_SIZE = 32
MAX_CHUNKS = 1 << 20
MAX_PEER_ID = 64
MAX_VERSION_KEYS = 4096
MAX_TARGET_BYTES = 4096
# extended attributes synced with an entry: the user namespace, within the kernel's limits
MAX_XATTRS = 128
MAX_XATTR_NAME = 255
MAX_XATTR_VALUE = 65536

T = TypeVar("T")


class Kind(enum.Enum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"


@dataclasses.dataclass(frozen=True)
class Chunk:
    digest: bytes
    length: int


@dataclasses.dataclass(frozen=True)
class Entry:
    """One path's state: what ``stat`` shows, its version vector and its content's chunks.

    ``mode`` holds permission bits only; ``target`` is a symlink's target; a deleted entry
    (tombstone) keeps its version so that later changes can be ordered after it.
    """

    path: str
    kind: Kind
    size: int = 0
    mode: int = 0o644
    mtime_ns: int = 0
    version: dict[str, int] = dataclasses.field(default_factory=dict)
    chunks: tuple[Chunk, ...] = ()
    deleted: bool = False
    target: str = ""
    # False when the sender changed only the name or attributes of a version it does not
    # hold completely (a stale file): it must not be listed as a holder
    held: bool = True
    # with held False: the holders of the row the sender renamed or changed (it knows who
    # has these bytes); the tracker lists them as this row's holders, so that the version
    # can be fetched from them, and found lost when none of them has it any more
    held_by: tuple[str, ...] = ()
    # user.* extended attributes (name -> value), synced like the content
    xattrs: dict[str, bytes] = dataclasses.field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, object] = {
            "path": self.path,
            "kind": self.kind.value,
            "size": self.size,
            "mode": self.mode,
            "mtime_ns": self.mtime_ns,
            "version": dict(self.version),
            "chunks": [[c.digest, c.length] for c in self.chunks],
            "deleted": self.deleted,
            "target": self.target,
        }
        if not self.held:
            wire["held"] = False
        if self.held_by:
            wire["held_by"] = list(self.held_by)
        if self.xattrs:
            wire["xattrs"] = dict(self.xattrs)
        return wire

    @classmethod
    def from_wire(cls, raw: object) -> "Entry":
        m = require(raw, dict, "entry")
        path = validate_path(m.get("path"))
        try:
            kind = Kind(m.get("kind"))
        except ValueError:
            raise ProtocolError(f"entry {path!r}: bad kind") from None
        size = require_uint(m.get("size"), "size")
        mode = require_uint(m.get("mode"), "mode")
        if mode > 0o7777:
            raise ProtocolError(f"entry {path!r}: mode has more than permission bits")
        mtime_ns = require(m.get("mtime_ns"), int, "mtime_ns")
        version = decode_version(m.get("version"))
        raw_chunks = require(m.get("chunks"), list, "chunks")
        if len(raw_chunks) > MAX_CHUNKS:
            raise ProtocolError("too many chunks")
        chunks = []
        for item in raw_chunks:
            pair = require(item, list, "chunk")
            if len(pair) != 2:
                raise ProtocolError("chunk is not [digest, length]")
            digest = require(pair[0], bytes, "digest")
            if len(digest) != DIGEST_SIZE:
                raise ProtocolError("digest has the wrong size")
            chunks.append(Chunk(digest, require_uint(pair[1], "chunk length")))
        deleted = require(m.get("deleted"), bool, "deleted")
        target = require(m.get("target", ""), str, "target")
        if len(target.encode("utf-8", "surrogatepass")) > MAX_TARGET_BYTES or "\0" in target:
            raise ProtocolError("bad symlink target")
        if not deleted and kind is Kind.FILE and sum(c.length for c in chunks) != size:
            raise ProtocolError(f"entry {path!r}: chunks do not add up to its size")
        held = require(m.get("held", True), bool, "held")
        held_by = decode_held_by(m.get("held_by", []))
        xattrs = decode_xattrs(m.get("xattrs", {}))
        return cls(path, kind, size, mode, mtime_ns, version, tuple(chunks), deleted, target, held, held_by,
                   xattrs)


def decode_held_by(raw: object) -> tuple[str, ...]:
    items = require(raw, list, "held_by")
    if len(items) > MAX_VERSION_KEYS:
        raise ProtocolError("too many peers in held_by")
    return tuple(require_peer_id(item) for item in items)


def decode_xattrs(raw: object) -> dict[str, bytes]:
    m = require(raw, dict, "xattrs")
    if len(m) > MAX_XATTRS:
        raise ProtocolError("too many extended attributes")
    out = {}
    for name, value in m.items():
        check_xattr(require(name, str, "xattr name"), require(value, bytes, "xattr value"))
        out[name] = value
    return out


def check_xattr(name: str, value: bytes) -> None:
    """Raise ProtocolError unless ``name`` is a syncable user.* name and ``value`` fits."""
    if not name.startswith("user.") or len(name.encode("utf-8", "surrogatepass")) > MAX_XATTR_NAME or "\0" in name:
        raise ProtocolError(f"bad extended attribute name {name[:40]!r}")
    if len(value) > MAX_XATTR_VALUE:
        raise ProtocolError(f"extended attribute {name[:40]!r} is too large")


def decode_version(raw: object) -> dict[str, int]:
    m = require(raw, dict, "version")
    if len(m) > MAX_VERSION_KEYS:
        raise ProtocolError("version vector too long")
    out = {}
    for key, value in m.items():
        out[require_peer_id(key)] = require_uint(value, "version counter")
    return out


def require(value: object, typ: type[T], what: str) -> T:
    # bool is an int subclass: never let True pass for a number
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise ProtocolError(f"{what}: expected {typ.__name__}, got {type(value).__name__}")
    return value


def require_uint(value: object, what: str) -> int:
    n = require(value, int, what)
    if n < 0 or n >= 1 << 63:
        raise ProtocolError(f"{what}: out of range")
    return n


def require_peer_id(value: object) -> str:
    s = require(value, str, "peer id")
    if not s or len(s) > MAX_PEER_ID or not s.isascii() or not s.isprintable() or "/" in s:
        raise ProtocolError("malformed peer id")
    return s
