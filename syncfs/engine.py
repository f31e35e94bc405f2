"""The peer engine: commits local changes as new versions and applies remote ones.

It does not know it sits under FUSE: a front end calls the filesystem-level methods
(create, write bookkeeping, rename, …) and gets FsError for refusals; the engine tells the
front end through ``Frontend`` which cached names and inodes went stale.
"""

import dataclasses
import errno
import json
import logging
import os
import time
from collections.abc import Callable
from typing import Protocol

import trio

from . import chunking
from .datafiles import copy_fd, user_xattrs
from .downloads import Downloader, Partial
from .errors import FsError
from .ignore import IGNORE_FILE, IgnoreRules
from .p2p import ChunkUnavailable, PeerPool
from .pinning import Pinning
from .protocol.entries import MAX_XATTR_VALUE, MAX_XATTRS, Chunk, Entry, Kind, check_xattr
from .protocol.errors import ProtocolError
from .protocol.messages import ChunkParams, PeerInfo, Table, TableRow
from .protocol.paths import BadPath, join, validate_path
from .protocol.versions import Order, bump, compare, merge
from .reconcile import Action, decide
from .store import ROOT_INO, Node, Store

log = logging.getLogger(__name__)

MAX_DOWNLOADS = 4
COMMIT_RETRY = 1.0
MAX_ORPHANS = 10_000
XATTR_PREFIX = "user.syncfs."
XATTR_STATE = XATTR_PREFIX + "state"
XATTR_VERSION = XATTR_PREFIX + "version"
XATTR_HOLDERS = XATTR_PREFIX + "holders"
XATTR_PINNED = XATTR_PREFIX + "pinned"
LOST_CONFIRM = 10.0  # seconds a version must stay unfetchable from every holder before it is dropped
RETRY_MAX = 10.0
DEFAULT_FETCH_TIMEOUT = 30.0


class Frontend(Protocol):
    """What the engine tells the front end: names and inodes a remote change made stale,
    and files whose bytes became completely local."""

    def invalidate_inode(self, ino: int) -> None: ...
    def invalidate_entry(self, parent_ino: int, name: str) -> None: ...
    def file_complete(self, ino: int) -> None: ...


class _NoFrontend:
    def invalidate_inode(self, ino: int) -> None:
        pass

    def invalidate_entry(self, parent_ino: int, name: str) -> None:
        pass

    def file_complete(self, ino: int) -> None:
        pass


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


def _name(name: str) -> str:
    validate_path(name)
    if "/" in name:
        raise FsError(errno.EINVAL, "name contains '/'")
    return name


