"""The kernel-facing table: the handles programs hold, the sizes and mtimes of files being
written, nodes that left the tree but are still named or open (orphans), and the inodes
whose local writes are not committed yet.

Owned by the one trio task that runs FUSE requests and the engine's tasks alike (one event
loop, no threads touch it). Nothing here is durable: after a crash the store's dirty marks
say which inodes still need a commit.
"""

import dataclasses
import errno
import os

from .downloads import Downloader
from .errors import FsError
from .partial import Partial
from .protocol.entries import Kind
from .protocol.paths import BadPath, join, validate_path
from .store import Node, Store
from .wakeup import Wakeup

MAX_ORPHANS = 10_000
# seconds a replaced version's bytes stay servable: a peer that opened that version (or is
# fetching it) finishes reading it instead of failing because a newer one exists
KEEP_REPLACED = 60.0


@dataclasses.dataclass
class Handle:
    fh: int
    ino: int
    data_id: int
    fd: int
    writable: bool
    dirty: bool = False
    partial: Partial | None = None  # the version's fill state, if it was stale at open


@dataclasses.dataclass
class LiveAttrs:
    """Size and mtime of a file while programs write to it (kept off SQLite's hot path)."""

    size: int
    mtime_ns: int
    writers: int = 0


def checked_name(name: str) -> str:
    """``name`` as one component of a share path, or FsError."""
    validate_path(name)
    if "/" in name:
        raise FsError(errno.EINVAL, "name contains '/'")
    return name


def leaf(path: str) -> str:
    return path.rpartition("/")[2]


