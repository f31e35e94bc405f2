"""Plain file I/O on data files and the files they are filled from, safe to run in a worker
thread: no store, no event loop."""

import errno
import os
from pathlib import Path

from . import chunking
from .protocol.entries import MAX_XATTRS, Chunk, check_xattr
from .protocol.errors import ProtocolError
from .protocol.messages import ChunkParams


def read_chunk(path: Path, offset: int, length: int) -> bytes:
    """Read ``length`` bytes at ``offset`` from a data file (runs in a worker thread)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.pread(fd, length, offset)
    finally:
        os.close(fd)
    if len(data) != length:
        raise OSError(errno.EIO, "short read from data file")
    return data


def copy_fd(src: int, dst: int) -> None:
    """Copy what remains of ``src`` to ``dst`` at their current offsets (runs in a thread).

    copy_file_range shares extents where the filesystem can (btrfs, XFS), so a watched
    directory and its store on one such disk need no second copy of the bytes.
    """
    start_src, start_dst = os.lseek(src, 0, os.SEEK_CUR), os.lseek(dst, 0, os.SEEK_CUR)
    try:
        while os.copy_file_range(src, dst, 1 << 30):
            pass
        return
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
    os.lseek(src, start_src, os.SEEK_SET)
    os.lseek(dst, start_dst, os.SEEK_SET)
    os.ftruncate(dst, start_dst)
    while block := os.read(src, 1 << 20):
        os.write(dst, block)


def user_xattrs(target: int | str) -> dict[str, bytes]:
    """The ``user.*`` extended attributes of an open file or a path (never following a
    symlink) that the share can hold: not ``user.syncfs.*``, within the protocol's limits."""
    try:
        names = os.listxattr(target, follow_symlinks=False) if isinstance(target, str) else os.listxattr(target)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EPERM):
            return {}
        raise
    out: dict[str, bytes] = {}
    for name in sorted(names):
        if not name.startswith("user.") or name.startswith("user.syncfs.") or len(out) >= MAX_XATTRS:
            continue
        try:
            value = os.getxattr(target, name, follow_symlinks=False) if isinstance(target, str) else os.getxattr(target, name)
            check_xattr(name, value)
        except (OSError, ProtocolError):
            continue  # gone meanwhile, or more than the share carries
        out[name] = value
    return out


def write_at(path: os.PathLike[str], data: bytes | bytearray, offset: int) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)


def datasync(path: os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def read_cached(path: os.PathLike[str], offset: int, length: int) -> bytearray | None:
    """The ``length`` bytes at ``offset`` if the page cache holds them all (RWF_NOWAIT: no
    wait for the disk), else None. The buffer read into is the answer (not copied once
    more: chunks are up to 4 MiB, and this is the serving path)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        buf = bytearray(length)
        n = os.preadv(fd, [buf], offset, os.RWF_NOWAIT)
    except OSError:  # BlockingIOError: not cached; others: the file system cannot say
        return None  # read it in a thread
    finally:
        os.close(fd)
    return buf if n == length else None


def read_verified(path: os.PathLike[str], offset: int, length: int, want: bytes) -> bytes | None:
    data = read_chunk(Path(path), offset, length)
    return data if chunking.digest(data) == want else None


def chunk_file(path: os.PathLike[str], params: ChunkParams) -> list[Chunk]:
    fd = os.open(path, os.O_RDONLY)
    try:
        return chunking.chunk_fd(fd, params)
    finally:
        os.close(fd)


def copy_and_chunk(source: str, dest: os.PathLike[str], params: ChunkParams
                    ) -> tuple[tuple[Chunk, ...], os.stat_result, dict[str, bytes]]:
    """Copy ``source`` into the data file ``dest`` and cut the copy (which nothing else
    changes) into chunks; also return ``source``'s attributes as they were after the copy,
    and its ``user.*`` extended attributes."""
    src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        dst = os.open(dest, os.O_RDWR | os.O_TRUNC)
        try:
            copy_fd(src, dst)
            chunks = tuple(chunking.chunk_fd(dst, params))
        finally:
            os.close(dst)
        xattrs = user_xattrs(src)
        return chunks, os.fstat(src), xattrs
    finally:
        os.close(src)


def chunk_intact(path: os.PathLike[str], offset: int, chunk: Chunk) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        return chunking.digest(os.pread(fd, chunk.length, offset)) == chunk.digest
    finally:
        os.close(fd)
