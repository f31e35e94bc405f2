"""The two sides of a watched directory, path by path: what the directory holds (``Disk``),
what the share holds (``Shared``), and the ``Seen`` record of when they last agreed.

``Sides`` also owns whether ``user.*`` attributes take part: a directory whose filesystem
cannot hold them has them left out of all three, from then on and across restarts.
"""

import logging
import os
import stat
from pathlib import Path
from typing import Protocol

from .datafiles import user_xattrs
from .downloads import Downloader
from .errorlog import ErrorLog
from .mirror import Disk, Seen, Shared, content_key, xattrs_key
from .protocol.errors import BadPath
from .protocol.paths import join, parent_of, validate_path
from .store import Node, Store
from .watched_disk import TEMP_PREFIX, holds_user_xattrs

log = logging.getLogger(__name__)

XATTRS_OFF = "watched_xattrs_off"  # meta key: this directory cannot hold the share's user.* attributes


class Enqueue(Protocol):
    """Queue ``path`` to be reconciled (``writing``: it is still being written here)."""

    def __call__(self, path: str, *, writing: bool | None = None) -> None: ...


class Sides:
    """One watched directory's view of both sides. The front end's parts share one: it
    holds ``xattrs``, which the pull side turns off when the directory refuses one."""

    def __init__(self, root: Path, store: Store, downloader: Downloader, errors: ErrorLog) -> None:
        self.root = root
        self.store = store
        self.downloader = downloader
        self.errors = errors
        self._real_root = os.path.realpath(root)
        # else user.* attributes are neither read nor written here (remembered: a restart
        # must not take a partial set on disk for a local change)
        self.xattrs = not store.get_meta(XATTRS_OFF) and holds_user_xattrs(root)

    def abs(self, path: str) -> str:
        return os.path.join(self.root, path)

    def child(self, parent: str, name: str) -> str | None:
        """``parent/name`` if the share can hold that name (UTF-8, within limits), else None."""
        if name.startswith(TEMP_PREFIX):
            return None
        try:
            return validate_path(join(parent, name))
        except BadPath as exc:
            log.info("not synced: %r (%s)", os.path.join(self.abs(parent), name), exc.why)
            return None

    def children(self, path: str, node: Node) -> list[str]:
        """The paths below the directory ``path`` on either side, sorted."""
        names: set[str] = set()
        try:
            with os.scandir(self.abs(path)) as it:
                names.update(e.name for e in it)
        except OSError:
            pass
        after = 0
        while batch := self.store.children(node.ino, after_ino=after):
            names.update(c.name for c in batch)
            after = batch[-1].ino
        return [child for name in sorted(names) if (child := self.child(path, name)) is not None]

    def disk(self, path: str) -> Disk | None:
        """What the directory holds at ``path``; None if nothing, or if a parent on the way
        is no longer a directory of the tree (a symlink put in its place leads outside)."""
        parent = parent_of(path)
        if parent and os.path.realpath(self.abs(parent)) != os.path.join(self._real_root, parent):
            return None
        try:
            st = os.lstat(self.abs(path))
            target = os.readlink(self.abs(path)) if stat.S_ISLNK(st.st_mode) else ""
            xattrs = xattrs_key(user_xattrs(self.abs(path))) if self.xattrs and not target else b""
        except (FileNotFoundError, NotADirectoryError):
            return None
        return Disk.from_stat(st, target, xattrs)

    def shared(self, node: Node | None) -> Shared | None:
        """What the share holds in ``node``, in the terms ``mirror.decide`` compares."""
        if node is None:
            return None
        complete = node.data_id is None or node.data_id not in self.downloader.partials
        return Shared(node.kind, node.mode, node.mtime_ns, content_key(node.kind, node.chunks, node.target),
                      node.version, complete, xattrs_key(node.xattrs) if self.xattrs else b"")

    def record(self, path: str, node: Node, st: os.stat_result | None = None) -> None:
        """The directory now holds ``node`` at ``path`` (``st``: its stat, if just taken)."""
        st = st if st is not None else os.lstat(self.abs(path))
        disk = Disk.from_stat(st, node.target)
        assert disk is not None
        self.store.put_seen(Seen(path, node.kind, disk.ino, disk.size, disk.mtime_ns, disk.mode,
                                 content_key(node.kind, node.chunks, node.target), node.version,
                                 xattrs_key(node.xattrs) if self.xattrs else b""))

    def without_xattrs(self) -> None:
        """The directory's filesystem refused an attribute the share holds: from now on
        attributes are neither compared nor written here, and never dropped from the share
        for it (a path recorded with them is pushed once more without them, which keeps the
        share's)."""
        self.xattrs = False
        self.store.set_meta(XATTRS_OFF, 1)
        self.errors.note(f"{self.root} cannot hold every user.* attribute of the share; "
                         "extended attributes are not synced there")
