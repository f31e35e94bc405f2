"""Plain file I/O on data files and the files they are filled from, safe to run in a worker
thread: no store, no event loop."""

import errno
import os
from pathlib import Path

from .protocol.entries import MAX_XATTRS, check_xattr
from .protocol.errors import ProtocolError


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
