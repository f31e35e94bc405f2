"""The pull side of a watched directory: the share's state of a path written into the
directory.

A remote file is written to a temporary file in the same directory, given its mode, mtime
and attributes, flushed, and renamed over the path, so no reader sees half a file. Just
before the rename the path is checked again: if the directory changed it meanwhile,
``DirChanged`` is raised and the front end reconciles the path again (pushing the local
edit instead).
"""

import contextlib
import errno
import logging
import os
import secrets

import trio

from .downloads import Downloader
from .errors import FsError
from .mirror import Disk, Seen, content_key
from .protocol.entries import Kind
from .protocol.paths import join, parent_of
from .store import Node, Store
from .watched_disk import TEMP_PREFIX, set_xattrs, write_copy
from .watched_sides import Enqueue, Sides

log = logging.getLogger(__name__)


class DirChanged(Exception):
    """The directory (or the share) changed ``path`` under a write into it: reconcile it again."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path

    def __str__(self) -> str:
        return f"{self.path} changed while it was written here"


class Puller:
    """Writes the share's state of one path at a time into the directory."""

    def __init__(self, sides: Sides, store: Store, downloader: Downloader, queue: Enqueue) -> None:
        self.sides = sides
        self.store = store
        self.downloader = downloader
        self.queue = queue

    async def pull(self, path: str, disk: Disk | None, seen: Seen | None, node: Node | None) -> None:
        """Make the directory hold ``node`` (None: nothing) at ``path``, where it holds
        ``disk`` and last agreed with the share on ``seen``."""
        target = self.sides.abs(path)
        if node is None:
            if disk is not None and not self._remove_here(path, disk):
                raise FsError(errno.ENOTEMPTY, f"{path} was deleted in the share but still holds files here")
            self.store.forget_seen(path)
            return
        self._disk_dirs(path)
        if node.kind is Kind.DIR:
            if disk is not None and disk.kind is not Kind.DIR:
                os.unlink(target)
                disk = None
            if disk is None:
                os.mkdir(target, node.mode)
            os.chmod(target, node.mode)
            if self.sides.xattrs and not set_xattrs(target, node.xattrs):
                self.sides.without_xattrs()
            self.sides.record(path, node)
            if seen is None:
                for child in self.sides.children(path, node):
                    self.queue(child)
            return
        if disk is not None and disk.kind is Kind.DIR:
            if not self._remove_here(path, disk):
                raise FsError(errno.ENOTEMPTY, f"{path} is a directory here that still holds files")
            disk = None
        if node.kind is Kind.SYMLINK:
            tmp = self._temp_name(path)
            os.symlink(node.target, tmp)
            self._replace(tmp, path, disk)
            self.sides.record(path, node)
            return
        assert node.data_id is not None
        if node.data_id in self.downloader.partials:
            return  # not all here (decide waits for that too): file_complete brings it back
        if disk is not None and seen is not None and seen.content == content_key(Kind.FILE, node.chunks):
            # the same bytes with other attributes (chmod, touch, a merged version)
            os.chmod(target, node.mode)
            if self.sides.xattrs and not set_xattrs(target, node.xattrs):
                self.sides.without_xattrs()
            os.utime(target, ns=(node.mtime_ns, node.mtime_ns))
            self.sides.record(path, node)
            return
        tmp = self._temp_name(path)
        try:
            held = await trio.to_thread.run_sync(write_copy, self.store.data_path(node.data_id), tmp, node.mode,
                                                 node.mtime_ns, node.xattrs if self.sides.xattrs else {})
            if not held:
                self.sides.without_xattrs()
            fresh = self.store.lookup_path(path)
            if fresh is None or fresh.data_id != node.data_id:
                raise DirChanged(path)  # replaced again while we copied
            self._replace(tmp, path, disk)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self.sides.record(path, node)
        log.debug("pulled %s (%d bytes)", path, node.size)

    def _replace(self, tmp: str, path: str, expected: Disk | None) -> None:
        """Rename ``tmp`` over ``path`` unless the directory changed it since we decided."""
        if self.sides.disk(path) != expected:
            os.unlink(tmp)
            raise DirChanged(path)
        os.replace(tmp, self.sides.abs(path))

    def _remove_here(self, path: str, disk: Disk) -> bool:
        """Remove ``path`` from the directory; False for a directory that is not empty yet.

        What it still holds and the share knows is removed first (queued before the next
        try). If it holds things the share does not know (new files, ignored ones, names
        the share cannot hold), it is kept and committed again, as a mount keeps such a
        directory: deleting them would lose them.
        """
        if disk.kind is not Kind.DIR:
            os.unlink(self.sides.abs(path))
            return True
        try:
            os.rmdir(self.sides.abs(path))
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            children = [self.sides.child(path, name) for name in os.listdir(self.sides.abs(path))]
            for child in children:
                if child is not None and self.store.seen(child) is not None:
                    self.queue(child)  # removed before the directory is tried again
            if any(c is None or self.store.seen(c) is None for c in children):
                self.store.forget_seen(path, subtree=False)  # so the directory is pushed back
                self.queue(path)
            return False
        return True

    def _disk_dirs(self, path: str) -> None:
        """Make the parent directories of ``path`` here, with the share's modes."""
        prefix = ""
        for part in parent_of(path).split("/") if parent_of(path) else []:
            prefix = join(prefix, part)
            if not os.path.isdir(self.sides.abs(prefix)) or os.path.islink(self.sides.abs(prefix)):
                node = self.store.lookup_path(prefix)
                os.mkdir(self.sides.abs(prefix), node.mode if node is not None else 0o755)
                if node is not None:
                    self.sides.record(prefix, node)

    def _temp_name(self, path: str) -> str:
        head, _, name = path.rpartition("/")
        return self.sides.abs(join(head, f"{TEMP_PREFIX}{secrets.token_hex(4)}.{name[:200]}"))
