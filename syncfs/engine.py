"""The peer engine: commits local changes as new versions and applies remote ones.

It does not know it sits under FUSE: a front end calls the filesystem-level methods
(create, write bookkeeping, rename, …) and gets FsError for refusals; the engine tells the
front end through ``Frontend`` which cached names and inodes went stale.
"""

import dataclasses
import errno
import logging
import os
import time
from collections.abc import Callable
from typing import Protocol

import msgpack
import trio

from . import chunking
from .errors import FsError
from .p2p import BadChunk, ChunkUnavailable, PeerPool
from .protocol.entries import Chunk, Entry, Kind
from .protocol.errors import ProtocolError
from .protocol.messages import ChunkParams, Have, PeerInfo, Table, TableRow
from .protocol.paths import BadPath, join, parent_of, validate_path
from .protocol.versions import Order, bump, compare
from .reconcile import Action, decide
from .store import ROOT_INO, Node, NotFound, Store, read_chunk

log = logging.getLogger(__name__)

MAX_DOWNLOADS = 4
CHUNKS_IN_FLIGHT_PER_FILE = 8
RETRY_INITIAL = 0.5
RETRY_MAX = 10.0


class Frontend(Protocol):
    def invalidate_inode(self, ino: int) -> None: ...
    def invalidate_entry(self, parent_ino: int, name: str) -> None: ...


class _NoFrontend:
    def invalidate_inode(self, ino: int) -> None:
        pass

    def invalidate_entry(self, parent_ino: int, name: str) -> None:
        pass


@dataclasses.dataclass
class Handle:
    fh: int
    ino: int
    fd: int
    writable: bool
    dirty: bool = False


@dataclasses.dataclass
class LiveAttrs:
    """Size and mtime of a file while programs write to it (kept off SQLite's hot path)."""

    size: int
    mtime_ns: int
    writers: int = 0


@dataclasses.dataclass
class Download:
    row: TableRow
    scope: trio.CancelScope | None = None
    retry_at: float = 0.0
    backoff: float = RETRY_INITIAL
    last_error: str = ""


def _name(name: str) -> str:
    validate_path(name)
    if "/" in name:
        raise FsError(errno.EINVAL, "name contains '/'")
    return name


