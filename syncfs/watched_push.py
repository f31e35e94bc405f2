"""The push side of a watched directory: the directory's state of a path committed to the
share.

A file is copied into the store and chunked there (``LocalCommits.import_file``); if it
changed while being copied it is queued again as still being written, so no half-written
file is sent. A rename seen in the directory becomes a rename in the share when the moved
thing is exactly what both sides agreed on; a path replaced here while it changed in the
share keeps the share's version under a conflict name.
"""

import errno
import logging
import os
import time

from .commits import LocalCommits
from .datafiles import user_xattrs
from .errors import FsError
from .files import Files
from .inodes import Inodes
from .mirror import Disk, Seen, disk_unchanged, share_unchanged
from .protocol.conflicts import conflict_path
from .protocol.entries import Kind
from .protocol.paths import join, parent_of
from .store import Node, Store
from .watched_sides import Enqueue, Sides
from .xattrs import Xattrs

log = logging.getLogger(__name__)


class Pusher:
    """Commits the directory's state of one path at a time to the share."""

    def __init__(self, sides: Sides, store: Store, files: Files, inodes: Inodes, xattrs: Xattrs,
                 commits: LocalCommits, queue: Enqueue) -> None:
        self.sides = sides
        self.store = store
        self.files = files
        self.inodes = inodes
        self.xattrs = xattrs
        self.commits = commits
        self.queue = queue

    async def rename(self, old: str, new: str, seen: Seen | None, node: Node | None) -> bool:
        """A rename seen in the directory, done as a rename in the share (no bytes copied,
        none sent) when the moved thing is exactly what both sides agreed on; False if it
        must be pushed as a delete and a create instead."""
        disk = self.sides.disk(new)
        if seen is None or node is None or not disk_unchanged(seen, disk) \
                or not share_unchanged(seen, self.sides.shared(node)):
            return False
        target = self.store.lookup_path(new)
        if target is not None and (
            (target.kind is Kind.DIR) != (node.kind is Kind.DIR)
            or not share_unchanged(self.store.seen(new), self.sides.shared(target))
        ):
            return False  # what it replaces changed in the share meanwhile: push, which conflicts
        try:
            parent = await self._share_dirs(new)
            self.files.rename(node.parent, node.name, parent.ino, new.rpartition("/")[2])
        except FsError as exc:
            log.info("rename of %s to %s done as delete and create: %s", old, new, exc)
            return False
        self.store.move_seen(old, new)
        return True

    async def push(self, path: str, disk: Disk | None, seen: Seen | None, node: Node | None) -> None:
        """Make the share hold what the directory holds (``disk``, None: nothing) at
        ``path``, as a change of ``seen``'s version; the share holds ``node`` there now."""
        base = seen.version if seen is not None else (self.store.tombstone(path) or {})
        if node is not None and (disk is None or node.kind is not disk.kind):
            if disk is not None and not share_unchanged(seen, self.sides.shared(node)):
                self._set_aside(node)  # replaced here, changed there: both are kept
            elif not self._delete_in_share(node):
                raise FsError(errno.EEXIST, f"{path} changed in the share meanwhile")
            node = None
        if disk is None:
            self.store.forget_seen(path)
            return
        if disk.kind is Kind.DIR:
            if node is None:
                parent = await self._share_dirs(path)
                node = self.files.mkdir(parent.ino, path.rpartition("/")[2], disk.mode)
            elif node.mode != disk.mode:
                node = await self.files.setattr(node.ino, mode=disk.mode)
            here = user_xattrs(self.sides.abs(path)) if self.sides.xattrs else node.xattrs
            for name in sorted(here.keys() | node.xattrs.keys()):
                if here.get(name) != node.xattrs.get(name):
                    self.xattrs.set(node.ino, name, here.get(name))
            node = self.inodes.node(node.ino)
            self.sides.record(path, node)
            if seen is None:
                for child in self.sides.children(path, node):  # made or moved in before we watched it
                    self.queue(child)
        elif disk.kind is Kind.SYMLINK:
            if node is not None and node.target != disk.target:
                self._delete_in_share(node)
                node = None
            if node is None:
                parent = await self._share_dirs(path)
                node = self.files.symlink(parent.ino, path.rpartition("/")[2], disk.target)
            self.sides.record(path, node)
        else:
            await self._share_dirs(path)
            done = await self.commits.import_file(path, self.sides.abs(path), base, with_xattrs=self.sides.xattrs,
                                                  on_commit=lambda n, st: self.sides.record(path, n, st))
            if done is None:
                self.queue(path, writing=True)  # still changing: once it is quiet
                return
            log.debug("pushed %s (%d bytes)", path, done[0].size)
            if not share_unchanged(self.store.seen(path), self.sides.shared(done[0])):
                # the share had these bytes already, under a newer version whose attributes
                # differ (changed there while this write waited for quiet): they come here
                self.queue(path)

    async def _share_dirs(self, path: str) -> Node:
        """The share's directory node for the parent of ``path``, committing the directories
        on the way that the share does not have yet (with their modes here)."""
        parent = self.store.lookup_path("")
        assert parent is not None
        prefix = ""
        for part in parent_of(path).split("/") if parent_of(path) else []:
            prefix = join(prefix, part)
            node = self.store.lookup_path(prefix)
            if node is None:
                mode = os.lstat(self.sides.abs(prefix)).st_mode & 0o7777
                node = self.files.mkdir(parent.ino, part, mode)
                self.sides.record(prefix, node)
            elif node.kind is not Kind.DIR:
                raise FsError(errno.ENOTDIR, f"{prefix} is a {node.kind.value} in the share")
            parent = node
        return parent

    def _set_aside(self, node: Node) -> None:
        """Rename the share's ``node`` to a conflict name next to it, as the tracker names
        the loser of a conflict: its path gets what the directory holds now."""
        for n in range(1000):
            aside = conflict_path(node.path, time.time_ns(), self.store.peer_id, n)
            if self.store.lookup_path(aside) is None:
                break
        parent = self.store.lookup_path(parent_of(aside))
        assert parent is not None
        log.info("%s changed in the share while it was replaced here: keeping it as %s", node.path, aside)
        self.files.rename(node.parent, node.name, parent.ino, aside.rpartition("/")[2])
        self.queue(aside)  # a local rename tells the front end nothing: bring it here

    def _delete_in_share(self, node: Node) -> bool:
        """Delete ``node`` (and what lies below it) from the share; False if it was kept
        because something below it changed in the share since this directory saw it (an
        edit beats a delete: it is written back here instead)."""
        doomed = [*reversed(self.store.descendants(node.path)), node] if node.kind is Kind.DIR else [node]
        keep: set[str] = set()
        for n in doomed:
            changed = n is not node and not share_unchanged(self.store.seen(n.path), self.sides.shared(n))
            if changed or n.path in keep:
                keep.add(parent_of(n.path))
                if changed:
                    self.store.forget_seen(n.path)
                    self.queue(n.path)
                continue
            if n.kind is Kind.DIR:
                self.files.rmdir(n.parent, n.name)
            else:
                self.files.unlink(n.parent, n.name)
            self.store.forget_seen(n.path)
        return node.path not in keep