class Engine:
    def __init__(self, store: Store, pool: PeerPool, params: ChunkParams = chunking.DEFAULT_PARAMS, *,
                 on_demand: bool = False, fetch_timeout: float = DEFAULT_FETCH_TIMEOUT) -> None:
        self.store = store
        self.pool = pool
        self.peer_id = store.peer_id
        self.params = params
        self.on_demand = on_demand
        self.fetch_timeout = fetch_timeout
        self.frontend: Frontend = _NoFrontend()
        # the front end's kernel keeps the mtime of files being written (FUSE writeback
        # cache) and sends it by setattr: writes and truncates must not invent one
        self.kernel_mtime = False
        self.downloader = Downloader(store, pool, self._on_complete)
        self.downloader.on_corrupt = self._local_chunk_corrupt
        self.handles: dict[int, Handle] = {}
        self._next_fh = 1
        self.live: dict[int, LiveAttrs] = {}
        self.open_count: dict[int, int] = {}
        self.orphans: dict[int, Node] = {}
        # orphans that a remote change removed: the kernel may still resolve their old
        # names for a moment (its entry cache is cleared asynchronously)
        self.gone_remotely: set[int] = set()
        self._commit_queue: dict[int, None] = {}
        self._committing: set[int] = set()
        self._commit_wake = trio.Event()
        self.outbox_wake = trio.Event()
        self.on_have: Callable[[], None] = lambda: None
        self.errors: list[tuple[float, str]] = []
        self._nursery: trio.Nursery | None = None
        self.mountpoint = ""
        self.ignore = IgnoreRules.parse(None)
        self.caught_up = trio.Event()  # set once the tracker has sent everything up to now
        self.fills_held = False  # a front end that must look first (a watched directory)
        self.pinning = Pinning(self)

    # -- lifecycle -------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        self._clean_data_dir()
        self.downloader.load()
        self.downloader.paused = bool(self.paused)
        self._reload_ignore()
        self.pinning.load()
        for ino in self.store.dirty_inos():
            self._commit_queue[ino] = None  # written before a crash, never committed
        # after those are queued: a row that waited for a file being written must wait on
        # for its commit, not replace the bytes the crash left uncommitted
        self._retry_parked()  # rows that waited when the last run ended
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self.downloader.nursery = nursery
            nursery.start_soon(self._commit_worker)
            nursery.start_soon(self._filler, nursery)
            await nursery.start(self.pinning.run)
            task_status.started()

    def _clean_data_dir(self) -> None:
        """Remove data files nothing refers to: leftovers of work a crash cut short."""
        referenced = self.store.referenced_data_ids()
        with self.store.transaction():
            for saved in self.store.partials():
                if saved.data_id not in referenced:
                    self.store.partial_remove(saved.data_id)
            for name in os.listdir(self.store.data_dir):
                if name.isdigit() and int(name) not in referenced:
                    self.store.remove_data_file(int(name))

    # -- reading the tree --------------------------------------------------------------

    def node(self, ino: int) -> Node:
        node = self.store.find(ino)
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

    def forget(self, ino: int) -> None:
        """The kernel dropped its last reference to ``ino``."""
        if ino not in self.open_count:
            self.orphans.pop(ino, None)
            self.gone_remotely.discard(ino)

    def bytes_here(self, node: Node) -> int:
        """How many of ``node``'s bytes this store holds: those of the chunks present, for a
        file not yet complete here (``du`` shows what an --on-demand mount takes)."""
        partial = self.downloader.partials.get(node.data_id) if node.data_id is not None else None
        return node.size if partial is None else partial.bytes_present

    def lookup(self, parent: int, name: str) -> Node:
        node = self.store.lookup(parent, name)
        if node is None:
            raise FsError(errno.ENOENT)
        return self.node(node.ino)

    def _dir(self, ino: int) -> Node:
        node = self.node(ino)
        if node.kind is not Kind.DIR:
            raise FsError(errno.ENOTDIR)
        return node

    def _free_name(self, parent: Node, name: str) -> str:
        try:
            path = validate_path(join(parent.path, _name(name)))
        except BadPath as exc:
            raise FsError(errno.ENAMETOOLONG if "longer" in exc.why else errno.EINVAL, str(exc)) from None
        if self.store.lookup(parent.ino, name) is not None:
            raise FsError(errno.EEXIST)
        return path

    # -- local changes -------------------------------------------------------------------

    def _ignored(self, path: str, kind: Kind) -> bool:
        return self.ignore.ignored(path, kind is Kind.DIR)

    def _reload_ignore(self) -> None:
        node = self.store.lookup_path(IGNORE_FILE)
        text = None
        if node is not None and node.kind is Kind.FILE and node.data_id not in self.downloader.partials:
            try:
                text = self.store.data_path(node.data_id).read_text("utf-8")  # type: ignore[arg-type]
            except (OSError, UnicodeDecodeError) as exc:
                self.note_error(f"cannot read {IGNORE_FILE}: {exc}; only the default rules apply")
        self.ignore = IgnoreRules.parse(text)
        for error in self.ignore.errors:
            self.note_error(error)

    def _commit(self, node: Node, base: dict[str, int] | None = None) -> None:
        """Record ``node`` as a new local version and queue it for the tracker."""
        if self._ignored(node.path, node.kind):
            return  # stays local to this peer
        version = bump(node.version if base is None else base, self.peer_id)
        self.store.update_node(node.ino, version=version)
        self.store.clear_tombstone(node.path)
        partial = self.downloader.partials.get(node.data_id) if node.data_id is not None else None
        entry = dataclasses.replace(node, version=version).entry()
        if partial is not None:
            partial.must_fill = True  # others can only get it once we have it
            self.downloader.wake.set()
            # not a holder of these bytes: who is (as far as this peer heard) goes along
            entry = dataclasses.replace(entry, held=False, held_by=partial.row.holders)
        self.store.outbox_add(entry)
        self.outbox_wake.set()

    def _commit_delete(self, path: str, kind: Kind, base: dict[str, int]) -> None:
        if self._ignored(path, kind):
            return
        version = bump(base, self.peer_id)
        self.store.set_tombstone(path, version)
        self.store.outbox_add(Entry(path, kind, version=version, deleted=True))
        self.outbox_wake.set()

    def mkdir(self, parent_ino: int, name: str, mode: int) -> Node:
        parent = self._dir(parent_ino)
        path = self._free_name(parent, name)
        with self.store.transaction():
            node = self.store.insert_node(parent, name, Kind.DIR, mode & 0o7777, version=self.store.known_version(path))
            self._commit(node)
        return self.node(node.ino)

    def symlink(self, parent_ino: int, name: str, target: str) -> Node:
        parent = self._dir(parent_ino)
        path = self._free_name(parent, name)
        with self.store.transaction():
            node = self.store.insert_node(parent, name, Kind.SYMLINK, 0o777, target=target, version=self.store.known_version(path))
            self._commit(node)
        return self.node(node.ino)

    def create(self, parent_ino: int, name: str, mode: int) -> tuple[Handle, Node]:
        parent = self._dir(parent_ino)
        path = self._free_name(parent, name)
        with self.store.transaction():
            data_id = self.store.new_data_file()
            node = self.store.insert_node(
                parent, name, Kind.FILE, mode & 0o7777, data_id=data_id, version=self.store.known_version(path)
            )
            self.store.mark_dirty(node.ino)
        handle = self._open_handle(node, writable=True)
        handle.dirty = True
        return handle, self.node(node.ino)

    async def open(self, ino: int, flags: int) -> Handle:
        node = self.node(ino)
        if node.kind is not Kind.FILE:
            raise FsError(errno.EISDIR if node.kind is Kind.DIR else errno.ELOOP)
        writable = (flags & os.O_ACCMODE) != os.O_RDONLY
        if writable and ino in self.gone_remotely:
            # opened through a name the kernel had not forgotten yet: writes to it would be
            # lost; ESTALE makes the kernel look the name up again and open what is there now
            raise FsError(errno.ESTALE, "replaced by a remote change")
        if writable:
            await self._download_out_of_the_way(node, truncating=bool(flags & os.O_TRUNC))
            if ino in self.gone_remotely:  # replaced while we waited
                raise FsError(errno.ESTALE, "replaced by a remote change")
            node = self.node(ino)
        handle = self._open_handle(node, writable)
        if writable and flags & os.O_TRUNC:
            os.ftruncate(handle.fd, 0)
            self.wrote(handle, 0, 0)
            self.live[ino].size = 0
        return handle

    def _open_handle(self, node: Node, writable: bool) -> Handle:
        assert node.data_id is not None
        fd = os.open(self.store.data_path(node.data_id), os.O_RDWR if writable else os.O_RDONLY)
        handle = Handle(self._next_fh, node.ino, node.data_id, fd, writable,
                        partial=self.downloader.partials.get(node.data_id))
        self._next_fh += 1
        self.handles[handle.fh] = handle
        self.pinning.used(node.path)
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

    def will_write(self, handle: Handle, offset: int, length: int) -> None:
        """Before a write through ``handle``: refuse it if the store is full (keeping room
        for metadata), and on the first write remember the inode must be committed, so that
        even a crash right after the bytes change cannot forget them."""
        live = self.live[handle.ino]
        if offset + length > live.size:
            self.store.ensure_room(offset + length - live.size)
        if not handle.dirty:
            self.wrote(handle, 0, 0)

    def wrote(self, handle: Handle, offset: int, length: int) -> None:
        """Bookkeeping after a program wrote ``length`` bytes at ``offset`` through ``handle``."""
        live = self.live[handle.ino]
        if not handle.dirty:
            handle.dirty = True
            node = self.store.find(handle.ino)
            if node is not None and node.data_id is not None:
                with self.store.transaction():
                    # the old content's chunks are being overwritten: stop offering them,
                    # and remember to commit even if this process dies before release
                    self.store.unindex(node.data_id)
                    self.store.mark_dirty(handle.ino)
        live.size = max(live.size, offset + length)
        if not self.kernel_mtime:
            live.mtime_ns = time.time_ns()

    def release(self, fh: int) -> None:
        handle = self.handles.pop(fh, None)
        if handle is None:
            return
        os.close(handle.fd)
        ino = handle.ino
        self.open_count[ino] -= 1
        if not self.open_count[ino]:
            del self.open_count[ino]
        if not handle.writable:
            return
        live = self.live[ino]
        live.writers -= 1
        node = self.store.find(ino)
        if node is not None and node.path == IGNORE_FILE and handle.dirty:
            self._reload_ignore()  # new rules hold from now, not from when the commit lands
        if node is not None and handle.dirty:
            self.store.update_node(ino, size=live.size, mtime_ns=live.mtime_ns)
            self._commit_queue[ino] = None
            self._commit_wake.set()
        if live.writers == 0:
            del self.live[ino]
            if node is not None and not self._busy(ino):
                self._apply_deferred(node.path)  # a remote version waited for this writer

    def fsync(self, fh: int) -> None:
        os.fsync(self.handle(fh).fd)

    async def import_file(self, path: str, source: str, base: dict[str, int],
                          on_commit: Callable[[Node, os.stat_result], None] = lambda *_: None,
                          with_xattrs: bool = True) -> tuple[Node, os.stat_result] | None:
        """Commit the regular file ``source``, which lies outside the store, as the content
        (and mode, mtime and ``user.*`` attributes) of ``path``: a local change made on top
        of version ``base``. Returns the node and the attributes ``source`` had while it was
        copied.

        For front ends that keep files outside the store (a watched directory). The bytes
        are copied into a new data file and chunked in a thread; None means ``source``
        changed meanwhile (try again once it is quiet). Bytes the share already has at
        ``path`` are adopted without a new version, so peers that start from copies of the
        same tree do not conflict over it, and a stale copy is filled from them.
        ``on_commit`` runs inside the transaction that records the result, so that what a
        front end remembers of the file can never lag behind what was committed. Without
        ``with_xattrs`` (a source filesystem that holds none) the node keeps its own.
        """
        before = os.lstat(source)
        self.store.ensure_room(before.st_size)
        with self.store.transaction():
            data_id = self.store.new_data_file()
        try:
            chunks, after, xattrs = await trio.to_thread.run_sync(
                _copy_and_chunk, source, self.store.data_path(data_id), self.params)
        except BaseException:
            self.store.remove_data_file(data_id)
            raise
        if (before.st_ino, before.st_size, before.st_mtime_ns) != (after.st_ino, after.st_size, after.st_mtime_ns):
            self.store.remove_data_file(data_id)
            return None
        mode, mtime_ns, size = after.st_mode & 0o7777, after.st_mtime_ns, sum(c.length for c in chunks)
        # the tree may have moved on while we copied: decide on what is there now
        with self.store.transaction():
            node = self.store.lookup_path(path)
            if not with_xattrs:
                xattrs = node.xattrs if node is not None else {}
            parent = self.store.lookup_path(path.rpartition("/")[0]) if node is None else None
            refusal: FsError | None = None
            if node is not None and node.kind is not Kind.FILE:
                refusal = FsError(errno.EEXIST, f"{path} is a {node.kind.value} in the share")
            elif node is None and (parent is None or parent.kind is not Kind.DIR):
                refusal = FsError(errno.ENOENT, f"the directory of {path} is not in the share")
            if refusal is not None:
                self.store.remove_data_file(data_id)  # nothing will ever refer to it
                raise refusal
            if node is not None and node.chunks == chunks:
                self._adopt_data(node, data_id)
                if (node.mode, node.mtime_ns, node.xattrs) != (mode, mtime_ns, xattrs) and node.version == base:
                    self.store.update_node(node.ino, mode=mode, mtime_ns=mtime_ns, xattrs=xattrs)
                    self._commit(self.store.get(node.ino))
                node = self.store.get(node.ino)
                on_commit(node, after)
                return node, after
            # our own counter never goes back, even if the caller's base missed a change
            # this peer committed (and the tracker may hold) since
            mine = self.store.known_version(path).get(self.peer_id, 0)
            if mine > base.get(self.peer_id, 0):
                base = {**base, self.peer_id: mine}
            if node is None:
                assert parent is not None
                node = self.store.insert_node(parent, _base(path), Kind.FILE, mode, mtime_ns=mtime_ns,
                                              data_id=data_id, size=size, chunks=chunks, xattrs=xattrs)
            else:
                self._retire_data(node.data_id)
                self.store.update_node(node.ino, data_id=data_id, chunks=chunks, size=size,
                                       mode=mode, mtime_ns=mtime_ns, xattrs=xattrs)
            self.store.index_chunks(data_id, chunks)
            self._commit(self.store.get(node.ino), base=base)
            node = self.store.get(node.ino)
            on_commit(node, after)
        if path == IGNORE_FILE:
            self._reload_ignore()
        return node, after

    def _adopt_data(self, node: Node, data_id: int) -> None:
        """``data_id`` holds exactly ``node``'s chunks: let it complete a stale copy, or
        drop it as a duplicate of a complete one."""
        if node.data_id is None or node.data_id not in self.downloader.partials:
            self.store.remove_data_file(data_id)
            return
        self._retire_data(node.data_id)
        self.store.update_node(node.ino, data_id=data_id)
        self.store.index_chunks(data_id, node.chunks)
        self._have(node.path, node.version)

    def _retire_data(self, data_id: int | None) -> None:
        """A node stops using ``data_id``; downloads may still copy chunks from it."""
        if data_id is not None:
            self.downloader.drop(data_id)
            self.store.trash_add(data_id)
            self.downloader.wake.set()

    async def setattr(self, ino: int, *, mode: int | None = None, size: int | None = None,
                      mtime_ns: int | None = None, fh: int | None = None) -> Node:
        node = self.node(ino)
        if self.store.find(ino) is None:
            raise FsError(errno.ENOENT, "file was deleted")
        if size is not None and node.kind is Kind.FILE:
            await self._download_out_of_the_way(node, truncating=size == 0)
            if self.store.find(ino) is None or ino in self.gone_remotely:  # while we waited
                raise FsError(errno.ESTALE, "replaced by a remote change")
            node = self.node(ino)
        fields: dict[str, object] = {}
        if mode is not None:
            fields["mode"] = mode & 0o7777
        live = self.live.get(ino)
        if size is not None:
            if node.kind is not Kind.FILE:
                raise FsError(errno.EISDIR)
            assert node.data_id is not None
            with self.store.transaction():
                self.store.unindex(node.data_id)
                self.store.mark_dirty(ino)
            os.truncate(self.store.data_path(node.data_id), size)
            fields["size"] = size
            if live is not None:
                live.size = size
            if mtime_ns is None and not self.kernel_mtime:
                mtime_ns = time.time_ns()
        if mtime_ns is not None:
            fields["mtime_ns"] = mtime_ns
            if live is not None:
                live.mtime_ns = mtime_ns
        with self.store.transaction():
            self.store.update_node(ino, **fields)
            if live is not None:
                # a writer has it open: its release commits everything at once
                for h in self.handles.values():
                    if h.ino == ino and h.writable:
                        h.dirty = True
                        break
            elif size is not None or self._busy(ino):
                # a content commit publishes the attributes with the right bytes
                self._commit_queue[ino] = None
                self._commit_wake.set()
            elif fields:
                self._commit(self.store.get(ino))
        return self.node(ino)

    # -- extended attributes -------------------------------------------------------------

    def xattr_names(self, ino: int) -> list[str]:
        node = self.node(ino)
        virtual = [XATTR_STATE, XATTR_VERSION] + ([XATTR_HOLDERS] if node.kind is Kind.FILE else [])
        if node.kind is not Kind.SYMLINK:
            virtual.append(XATTR_PINNED)
        return virtual + sorted(node.xattrs)

    def get_xattr(self, ino: int, name: str) -> bytes:
        node = self.node(ino)
        if name == XATTR_STATE:
            return self.file_state(node).encode()
        if name == XATTR_VERSION:
            return json.dumps(dict(sorted(node.version.items()))).encode()
        if name == XATTR_PINNED and node.kind is not Kind.SYMLINK:
            return b"1" if self.pinning.pinned_by(node.path) is not None else b"0"
        if name == XATTR_HOLDERS and node.kind is Kind.FILE:
            partial = self.downloader.partials.get(node.data_id)  # type: ignore[arg-type]
            holders = partial.row.holders if partial is not None else (self.peer_id,)
            return "\n".join(holders).encode()
        try:
            return node.xattrs[name]
        except KeyError:
            raise FsError(errno.ENODATA) from None

    def file_state(self, node: Node) -> str:
        """synced, stale (not all local), downloading, pinned (complete, and kept local), or
        conflict (a conflict copy)."""
        partial = self.downloader.partials.get(node.data_id) if node.data_id is not None else None
        if partial is not None:
            return "downloading" if partial.filling or partial.inflight else "stale"
        if self.pinning.pinned_by(node.path) is not None:
            return "pinned"
        if ".sync-conflict-" in node.name:
            return "conflict"
        return "synced"

    def set_xattr(self, ino: int, name: str, value: bytes | None) -> None:
        """Set (or with None remove) a user.* attribute; it syncs like the content does."""
        node = self.node(ino)
        if name == XATTR_PINNED and node.kind is not Kind.SYMLINK:
            # removing the attribute unpins, like setting it to 0
            self.pinning.set_from_xattr(node, b"0" if value is None else value)
            self.frontend.invalidate_inode(ino)
            return
        if name.startswith(XATTR_PREFIX):
            raise FsError(errno.EPERM, f"{name} is maintained by syncfs")
        if not name.startswith("user."):
            raise FsError(errno.ENOTSUP, "only user.* attributes are stored")
        if node.kind is Kind.SYMLINK:
            raise FsError(errno.EPERM)
        xattrs = dict(node.xattrs)
        if value is None:
            if xattrs.pop(name, None) is None:
                raise FsError(errno.ENODATA)
        else:
            try:
                check_xattr(name, value)
            except ProtocolError as exc:
                raise FsError(errno.E2BIG if len(value) > MAX_XATTR_VALUE else errno.ERANGE, str(exc)) from None
            if name not in xattrs and len(xattrs) >= MAX_XATTRS:
                raise FsError(errno.ENOSPC, "too many extended attributes")
            xattrs[name] = value
        with self.store.transaction():
            self.store.update_node(ino, xattrs=xattrs)
            if self._busy(ino):
                self._commit_queue[ino] = None  # published with the pending content commit
                self._commit_wake.set()
            else:
                self._commit(self.store.get(ino))

    def unlink(self, parent_ino: int, name: str) -> None:
        node = self.lookup(parent_ino, name)
        if node.kind is Kind.DIR:
            raise FsError(errno.EISDIR)
        with self.store.transaction():
            self._remove(node)
            self._commit_delete(node.path, node.kind, node.version)
            self.pinning.forget(node.path)

    def rmdir(self, parent_ino: int, name: str) -> None:
        node = self.lookup(parent_ino, name)
        if node.kind is not Kind.DIR:
            raise FsError(errno.ENOTDIR)
        if self.store.has_children(node.ino):
            raise FsError(errno.ENOTEMPTY)
        with self.store.transaction():
            self._remove(node)
            self._commit_delete(node.path, node.kind, node.version)
            self.pinning.forget(node.path)

    def _orphan(self, node: Node) -> None:
        # the kernel may still name this inode (cached entries, open files): keep it
        # answerable until it forgets it (bounded: the kernel never forgets inodes it
        # never looked up)
        self.orphans[node.ino] = node
        if len(self.orphans) > MAX_ORPHANS:
            for ino in [i for i in self.orphans if i not in self.open_count][: len(self.orphans) - MAX_ORPHANS]:
                del self.orphans[ino]
                self.gone_remotely.discard(ino)

    def _remove(self, node: Node) -> None:
        self._orphan(node)
        self.store.delete_node(node.ino)
        self._retire_data(node.data_id)
        if node.path == IGNORE_FILE:
            self._reload_ignore()

    def rename(self, old_parent: int, old_name: str, new_parent: int, new_name: str, flags: int = 0) -> None:
        RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
        if flags & RENAME_EXCHANGE:
            raise FsError(errno.EINVAL, "RENAME_EXCHANGE is not supported")
        node = self.lookup(old_parent, old_name)
        parent = self._dir(new_parent)
        try:
            new_path = validate_path(join(parent.path, _name(new_name)))
        except BadPath as exc:
            raise FsError(errno.EINVAL, str(exc)) from None
        target = self.store.lookup(new_parent, new_name)
        if target is not None:
            if target.ino == node.ino:
                return
            if flags & RENAME_NOREPLACE:
                raise FsError(errno.EEXIST)
            if target.kind is Kind.DIR:
                if node.kind is not Kind.DIR:
                    raise FsError(errno.EISDIR)
                if self.store.has_children(target.ino):
                    raise FsError(errno.ENOTEMPTY)
            elif node.kind is Kind.DIR:
                raise FsError(errno.ENOTDIR)
        if node.kind is Kind.DIR and (new_path + "/").startswith(node.path + "/"):
            raise FsError(errno.EINVAL, "cannot move a directory into itself")
        with self.store.transaction():
            before = [node, *self.store.descendants(node.path)] if node.kind is Kind.DIR else [node]
            if target is not None:
                self._remove(target)
                self.pinning.forget(target.path)
            self.store.move_node(node, parent, new_name)
            self.pinning.moved(node.path, new_path)
            moved = [self.store.get(n.ino) for n in before]
            for n in moved:
                base = target.version if (target is not None and n.ino == node.ino) else self.store.tombstone(n.path) or {}
                if n.kind is Kind.FILE and self._busy(n.ino):
                    # its pending content commit publishes it, with the right bytes, here
                    self.store.update_node(n.ino, version=merge(base, n.version))
                    self.store.clear_tombstone(n.path)
                    continue
                self._commit(n, base=base)
            for n in reversed(before):
                self._commit_delete(n.path, n.kind, n.version)

    async def _commit_worker(self) -> None:
        while True:
            while not self._commit_queue:
                await self._commit_wake.wait()
                self._commit_wake = trio.Event()
            ino = next(iter(self._commit_queue))
            del self._commit_queue[ino]
            self._committing.add(ino)
            try:
                await self._commit_content(ino)
            except Exception as exc:
                # keep it queued (and remote versions of it waiting) until a commit succeeds
                if isinstance(exc, OSError):
                    self.note_error(f"could not commit inode {ino}: {exc}; retrying")
                else:
                    log.exception("could not commit inode %d; retrying", ino)
                self._committing.discard(ino)
                self._commit_queue[ino] = None
                await trio.sleep(COMMIT_RETRY)
                continue
            self._committing.discard(ino)
            node = self.store.find(ino)
            if node is not None and not self._busy(ino):
                self._apply_deferred(node.path)

    async def _commit_content(self, ino: int) -> None:
        node = self.store.find(ino)
        if node is None or node.kind is not Kind.FILE or node.data_id is None:
            self.store.clear_dirty(ino)
            return
        path = self.store.data_path(node.data_id)
        try:
            chunks = await trio.to_thread.run_sync(_chunk_file, path, self.params)
        except FileNotFoundError:
            chunks = None  # deleted or replaced while we read it: nothing left to commit
        node = self.store.find(ino)
        if chunks is None or node is None or node.data_id is None or self.store.data_path(node.data_id) != path:
            return
        size = sum(c.length for c in chunks)
        with self.store.transaction():
            self.store.update_node(ino, chunks=tuple(chunks), size=size)
            # offered even while another handle is open: a write through it unindexes
            # again, and serving verifies every chunk against its digest anyway
            self.store.unindex(node.data_id)
            self.store.index_chunks(node.data_id, chunks)
            if ino not in self.live:
                self.store.clear_dirty(ino)
            self._commit(self.store.get(ino))
        log.debug("committed %s (%d bytes, %d chunks)", node.path, size, len(chunks))
        self.pinning.wake.set()  # the cache grew
        if node.path == IGNORE_FILE:
            self._reload_ignore()

    # -- remote changes ------------------------------------------------------------------

    def set_peers(self, peers: tuple[PeerInfo, ...]) -> None:
        self.pool.set_peers(peers)
        self.downloader.retry_all()
        self.pinning.peers_changed()

    def apply_table(self, table: Table) -> None:
        with self.store.transaction():
            for row in table.rows:
                self._apply_or_park(row)
            self.store.set_meta("last_seq", table.seq)
        if table.caught_up:
            self.caught_up.set()
        self.pinning.after_commit()
        self._retry_parked()
        self.downloader.wake.set()

    def _apply_or_park(self, row: TableRow) -> None:
        """Apply one row; one that cannot be applied now waits, durably, to be retried."""
        try:
            with self.store.savepoint():
                self._apply_row(row)
        except (FsError, OSError) as exc:
            log.warning("cannot apply %s yet: %s", row.entry.path, exc)
            self.store.deferred_put(row)

    def _retry_parked(self) -> None:
        """One pass over the rows waiting to be applied (parked, or deferred for a writer)."""
        for row in self.store.deferred_rows():
            path = row.entry.path
            node = self.store.lookup_path(path)
            if node is not None and self._busy(node.ino):
                continue
            with self.store.transaction():
                if self.store.deferred_pop(path) is not None:
                    self._apply_or_park(row)
        self.pinning.after_commit()

    def _ack_outbox(self, entry: Entry) -> None:
        done = [
            i for i, e in self.store.outbox_for(entry.path)
            if compare(entry.version, e.version) in (Order.EQUAL, Order.AFTER)
        ]
        if done:
            self.store.outbox_remove(done)

    def _local_state(self, path: str) -> tuple[Node | None, dict[str, int], bool, bool]:
        node = self.store.lookup_path(path)
        version = node.version if node is not None else (self.store.tombstone(path) or {})
        pending = self.store.outbox_has(path)
        # written here and not yet committed (open, or released and queued): applying a
        # remote version now would throw those writes away
        busy = node is not None and self._busy(node.ino)
        return node, version, pending, busy

    def _busy(self, ino: int) -> bool:
        return ino in self.live or ino in self._commit_queue or ino in self._committing

    def _apply_row(self, row: TableRow) -> None:
        e = row.entry
        self._ack_outbox(e)
        self.pinning.on_row(row)  # a granted withdrawal frees the bytes here
        have = self.store.pending_have(e.path)
        if have is not None and (have != e.version or self.peer_id in row.holders):
            self.store.have_settled(e.path)  # listed, or superseded: nothing more to say
        if self._ignored(e.path, e.kind):
            return  # ignored here: the other peers' version stays theirs
        node, version, pending, busy = self._local_state(e.path)
        if version == e.version:
            self.downloader.update_holders(row, node.data_id if node is not None else None)
            return
        action = decide(e, version, pending=pending, busy=busy)
        if action in (Action.IGNORE, Action.WAIT):
            return
        if action is Action.DEFER:
            self.store.deferred_put(row)
            return
        if e.deleted:
            self._apply_delete(e, node)
        elif e.kind is Kind.DIR:
            self._apply_dir(e, node)
        elif e.kind is Kind.SYMLINK:
            self._apply_symlink(e, node)
        else:
            self._apply_file(row, node)

    def _apply_deferred(self, path: str) -> None:
        """Apply a remote change that waited for a local writer (whose change is committed),
        then whatever else waits: rows below it may have waited for it."""
        with self.store.transaction():
            row = self.store.deferred_pop(path)
            if row is not None:
                self._apply_or_park(row)
        self._retry_parked()
        self.downloader.wake.set()

    def _ensure_parents(self, path: str) -> Node:
        """The parent directory node of ``path``, creating missing directories on the way."""
        parent = self.store.get(ROOT_INO)
        for part in path.split("/")[:-1]:
            child = self.store.lookup(parent.ino, part)
            if child is None:
                child = self.store.insert_node(parent, part, Kind.DIR, 0o755)
                self._notify_name(child)
            elif child.kind is not Kind.DIR:
                raise FsError(errno.ENOTDIR, f"{child.path} is not a directory here")
            parent = child
        return parent

    def _clear_for(self, node: Node | None) -> None:
        """Remove ``node`` to make way for a remote entry of another shape at its path."""
        if node is None:
            return
        if node.kind is Kind.DIR and self.store.has_children(node.ino):
            raise FsError(errno.ENOTEMPTY, f"{node.path} is a non-empty directory here")
        self._remove_for_remote(node)

    def _remove_for_remote(self, node: Node) -> None:
        """Remove ``node`` because of a remote change, and tell the front end."""
        self._remove(node)
        self.gone_remotely.add(node.ino)
        self._notify_name(node)

    def _notify_name(self, node: Node) -> None:
        """The kernel's cached name of ``node`` and its directory listing are stale (a
        remote change added or removed it)."""
        self.frontend.invalidate_entry(node.parent, node.name)
        self.frontend.invalidate_inode(node.parent)

    def _apply_delete(self, e: Entry, node: Node | None) -> None:
        if node is not None:
            if node.kind is Kind.DIR and self.store.has_children(node.ino):
                # it still holds files the deleter did not know of: keep it, and say so
                self._commit(node, base=merge(e.version, node.version))
                return
            self._remove_for_remote(node)
        self.store.set_tombstone(e.path, e.version)
        self.pinning.forget(e.path)

    def _apply_dir(self, e: Entry, node: Node | None) -> None:
        if node is not None and node.kind is Kind.DIR:
            self.store.update_node(node.ino, mode=e.mode, version=e.version, xattrs=e.xattrs)
            self.frontend.invalidate_inode(node.ino)
        else:
            self._clear_for(node)
            parent = self._ensure_parents(e.path)
            node = self.store.insert_node(parent, _base(e.path), Kind.DIR, e.mode, mtime_ns=e.mtime_ns,
                                          version=e.version, xattrs=e.xattrs)
            self._notify_name(node)
        self.store.clear_tombstone(e.path)

    def _apply_symlink(self, e: Entry, node: Node | None) -> None:
        self._clear_for(node)
        parent = self._ensure_parents(e.path)
        node = self.store.insert_node(
            parent, _base(e.path), Kind.SYMLINK, 0o777, mtime_ns=e.mtime_ns, target=e.target, version=e.version
        )
        self._notify_name(node)
        self.store.clear_tombstone(e.path)

    def _apply_file(self, row: TableRow, node: Node | None) -> None:
        e = row.entry
        if node is not None and node.kind is Kind.FILE and node.chunks == e.chunks:
            # same bytes (chmod, touch, setfattr, or a merge of versions): attributes only
            partial = self.downloader.partials.get(node.data_id)  # type: ignore[arg-type]
            if partial is not None:
                partial.row = row
            if node.mtime_ns != e.mtime_ns:
                # with the writeback cache the kernel keeps its own mtime of a file it
                # knows and ignores ours: a new mtime needs a new inode (same data file)
                self._renumber(node, mode=e.mode, mtime_ns=e.mtime_ns, version=e.version, xattrs=e.xattrs)
            else:
                self.store.update_node(node.ino, mode=e.mode, version=e.version, xattrs=e.xattrs)
                self.frontend.invalidate_inode(node.ino)
            self.store.clear_tombstone(e.path)
            return
        # A new version is a new inode, as after a rename over the file: programs that hold
        # the old one open keep reading the old bytes, and the kernel's page cache of the
        # old inode never mixes into the new content.
        self._clear_for(node)
        parent = self._ensure_parents(e.path)
        data_id = self.store.new_data_file(e.size)
        node = self.store.insert_node(
            parent, _base(e.path), Kind.FILE, e.mode, mtime_ns=e.mtime_ns,
            version=e.version, data_id=data_id, size=e.size, chunks=e.chunks, xattrs=e.xattrs,
        )
        self._notify_name(node)
        self.store.clear_tombstone(e.path)
        if e.chunks:
            partial = self.downloader.add(data_id, row)
            partial.must_fill = e.path == IGNORE_FILE  # rules apply here even --on-demand
        else:
            self._announce(row)
            if e.path == IGNORE_FILE:
                self._reload_ignore()

    def _renumber(self, node: Node, **fields: object) -> Node:
        """Give the file ``node`` a new inode number with ``fields`` changed, keeping its data
        file: the kernel forgets what it cached of the old inode (programs holding that
        open keep reading the same bytes through it)."""
        assert node.kind is Kind.FILE and node.data_id is not None
        self._orphan(node)
        self.gone_remotely.add(node.ino)  # writes through a stale cached name would be lost
        self.store.delete_node(node.ino)
        parent = self.store.get(node.parent)
        new = self.store.insert_node(
            parent, node.name, Kind.FILE, fields.get("mode", node.mode),  # type: ignore[arg-type]
            mtime_ns=fields.get("mtime_ns", node.mtime_ns),  # type: ignore[arg-type]
            version=fields.get("version", node.version), data_id=node.data_id,  # type: ignore[arg-type]
            size=node.size, chunks=node.chunks, xattrs=fields.get("xattrs", node.xattrs),  # type: ignore[arg-type]
        )
        self._notify_name(node)
        return new

    def _announce(self, row: TableRow) -> None:
        self._have(row.entry.path, row.entry.version)

    # -- filling stale files -------------------------------------------------------------

    @property
    def paused(self) -> str:
        """'' when running; 'soft' (background transfers stop) or 'hard' (reads too)."""
        return str(self.store.get_meta("paused", ""))

    def hold_fills(self, held: bool) -> None:
        """Hold background downloads (not reads) while a front end finds out what it has."""
        self.fills_held = held
        self.downloader.wake.set()

    def set_paused(self, mode: str) -> None:
        self.store.set_meta("paused", mode)
        self.downloader.paused = bool(mode)
        self.downloader.wake.set()

    async def read(self, handle: "Handle", offset: int, size: int) -> bytes:
        partial = handle.partial
        if partial is not None and partial.cancelled:
            if all(i in partial.present for i in partial.covering(offset, size)):
                return os.pread(handle.fd, size, offset)
            # replaced or deleted before its bytes arrived: never hand out unverified holes
            raise FsError(errno.EIO, f"{partial.path} was replaced before it was fetched")
        if partial is not None and partial.complete:
            partial = None
        if partial is not None and self.paused == "hard" and not all(
            partial.readable(i) for i in partial.covering(offset, size)
        ):
            raise FsError(errno.EIO, "transfers are paused (--hard); run 'syncfs resume'")
        if partial is not None:
            needed = partial.covering(offset, size)
            try:
                await self.downloader.ensure(partial, needed, self.fetch_timeout, for_read=True)
            except ChunkUnavailable as exc:
                self.note_error(f"read of {partial.path} failed: {exc.why}")
                raise FsError(errno.EIO, exc.why) from None
            if needed and self._nursery is not None:
                self.downloader.read_ahead(self._nursery, partial, needed[-1])
        # in the loop, not a worker thread: for the kernel's 1 MiB read-ahead requests the
        # hand-off cost more than it saved (bench/RESULTS.md, paired runs)
        if partial is not None:
            return partial.read(handle.fd, offset, size)  # ensure left every chunk readable
        return os.pread(handle.fd, size, offset)

    def write(self, handle: "Handle", offset: int, data: bytes) -> int:
        """Write ``data`` through ``handle`` (refused with ENOSPC when the store is full)."""
        self.will_write(handle, offset, len(data))
        # a page-cache copy, in the loop: for the kernel's 1 MiB writeback requests a worker
        # thread's hand-off cost more than it saved (bench/RESULTS.md, paired runs)
        n = os.pwrite(handle.fd, data, offset)
        self.wrote(handle, offset, n)
        return n

    async def _download_out_of_the_way(self, node: Node, *, truncating: bool) -> None:
        """Before a program changes a file's bytes: a download of it stops if the program
        empties the file (once no chunk write can land on it any more), and completes
        first otherwise (the program changes the whole newest version)."""
        if truncating:
            await self.downloader.stop(node.data_id)
        else:
            await self._complete_for_write(node)

    async def _complete_for_write(self, node: Node) -> None:
        partial = self.downloader.partials.get(node.data_id)  # type: ignore[arg-type]
        if partial is None:
            return
        try:
            await self.downloader.complete(partial, self.fetch_timeout)
        except ChunkUnavailable as exc:
            if partial.cancelled:  # replaced or truncated meanwhile: open what is there now
                raise FsError(errno.ESTALE, "replaced while it was completed") from None
            self.note_error(f"could not complete {partial.path} for writing: {exc.why}")
            raise FsError(errno.EIO, exc.why) from None

    def note_error(self, message: str) -> None:
        log.warning("%s", message)
        self.errors.append((time.time(), message))
        del self.errors[:-20]

    def _local_chunk_corrupt(self, data_id: int, offset: int, length: int, want: bytes, why: str) -> None:
        """A chunk of a local data file failed its check: stop offering it, and if it belongs
        to a complete file, fetch that chunk again from the other peers.

        The check read the index before it read the file: if a commit re-indexed the file
        meanwhile (a new version, other chunks at that offset), the entry is gone and the
        mismatch says nothing about the new content, which must stay offered."""
        with self.store.transaction():
            if not self.store.unindex_at(data_id, offset, want):
                return
            node = self.store.node_with_data(data_id)
            if node is None or node.kind is not Kind.FILE or self._busy(node.ino):
                return
            # a second damaged chunk of one file, found while the first is fetched again,
            # joins that repair; seq 0 marks a repair
            repair = TableRow(node.entry(), 0, tuple(self.pool.peers))
            first = data_id not in self.downloader.partials
            if not self.downloader.damaged(data_id, repair, offset, length, want):
                return
            self.note_error(f"local copy of {node.path} is damaged at byte {offset} ({why}); fetching it again")
        self.frontend.invalidate_inode(node.ino)  # the kernel may hold pages of the bad bytes
        if first and self._nursery is not None:
            # damage seldom stays in one chunk, and the others may never be asked for here
            self._nursery.start_soon(self._check_the_rest, data_id, node.chunks, offset)

    async def _check_the_rest(self, data_id: int, chunks: tuple[Chunk, ...], found_at: int) -> None:
        """Check every other chunk of a data file in which one failed its check; those that
        fail too are fetched again with it. A chunk at a time, so that an unmount need not
        wait for a whole large file to be read."""
        path = self.store.data_path(data_id)
        try:
            for offset, chunk in zip(chunking.offsets(chunks), chunks, strict=True):
                if offset != found_at and not await trio.to_thread.run_sync(_chunk_intact, path, offset, chunk):
                    self._local_chunk_corrupt(data_id, offset, chunk.length, chunk.digest, "its digest does not match")
        except FileNotFoundError:
            pass  # the file was replaced or deleted meanwhile: nothing left to mend
        except Exception as exc:  # noqa: BLE001 - a failing disk must not take the mount down
            log.warning("could not check the rest of %s: %s", path, exc)

    def _have(self, path: str, version: dict[str, int]) -> None:
        self.store.have_put(path, version)  # kept until the tracker lists us as a holder
        self.on_have()

    def _on_complete(self, partial: Partial) -> None:
        node = self.store.node_with_data(partial.data_id)
        if node is not None and partial.repair:
            self.frontend.invalidate_inode(node.ino)  # pages of the damaged bytes may be cached
        if node is not None:
            # renamed or chmodded here meanwhile: announce what the file is now
            self._have(node.path, node.version)
            self.frontend.file_complete(node.ino)
        if node is not None and node.path == IGNORE_FILE:
            self._reload_ignore()
        self.pinning.wake.set()  # the cache grew

    def _wanted(self, p: Partial) -> bool:
        """Whether background filling fetches ``p``: always in a full mount; in an
        --on-demand one when it must be (changed here), is pinned, or lists this peer as a
        holder (the version of a rename made elsewhere, whose bytes this peer has under
        the old name: the others count on it)."""
        return (not self.on_demand or p.must_fill or self.peer_id in p.row.holders
                or self.pinning.pinned_by(p.path) is not None)

    async def _filler(self, nursery: trio.Nursery) -> None:
        while True:
            self.downloader.wake = trio.Event()
            now = trio.current_time()
            next_retry = float("inf")
            partials = list(self.downloader.partials.values())
            running = sum(p.filling for p in partials)
            for p in partials:
                if p.filling or running >= MAX_DOWNLOADS or self.paused or self.fills_held or not self._wanted(p):
                    continue
                if p.retry_at > now:
                    next_retry = min(next_retry, p.retry_at)
                    continue
                p.filling = True
                running += 1
                nursery.start_soon(self._fill, p)
            # old versions are kept while a download may still copy chunks from them: until
            # every waiting one has had its first try (which copies all local chunks)
            if not running and all(p.attempted or not self._wanted(p) for p in partials) \
                    and self.store.trash_ids():
                with self.store.transaction():
                    self.store.trash_purge()
                self.downloader.retry_all()  # space came back: downloads that ran out of it retry
            with trio.move_on_at(next_retry):
                await self.downloader.wake.wait()

    def _drop_lost_version(self, p: Partial) -> None:
        """Delete a version none of whose holders has its bytes any more.

        That happens when the tracker keeps, at a path or as a conflict copy, a version its
        holders had already overwritten by later changes of their own (a holder is a peer
        that once had the version complete): the bytes are gone from every peer, and the
        later changes carry on the same causal lines.
        """
        with self.store.transaction():
            node = self.store.node_with_data(p.data_id)
            if node is None:
                self.downloader.drop(p.data_id)
                return
            log.warning("%s: every holder has overwritten this version since; removing it", node.path)
            self._remove_for_remote(node)
            self._commit_delete(node.path, node.kind, node.version)

    async def _fill(self, p: Partial) -> None:
        try:
            await self.downloader.fill(p)
        except ChunkUnavailable as exc:
            now = trio.current_time()
            if exc.lost and p.row.holders and not p.repair:
                # a link that broke mid-answer looks the same once: drop only when it lasts
                if p.lost_since is None:
                    p.lost_since = now
                elif now - p.lost_since >= LOST_CONFIRM:
                    self._drop_lost_version(p)
                    return
            else:
                p.lost_since = None
            p.last_error = exc.why
            p.retry_at = trio.current_time() + p.backoff
            p.backoff = min(p.backoff * 2, RETRY_MAX)
            log.info("download of %s waits: %s", p.path, exc.why)
        except Exception as exc:  # noqa: BLE001 - a fill must never take the mount down
            exc = first_error(exc) if isinstance(exc, BaseExceptionGroup) else exc
            p.retry_at = trio.current_time() + RETRY_MAX
            if isinstance(exc, OSError):
                self.note_error(f"download of {p.path} failed: {exc}; retrying")
            else:
                log.error("download of %s failed: %r; retrying", p.path, exc)
        finally:
            p.filling = False
            p.attempted = True
            self.downloader.wake.set()


def first_error(group: BaseExceptionGroup) -> BaseException:
    """The first leaf of a (nested) exception group: what a single-task failure raised."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _chunk_file(path: os.PathLike, params: ChunkParams) -> list[Chunk]:
    fd = os.open(path, os.O_RDONLY)
    try:
        return chunking.chunk_fd(fd, params)
    finally:
        os.close(fd)


def _chunk_intact(path: os.PathLike, offset: int, chunk: Chunk) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        return chunking.digest(os.pread(fd, chunk.length, offset)) == chunk.digest
    finally:
        os.close(fd)


def _copy_and_chunk(source: str, dest: os.PathLike, params: ChunkParams
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


def _base(path: str) -> str:
    return path.rpartition("/")[2]
