"""The FUSE front end: translates kernel requests into engine calls, and nothing more.

Every handler turns the engine's FsError into FUSEError at this one boundary; any other
exception would end pyfuse3.main() and with it the mount, so it is logged and becomes EIO.
"""

import errno
import functools
import logging
import os
import sqlite3
import stat
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, ParamSpec, TypeVar

import pyfuse3
import trio

from .errors import FsError
from .files import Files
from .notices import Notice, NoticeKind
from .profiling import from_environment
from .protocol.entries import Kind
from .store import Node
from .xattrs import Xattrs

log = logging.getLogger(__name__)

ATTR_TIMEOUT = 1.0
T = TypeVar("T")
P = ParamSpec("P")

_KIND_BITS = {Kind.FILE: stat.S_IFREG, Kind.DIR: stat.S_IFDIR, Kind.SYMLINK: stat.S_IFLNK}
# SYNCFS_PROFILE=FILE: every translated handler timed, a summary written at exit (issue 19)
_PROFILE = from_environment()


def translated(fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except FsError as exc:
            raise pyfuse3.FUSEError(exc.errno) from None
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                log.warning("%s failed: %s", fn.__name__, exc)
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        except sqlite3.OperationalError as exc:
            if "full" not in str(exc):
                raise
            log.warning("%s failed: the store's disk is full", fn.__name__)
            raise pyfuse3.FUSEError(errno.ENOSPC) from None
        except Exception:
            log.exception("%s failed unexpectedly", fn.__name__)
            raise pyfuse3.FUSEError(errno.EIO) from None

    if _PROFILE is None:
        return wrapper
    return functools.wraps(fn)(_PROFILE.timed(fn.__name__, wrapper))


def _name(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FsError(errno.EILSEQ, "file names must be UTF-8") from None


class Operations(pyfuse3.Operations):
    supports_dot_lookup = False
    # The kernel keeps writes in its page cache and sends them in large batches; it then
    # owns size and mtime of a file it knows (and ignores ours). Remote versions and
    # remote mtime changes therefore get new inodes (engine), and the kernel tells us its
    # mtime by setattr before it flushes a written file.
    enable_writeback_cache = True
    enable_acl = False

    def __init__(self, files: Files, xattrs: Xattrs, notices: "trio.MemoryReceiveChannel[Notice]") -> None:
        super().__init__()
        self.files = files
        self.inodes = files.inodes
        self.store = files.store
        self.xattrs = xattrs
        self._notices = notices
        self.uid = os.getuid()
        self.gid = os.getgid()

    # -- cache invalidation ------------------------------------------------------------

    async def run_invalidator(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Clears the kernel's caches for remote changes, outside any request handler."""
        task_status.started()
        async for notice in self._notices:
            try:
                if notice.kind is NoticeKind.NAME:
                    await trio.to_thread.run_sync(pyfuse3.invalidate_entry, notice.ino, notice.name.encode("utf-8"))
                elif notice.kind is NoticeKind.NODE:
                    await trio.to_thread.run_sync(pyfuse3.invalidate_inode, notice.ino)
                # COMPLETE: the kernel reads through us; nothing of its caches depends on it
            except (OSError, pyfuse3.FUSEError):
                pass  # the kernel never had it cached

    # -- attributes --------------------------------------------------------------------

    def _attrs(self, node: Node) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = node.ino
        a.generation = 0
        a.entry_timeout = ATTR_TIMEOUT
        a.attr_timeout = ATTR_TIMEOUT
        a.st_mode = _KIND_BITS[node.kind] | node.mode
        a.st_nlink = 2 if node.kind is Kind.DIR else 1
        a.st_uid = self.uid
        a.st_gid = self.gid
        a.st_rdev = 0
        size = node.size if node.kind is Kind.FILE else len(node.target.encode()) if node.kind is Kind.SYMLINK else 0
        a.st_size = size
        a.st_blksize = 4096
        if node.kind is Kind.FILE and size:
            # never 0 for a file with bytes: GNU tar --sparse archives such a file as one
            # hole without reading it (a file whose chunks are all elsewhere would lose them)
            a.st_blocks = max(1, (self.inodes.bytes_here(node) + 511) // 512)
        else:
            a.st_blocks = (size + 511) // 512
        a.st_atime_ns = node.mtime_ns
        a.st_mtime_ns = node.mtime_ns
        a.st_ctime_ns = node.ctime_ns
        return a

    @translated
    async def lookup(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._attrs(self.inodes.lookup(parent_inode, _name(name)))

    @translated
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._attrs(self.inodes.node(inode))

    @translated
    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields,
                      fh: int | None, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        mtime = None
        if fields.update_mtime:
            mtime = attr.st_mtime_ns
        node = await self.files.setattr(
            inode,
            mode=stat.S_IMODE(attr.st_mode) if fields.update_mode else None,
            size=attr.st_size if fields.update_size else None,
            mtime_ns=mtime,
            fh=fh,
        )
        return self._attrs(node)

    @translated
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        node = self.inodes.node(inode)
        if node.kind is not Kind.SYMLINK:
            raise FsError(errno.EINVAL)
        return node.target.encode("utf-8", "surrogateescape")

    @translated
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        st = self.store.statvfs()
        out = pyfuse3.StatvfsData()
        out.f_bsize = st.f_bsize
        out.f_frsize = st.f_frsize
        out.f_blocks = st.f_blocks
        out.f_bfree = st.f_bfree
        out.f_bavail = st.f_bavail
        out.f_files = st.f_files
        out.f_ffree = st.f_ffree
        out.f_favail = st.f_favail
        out.f_namemax = 255
        return out

    # -- directories -----------------------------------------------------------------

    @translated
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        node = self.inodes.node(inode)
        if node.kind is not Kind.DIR:
            raise FsError(errno.ENOTDIR)
        return inode

    @translated
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        after = start_id
        while batch := self.store.children(fh, after_ino=after):
            for child in batch:
                if not pyfuse3.readdir_reply(token, child.name.encode("utf-8"), self._attrs(self.inodes.with_live(child)), child.ino):
                    return
                after = child.ino

    async def releasedir(self, fh: int) -> None:
        return None

    @translated
    async def mkdir(self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._attrs(self.files.mkdir(parent_inode, _name(name), mode))

    @translated
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self.files.rmdir(parent_inode, _name(name))

    @translated
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self.files.unlink(parent_inode, _name(name))

    @translated
    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int, name_new: bytes,
                     flags: int, ctx: pyfuse3.RequestContext) -> None:
        self.files.rename(parent_inode_old, _name(name_old), parent_inode_new, _name(name_new), flags)

    @translated
    async def symlink(self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._attrs(self.files.symlink(parent_inode, _name(name), target.decode("utf-8", "surrogateescape")))

    # -- files -------------------------------------------------------------------------

    @translated
    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: pyfuse3.RequestContext) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        handle, node = self.files.create(parent_inode, _name(name), mode)
        return pyfuse3.FileInfo(fh=handle.fh), self._attrs(node)

    @translated
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        handle = await self.files.open(inode, flags)
        # every remote version is a new inode, so cached pages of an inode stay true
        return pyfuse3.FileInfo(fh=handle.fh, keep_cache=True)

    @translated
    async def read(self, fh: int, off: int, size: int) -> bytes:
        return await self.files.read(self.inodes.handle(fh), off, size)

    @translated
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        return self.files.write(self.inodes.handle(fh), off, buf)

    async def flush(self, fh: int) -> None:
        return None

    @translated
    async def fsync(self, fh: int, datasync: bool) -> None:
        await trio.to_thread.run_sync(self.files.fsync, fh)

    @translated
    async def release(self, fh: int) -> None:
        self.files.release(fh)

    # -- extended attributes -------------------------------------------------------------

    @translated
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        if not name.startswith(b"user."):
            # the kernel asks for security.capability before every write(2), and the
            # program waits for the answer: give it without a look into the store (only
            # user.* attributes are kept)
            raise pyfuse3.FUSEError(errno.ENODATA)
        return self.xattrs.get(inode, _name(name))

    @translated
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        return [n.encode() for n in self.xattrs.names(inode)]

    @translated
    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext) -> None:
        self.xattrs.set(inode, _name(name), bytes(value))

    @translated
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self.xattrs.set(inode, _name(name), None)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for ino, _ in inode_list:
            self.inodes.forget(ino)