class Inodes:
    def __init__(self, store: Store, downloader: Downloader, keep_replaced: float = KEEP_REPLACED) -> None:
        self._store = store
        self._keep_replaced = keep_replaced
        self._downloader = downloader
        self.handles: dict[int, Handle] = {}
        self._next_fh = 1
        self.live: dict[int, LiveAttrs] = {}
        self.open_count: dict[int, int] = {}
        self.orphans: dict[int, Node] = {}
        # orphans that a remote change removed: the kernel may still resolve their old
        # names for a moment (its entry cache is cleared asynchronously)
        self.gone_remotely: set[int] = set()
        # written here and not committed yet: queued for the commit worker, or being committed
        self.to_commit: dict[int, None] = {}
        self.committing: set[int] = set()
        self.commit_wake = Wakeup()
        # writes per inode: a commit whose chunking overlapped a write does not publish
        self.write_gen: dict[int, int] = {}
        # replaced versions' data files kept servable (trio time until which): a peer that
        # opened such a version may still be fetching it
        self.kept_until: dict[int, float] = {}
        self._purge_now = True  # at start: what the last run left in the trash
        self._trash_grew = False  # since the last trash_grew()
        # paths whose local writer or commit finished: a remote row may have waited for them
        self.settled: dict[str, None] = {}
        self.settled_wake = Wakeup()

    # -- nodes ---------------------------------------------------------------------------

    def node(self, ino: int) -> Node:
        node = self._store.find(ino)
        if node is None:
            node = self.orphans.get(ino)
            if node is None:
                raise FsError(errno.ENOENT, f"no inode {ino}")
        return self.with_live(node)

    def with_live(self, node: Node) -> Node:
        live = self.live.get(node.ino)
        if live is not None:
            node = dataclasses.replace(node, size=live.size, mtime_ns=live.mtime_ns)
        return node

    def lookup(self, parent: int, name: str) -> Node:
        node = self._store.lookup(parent, name)
        if node is None:
            raise FsError(errno.ENOENT)
        return self.node(node.ino)

    def dir(self, ino: int) -> Node:
        node = self.node(ino)
        if node.kind is not Kind.DIR:
            raise FsError(errno.ENOTDIR)
        return node

    def free_name(self, parent: Node, name: str) -> str:
        """The path ``name`` would have in ``parent``; EEXIST if it is taken."""
        try:
            path = validate_path(join(parent.path, checked_name(name)))
        except BadPath as exc:
            raise FsError(errno.ENAMETOOLONG if "longer" in exc.why else errno.EINVAL, str(exc)) from None
        if self._store.lookup(parent.ino, name) is not None:
            raise FsError(errno.EEXIST)
        return path

    def forget(self, ino: int) -> None:
        """The kernel dropped its last reference to ``ino``."""
        if ino not in self.open_count:
            self.orphans.pop(ino, None)
            self.gone_remotely.discard(ino)

    def orphan(self, node: Node) -> None:
        """``node`` left the tree, but the kernel may still name it (cached entries, open
        files): keep it answerable until it forgets it (bounded: the kernel never forgets
        inodes it never looked up)."""
        self.orphans[node.ino] = node
        if len(self.orphans) > MAX_ORPHANS:
            for ino in [i for i in self.orphans if i not in self.open_count][: len(self.orphans) - MAX_ORPHANS]:
                del self.orphans[ino]
                self.gone_remotely.discard(ino)

    def bytes_here(self, node: Node) -> int:
        """How many of ``node``'s bytes this store holds: those of the chunks present, for a
        file not yet complete here (``du`` shows what an --on-demand mount takes)."""
        partial = self._downloader.partials.get(node.data_id) if node.data_id is not None else None
        return node.size if partial is None else partial.bytes_present

    # -- handles -------------------------------------------------------------------------

    def open_handle(self, node: Node, writable: bool) -> Handle:
        assert node.data_id is not None
        fd = os.open(self._store.data_path(node.data_id), os.O_RDWR if writable else os.O_RDONLY)
        handle = Handle(self._next_fh, node.ino, node.data_id, fd, writable,
                        partial=self._downloader.partials.get(node.data_id))
        self._next_fh += 1
        self.handles[handle.fh] = handle
        self.open_count[node.ino] = self.open_count.get(node.ino, 0) + 1
        if writable:
            live = self.live.setdefault(node.ino, LiveAttrs(node.size, node.mtime_ns))
            live.writers += 1
        return handle

    def handle(self, fh: int) -> Handle:
        try:
            return self.handles[fh]
        except KeyError:
            raise FsError(errno.EBADF) from None

    def close_handle(self, fh: int) -> Handle | None:
        """Close ``fh``; the handle it was, or None if there is no such handle."""
        handle = self.handles.pop(fh, None)
        if handle is None:
            return None
        os.close(handle.fd)
        self.open_count[handle.ino] -= 1
        if not self.open_count[handle.ino]:
            del self.open_count[handle.ino]
        return handle

    def writer_of(self, ino: int) -> Handle | None:
        return next((h for h in self.handles.values() if h.ino == ino and h.writable), None)

    def open_data(self) -> set[int]:
        """Data files a handle has open."""
        return {h.data_id for h in self.handles.values()}

    def keep_for_fetchers(self, data_id: int, now: float) -> None:
        self.kept_until[data_id] = now + self._keep_replaced
        self._trash_grew = True

    def trash_grew(self) -> bool:
        """Whether a file was kept in the trash since the last call (the disk may be low)."""
        grew, self._trash_grew = self._trash_grew, False
        return grew

    def trash_changed(self) -> None:
        """Something in the trash may be deleted now (a file kept open here was closed)."""
        self._purge_now = True

    def purge_due(self) -> float:
        """When a purge of the trash may next delete something: at once after a change that
        let a file go, else when the first file kept for fetchers expires. Purging only
        then keeps a burst of deletes (each one trashed and kept) from rescanning the trash
        once per delete."""
        return 0.0 if self._purge_now else min(self.kept_until.values(), default=float("inf"))

    def kept(self, now: float) -> set[int]:
        """The trashed data files that must stay now: open here, or kept for fetchers. A purge
        follows: what may go is gone after it."""
        self._purge_now = False
        for data_id in [d for d, until in self.kept_until.items() if until <= now]:
            del self.kept_until[data_id]
        return self.open_data() | set(self.kept_until)

    # -- local changes not committed yet ---------------------------------------------------

    def written(self, ino: int) -> None:
        self.write_gen[ino] = self.write_gen.get(ino, 0) + 1

    def busy(self, ino: int) -> bool:
        """Written here and not yet committed (open, or released and queued): applying a
        remote version now would throw those writes away."""
        return ino in self.live or ino in self.to_commit or ino in self.committing

    def queue_commit(self, ino: int) -> None:
        self.to_commit[ino] = None
        self.commit_wake.set()

    def commits_idle(self) -> bool:
        return not self.to_commit and not self.committing

    def settle(self, path: str) -> None:
        """The local change at ``path`` is committed or its writer gone: rows waiting for it
        may be applied now (by the remote side's task, never inside a request handler)."""
        self.settled[path] = None
        self.settled_wake.set()

    def take_settled(self) -> list[str]:
        paths, self.settled = list(self.settled), {}
        return paths