class Engine:
    def __init__(self, store: Store, pool: PeerPool, params: ChunkParams = chunking.DEFAULT_PARAMS) -> None:
        self.store = store
        self.pool = pool
        self.peer_id = store.peer_id
        self.params = params
        self.frontend: Frontend = _NoFrontend()
        self.handles: dict[int, Handle] = {}
        self._next_fh = 1
        self.live: dict[int, LiveAttrs] = {}
        self.open_count: dict[int, int] = {}
        self.orphans: dict[int, Node] = {}
        self._commit_queue: dict[int, None] = {}
        self._commit_wake = trio.Event()
        self.outbox_wake = trio.Event()
        self.haves: list[Have] = []
        self.downloads: dict[str, Download] = {}
        self._fetch_wake = trio.Event()
        self._trash: list[int] = []
        self._chunks_limit = trio.CapacityLimiter(16)
        self.on_have: Callable[[], None] = lambda: None

    # -- lifecycle -------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        self._clean_data_dir()
        for path, raw in self.store.downloads():
            self.downloads[path] = Download(TableRow.from_wire(msgpack.unpackb(raw)))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._commit_worker)
            nursery.start_soon(self._fetcher, nursery)
            task_status.started()

    def _clean_data_dir(self) -> None:
        """Remove data files no node refers to: leftovers of downloads and deletions cut short."""
        referenced = self.store.referenced_data_ids()
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
        live = self.live.get(ino)
        if live is not None:
            node = dataclasses.replace(node, size=live.size, mtime_ns=live.mtime_ns)
        return node

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

    def _commit(self, node: Node, base: dict[str, int] | None = None) -> None:
        """Record ``node`` as a new local version and queue it for the tracker."""
        version = bump(node.version if base is None else base, self.peer_id)
        self.store.update_node(node.ino, version=version)
        self.store.clear_tombstone(node.path)
        self.store.outbox_add(dataclasses.replace(node, version=version).entry())
        self.outbox_wake.set()

    def _commit_delete(self, path: str, kind: Kind, base: dict[str, int]) -> None:
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
        handle = self._open_handle(node, writable=True)
        handle.dirty = True
        return handle, self.node(node.ino)

    def open(self, ino: int, flags: int) -> Handle:
        node = self.node(ino)
        if node.kind is not Kind.FILE:
            raise FsError(errno.EISDIR if node.kind is Kind.DIR else errno.ELOOP)
        writable = (flags & os.O_ACCMODE) != os.O_RDONLY
        handle = self._open_handle(node, writable)
        if writable and flags & os.O_TRUNC:
            os.ftruncate(handle.fd, 0)
            self.wrote(handle, 0, 0)
            self.live[ino].size = 0
        return handle

    def _open_handle(self, node: Node, writable: bool) -> Handle:
        assert node.data_id is not None
        fd = os.open(self.store.data_path(node.data_id), os.O_RDWR if writable else os.O_RDONLY)
        handle = Handle(self._next_fh, node.ino, fd, writable)
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

    def wrote(self, handle: Handle, offset: int, length: int) -> None:
        """Bookkeeping after a program wrote ``length`` bytes at ``offset`` through ``handle``."""
        live = self.live[handle.ino]
        if not handle.dirty:
            handle.dirty = True
            node = self.store.find(handle.ino)
            if node is not None and node.data_id is not None:
                # the old content's chunks are being overwritten: stop offering them
                self.store.unindex(node.data_id)
        live.size = max(live.size, offset + length)
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
            self.orphans.pop(ino, None)
        if not handle.writable:
            return
        live = self.live[ino]
        live.writers -= 1
        if self.store.find(ino) is not None and handle.dirty:
            self.store.update_node(ino, size=live.size, mtime_ns=live.mtime_ns)
            self._commit_queue[ino] = None
            self._commit_wake.set()
        if live.writers == 0:
            del self.live[ino]
            self._fetch_wake.set()  # a remote version may have waited for the writer

    def fsync(self, fh: int) -> None:
        os.fsync(self.handle(fh).fd)

    def setattr(self, ino: int, *, mode: int | None = None, size: int | None = None,
                mtime_ns: int | None = None, fh: int | None = None) -> Node:
        node = self.node(ino)
        if self.store.find(ino) is None:
            raise FsError(errno.ENOENT, "file was deleted")
        fields: dict[str, object] = {}
        if mode is not None:
            fields["mode"] = mode & 0o7777
        live = self.live.get(ino)
        if size is not None:
            if node.kind is not Kind.FILE:
                raise FsError(errno.EISDIR)
            assert node.data_id is not None
            os.truncate(self.store.data_path(node.data_id), size)
            self.store.unindex(node.data_id)
            fields["size"] = size
            if live is not None:
                live.size = size
            if mtime_ns is None:
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
            elif size is not None:
                self._commit_queue[ino] = None
                self._commit_wake.set()
            elif fields:
                self._commit(self.store.get(ino))
        return self.node(ino)

    def unlink(self, parent_ino: int, name: str) -> None:
        node = self.lookup(parent_ino, name)
        if node.kind is Kind.DIR:
            raise FsError(errno.EISDIR)
        with self.store.transaction():
            self._remove(node)
            self._commit_delete(node.path, node.kind, node.version)

    def rmdir(self, parent_ino: int, name: str) -> None:
        node = self.lookup(parent_ino, name)
        if node.kind is not Kind.DIR:
            raise FsError(errno.ENOTDIR)
        if self.store.has_children(node.ino):
            raise FsError(errno.ENOTEMPTY)
        with self.store.transaction():
            self._remove(node)
            self._commit_delete(node.path, node.kind, node.version)

    def _remove(self, node: Node) -> None:
        if node.ino in self.open_count:
            self.orphans[node.ino] = node
        self.store.delete_node(node.ino)
        if node.data_id is not None:
            self._trash.append(node.data_id)
            self._fetch_wake.set()

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
            self.store.move_node(node, parent, new_name)
            moved = [self.store.get(n.ino) for n in before]
            for n in moved:
                base = target.version if (target is not None and n.ino == node.ino) else self.store.tombstone(n.path) or {}
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
            try:
                await self._commit_content(ino)
            except OSError as exc:
                log.error("could not commit inode %d: %s", ino, exc)
            except Exception:
                log.exception("could not commit inode %d", ino)

    async def _commit_content(self, ino: int) -> None:
        node = self.store.find(ino)
        if node is None or node.kind is not Kind.FILE or node.data_id is None:
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
            if ino not in self.live:
                self.store.unindex(node.data_id)
                self.store.index_chunks(node.data_id, chunks)
            self._commit(self.store.get(ino))
        log.debug("committed %s (%d bytes, %d chunks)", node.path, size, len(chunks))

    # -- serving ---------------------------------------------------------------------

    async def read_local_chunk(self, want: bytes, length: int | None = None) -> bytes | None:
        """The bytes of chunk ``want`` from any local data file, verified; None if absent."""
        for data_id, offset, n in self.store.chunk_locations(want):
            if length is not None and n != length:
                continue
            try:
                data = await trio.to_thread.run_sync(_read_verified, self.store.data_path(data_id), offset, n, want)
            except OSError:
                continue
            if data is not None:
                return data
        return None

    # -- remote changes ------------------------------------------------------------------

    def set_peers(self, peers: tuple[PeerInfo, ...]) -> None:
        self.pool.set_peers(peers)
        for d in self.downloads.values():
            d.retry_at = 0.0
        self._fetch_wake.set()

    def apply_table(self, table: Table) -> None:
        with self.store.transaction():
            for row in table.rows:
                try:
                    self._apply_row(row)
                except FsError as exc:
                    log.warning("cannot apply %s: %s", row.entry.path, exc)
            self.store.set_meta("last_seq", table.seq)
        self._fetch_wake.set()

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
        pending = bool(self.store.outbox_for(path))
        busy = node is not None and node.ino in self.live
        return node, version, pending, busy

    def _apply_row(self, row: TableRow) -> None:
        e = row.entry
        self._ack_outbox(e)
        current = self.downloads.get(e.path)
        if current is not None and current.row.entry.version == e.version:
            current.row = row  # same version, news about its holders
            current.retry_at = 0.0
            self.store.download_put(e.path, msgpack.packb(row.to_wire()))
            return
        node, version, pending, busy = self._local_state(e.path)
        action = decide(e, version, pending=pending, busy=busy)
        if action in (Action.IGNORE, Action.WAIT):
            return
        self._drop_download(e.path)
        if e.kind is Kind.FILE and not e.deleted:
            if action is Action.APPLY and node is not None and node.kind is Kind.FILE and node.chunks == e.chunks:
                self.store.update_node(node.ino, mode=e.mode, mtime_ns=e.mtime_ns, version=e.version)
                self.frontend.invalidate_inode(node.ino)
                return
            self.downloads[e.path] = Download(row)
            self.store.download_put(e.path, msgpack.packb(row.to_wire()))
            return
        if action is Action.DEFER:
            self.downloads[e.path] = Download(row)
            self.store.download_put(e.path, msgpack.packb(row.to_wire()))
            return
        if e.deleted:
            self._apply_delete(e, node)
        elif e.kind is Kind.DIR:
            self._apply_dir(e, node)
        else:
            self._apply_symlink(e, node)

    def _drop_download(self, path: str) -> None:
        d = self.downloads.pop(path, None)
        if d is not None:
            self.store.download_remove(path)
            if d.scope is not None:
                d.scope.cancel()

    def _ensure_parents(self, path: str) -> Node:
        """The parent directory node of ``path``, creating missing directories on the way."""
        parent = self.store.get(ROOT_INO)
        parts = path.split("/")[:-1]
        for part in parts:
            child = self.store.lookup(parent.ino, part)
            if child is None:
                child = self.store.insert_node(parent, part, Kind.DIR, 0o755)
                self.frontend.invalidate_entry(parent.ino, part)
                self.frontend.invalidate_inode(parent.ino)
            elif child.kind is not Kind.DIR:
                raise FsError(errno.ENOTDIR, f"{child.path} is not a directory here")
            parent = child
        return parent

    def _replace_for(self, node: Node | None, kind: Kind) -> Node | None:
        """Clear a node of another kind out of the way of a remote entry of ``kind``."""
        if node is None or node.kind is kind:
            return node
        if node.kind is Kind.DIR and self.store.has_children(node.ino):
            raise FsError(errno.ENOTEMPTY, f"{node.path} is a non-empty directory here")
        self._remove(node)
        self._notify_removed(node)
        return None

    def _notify_removed(self, node: Node) -> None:
        self.frontend.invalidate_entry(node.parent, node.name)
        self.frontend.invalidate_inode(node.parent)

    def _notify_added(self, node: Node) -> None:
        self.frontend.invalidate_entry(node.parent, node.name)
        self.frontend.invalidate_inode(node.parent)

    def _apply_delete(self, e: Entry, node: Node | None) -> None:
        if node is not None:
            if node.kind is Kind.DIR and self.store.has_children(node.ino):
                # it still holds files this side has and the deleter did not know of: keep it
                self._commit(node, base={**e.version, **{k: max(v, e.version.get(k, 0)) for k, v in node.version.items()}})
                return
            self._remove(node)
            self._notify_removed(node)
        self.store.set_tombstone(e.path, e.version)

    def _apply_dir(self, e: Entry, node: Node | None) -> None:
        node = self._replace_for(node, Kind.DIR)
        if node is None:
            parent = self._ensure_parents(e.path)
            node = self.store.insert_node(parent, e.path.rpartition("/")[2], Kind.DIR, e.mode, mtime_ns=e.mtime_ns, version=e.version)
            self._notify_added(node)
        else:
            self.store.update_node(node.ino, mode=e.mode, version=e.version)
            self.frontend.invalidate_inode(node.ino)
        self.store.clear_tombstone(e.path)

    def _apply_symlink(self, e: Entry, node: Node | None) -> None:
        if node is not None:
            if node.kind is Kind.DIR and self.store.has_children(node.ino):
                raise FsError(errno.ENOTEMPTY, f"{node.path} is a non-empty directory here")
            self._remove(node)
            self._notify_removed(node)
        parent = self._ensure_parents(e.path)
        node = self.store.insert_node(
            parent, e.path.rpartition("/")[2], Kind.SYMLINK, 0o777, mtime_ns=e.mtime_ns, target=e.target, version=e.version
        )
        self._notify_added(node)
        self.store.clear_tombstone(e.path)

    # -- downloads -----------------------------------------------------------------------

    async def _fetcher(self, nursery: trio.Nursery) -> None:
        while True:
            now = trio.current_time()
            next_retry = None
            running = sum(1 for d in self.downloads.values() if d.scope is not None)
            for path, d in list(self.downloads.items()):
                if d.scope is not None or running >= MAX_DOWNLOADS:
                    continue
                node = self.store.lookup_path(path)
                if node is not None and node.ino in self.live:
                    continue  # a local writer has it open; its release wakes us
                if d.retry_at > now:
                    next_retry = d.retry_at if next_retry is None else min(next_retry, d.retry_at)
                    continue
                d.scope = trio.CancelScope()
                running += 1
                nursery.start_soon(self._download, path, d)
            if not running and self._trash:
                self._purge_trash()
            with trio.move_on_at(next_retry if next_retry is not None else float("inf")):
                await self._fetch_wake.wait()
            self._fetch_wake = trio.Event()

    def _purge_trash(self) -> None:
        trash, self._trash = self._trash, []
        with self.store.transaction():
            for data_id in trash:
                self.store.remove_data_file(data_id)

    async def _download(self, path: str, d: Download) -> None:
        data_id = None
        assert d.scope is not None
        try:
            with d.scope:
                with self.store.transaction():
                    data_id = self.store.new_data_file(d.row.entry.size)
                await self._assemble(data_id, d.row)
                if self._install(d.row, data_id):
                    data_id = None
                    self.downloads.pop(path, None)
                    self.store.download_remove(path)
        except (ChunkUnavailable, OSError) as exc:
            d.last_error = str(exc)
            d.retry_at = trio.current_time() + d.backoff
            d.backoff = min(d.backoff * 2, RETRY_MAX)
            log.info("download of %s waits: %s", path, exc)
        except Exception:
            # a bug must not take the mount down with it
            log.exception("download of %s failed", path)
            d.retry_at = trio.current_time() + RETRY_MAX
        finally:
            d.scope = None
            if data_id is not None:
                self._trash.append(data_id)
            self._fetch_wake.set()

    async def _assemble(self, data_id: int, row: TableRow) -> None:
        entry = row.entry
        fd = os.open(self.store.data_path(data_id), os.O_WRONLY)
        avoid: set[str] = set()
        try:
            limit = trio.Semaphore(CHUNKS_IN_FLIGHT_PER_FILE)

            async def one(chunk: Chunk, offset: int) -> None:
                async with limit, self._chunks_limit:
                    data = await self.read_local_chunk(chunk.digest, chunk.length)
                    if data is None:
                        while True:
                            try:
                                data = await self.pool.fetch(chunk.digest, chunk.length, row.holders, avoid)
                                break
                            except BadChunk:
                                continue
                    await trio.to_thread.run_sync(os.pwrite, fd, data, offset)

            try:
                async with trio.open_nursery() as nursery:
                    for chunk, offset in zip(entry.chunks, chunking.offsets(entry.chunks), strict=True):
                        nursery.start_soon(one, chunk, offset)
            except ExceptionGroup as group:
                raise first_error(group) from None
            await trio.to_thread.run_sync(os.fsync, fd)
        finally:
            os.close(fd)

    def _install(self, row: TableRow, data_id: int) -> bool:
        """Make a downloaded version current, if it still should be; True if it was."""
        e = row.entry
        with self.store.transaction():
            node, version, pending, busy = self._local_state(e.path)
            if decide(e, version, pending=pending, busy=busy) is not Action.APPLY:
                return False
            if node is not None:
                # A new version is a new inode, as after a rename over the file: programs that
                # hold the old one open keep reading the old bytes, and the kernel's page cache
                # of the old inode can never mix into the new content.
                if node.kind is Kind.DIR and self.store.has_children(node.ino):
                    raise FsError(errno.ENOTEMPTY, f"{node.path} is a non-empty directory here")
                self._remove(node)
                self._notify_removed(node)
            parent = self._ensure_parents(e.path)
            node = self.store.insert_node(
                parent, e.path.rpartition("/")[2], Kind.FILE, e.mode, mtime_ns=e.mtime_ns,
                version=e.version, data_id=data_id, size=e.size, chunks=e.chunks,
            )
            self._notify_added(node)
            self.store.index_chunks(data_id, e.chunks)
            self.store.clear_tombstone(e.path)
        self.haves.append(Have(e.path, e.version))
        self.on_have()
        log.debug("installed %s", e.path)
        return True


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


def _read_verified(path: os.PathLike, offset: int, length: int, want: bytes) -> bytes | None:
    data = read_chunk(path, offset, length)  # type: ignore[arg-type]
    return data if chunking.digest(data) == want else None


__all__ = ["Engine", "Frontend", "Handle", "NotFound", "ProtocolError", "parent_of"]
