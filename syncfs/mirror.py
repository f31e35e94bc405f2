"""How a watched directory and the share agree on one path: a pure decision.

The store keeps, per path, a ``Seen`` record: what the directory held when it and the
share last agreed (kind, inode number, size, mtime, mode, a key of the content, and the
version that content is). Comparing it with what the directory holds now (``Disk``) and
with the share's node now (``Shared``) tells which side changed since:

- the directory changed: PUSH it into the share, as a change of ``Seen.version`` (so an
  edit made here while the share moved on is concurrent, and becomes a conflict copy
  rather than overwriting the other edit);
- only the share changed: PULL it into the directory;
- neither: nothing, or RECORD when both agree on something new (a new version of the
  same bytes, a first start on a tree the share already holds).

This is what keeps the front end from echoing its own writes back as local changes: a
file it wrote is recorded as seen, so the directory is unchanged for it.
"""

import dataclasses
import enum
import os
import stat
from collections.abc import Mapping

from . import chunking
from .protocol.entries import Chunk, Kind


class Action(enum.Enum):
    NOTHING = "nothing"
    RECORD = "record"  # both sides agree: remember that (or forget a path gone from both)
    PUSH = "push"  # the directory changed: commit that to the share
    PULL = "pull"  # the share changed: write that into the directory
    WAIT = "wait"  # the share changed, but its bytes are not all here yet


@dataclasses.dataclass(frozen=True)
class Disk:
    """What ``lstat`` (and ``readlink``, and the ``user.*`` attributes) show for a path in
    the directory now."""

    kind: Kind
    ino: int
    size: int
    mtime_ns: int
    mode: int
    target: str = ""
    xattrs: bytes = b""  # xattrs_key

    @classmethod
    def from_stat(cls, st: os.stat_result, target: str = "", xattrs: bytes = b"") -> "Disk | None":
        """None for what the share cannot hold (sockets, FIFOs, devices)."""
        if stat.S_ISREG(st.st_mode):
            kind = Kind.FILE
        elif stat.S_ISDIR(st.st_mode):
            kind = Kind.DIR
        elif stat.S_ISLNK(st.st_mode):
            kind = Kind.SYMLINK
        else:
            return None
        return cls(kind, st.st_ino, st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode), target, xattrs)


@dataclasses.dataclass(frozen=True)
class Shared:
    """The share's node at a path, as this peer's store has it."""

    kind: Kind
    mode: int
    mtime_ns: int
    content: bytes
    version: dict[str, int]
    complete: bool = True
    xattrs: bytes = b""


@dataclasses.dataclass(frozen=True)
class Seen:
    """The state both sides last agreed on for ``path``."""

    path: str
    kind: Kind
    ino: int
    size: int
    mtime_ns: int
    mode: int
    content: bytes
    version: dict[str, int]
    xattrs: bytes = b""


def xattrs_key(xattrs: Mapping[str, bytes]) -> bytes:
    """Equal for equal sets of extended attributes; empty for none."""
    if not xattrs:
        return b""
    return chunking.digest(b"".join(
        len(k).to_bytes(2, "big") + k + len(v).to_bytes(4, "big") + v
        for k, v in sorted((k.encode(), v) for k, v in xattrs.items())
    ))


def content_key(kind: Kind, chunks: tuple[Chunk, ...] = (), target: str = "") -> bytes:
    """Equal for equal content: a file's chunk digests, a symlink's target."""
    if kind is Kind.FILE:
        return chunking.digest(b"".join(c.digest + c.length.to_bytes(8, "big") for c in chunks))
    if kind is Kind.SYMLINK:
        return target.encode("utf-8", "surrogateescape")
    return b""


def disk_unchanged(seen: Seen | None, disk: Disk | None) -> bool:
    if seen is None or disk is None:
        return seen is None and disk is None
    if seen.kind is not disk.kind or seen.xattrs != disk.xattrs:
        return False
    if disk.kind is Kind.DIR:
        return seen.mode == disk.mode  # a directory's mtime moves with its children
    if disk.kind is Kind.SYMLINK:
        return seen.ino == disk.ino and seen.content == content_key(Kind.SYMLINK, target=disk.target)
    return (seen.ino, seen.size, seen.mtime_ns, seen.mode) == (disk.ino, disk.size, disk.mtime_ns, disk.mode)


def share_unchanged(seen: Seen | None, shared: Shared | None) -> bool:
    if seen is None or shared is None:
        return seen is None and shared is None
    if seen.kind is not shared.kind or seen.content != shared.content or seen.mode != shared.mode \
            or seen.xattrs != shared.xattrs:
        return False
    return shared.kind is not Kind.FILE or seen.mtime_ns == shared.mtime_ns


def decide(disk: Disk | None, seen: Seen | None, shared: Shared | None) -> Action:
    if not disk_unchanged(seen, disk):
        if disk is None and shared is None:
            return Action.RECORD  # gone from both sides
        if disk is not None or share_unchanged(seen, shared):
            return Action.PUSH
        # deleted here, but changed in the share since: the edit wins and comes back
    elif share_unchanged(seen, shared):
        if seen is not None and shared is not None and seen.version != shared.version:
            return Action.RECORD
        return Action.NOTHING
    if shared is not None and shared.kind is Kind.FILE and not shared.complete:
        return Action.WAIT  # never write what is not all here: it comes back when it is
    return Action.PULL
