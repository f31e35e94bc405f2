"""Local commits: a local change becomes a new version in the store and in the outbox.

Metadata changes (mkdir, rename, chmod, …) are committed inside the request that made them.
A file's bytes are committed after its last writer closes it: the commit worker (one task)
cuts the data file into chunks in a worker thread and records them. Between the write and
that commit the inode is *busy* (``Inodes.busy``) and remote versions of it wait. A crash in
between leaves the inode marked dirty in the store, and the next start commits it.
"""

import dataclasses
import errno
import logging
import os
from collections.abc import Callable
from typing import Protocol

import trio

from . import datafiles
from .claims import Claims
from .downloads import Downloader
from .errorlog import ErrorLog
from .errors import FsError
from .ignores import ShareIgnores
from .inodes import Inodes, leaf
from .outbox import Outbox
from .overwrites import Overwrites
from .protocol.entries import Entry, Kind
from .protocol.messages import ChunkParams
from .protocol.versions import bump
from .reconcile import own_counter_kept
from .store import Node, Store

log = logging.getLogger(__name__)

COMMIT_RETRY = 1.0


class CacheWatch(Protocol):
    def grew(self) -> None:
        """More file data is kept locally than before."""


class LocalCommits:
    def __init__(self, store: Store, inodes: Inodes, downloader: Downloader, outbox: Outbox,
                 claims: Claims, ignores: ShareIgnores, errors: ErrorLog, cache: CacheWatch,
                 overwrites: Overwrites, params: ChunkParams) -> None:
        self._store = store
        self._inodes = inodes
        self._downloader = downloader
        self._outbox = outbox
        self._claims = claims
        self._ignores = ignores
        self._errors = errors
        self._cache = cache
        self._overwrites = overwrites
        self.peer_id = store.peer_id
        self.params = params
        ignores.on_reload(self.publish_unignored)  # at start, and whenever the rules change

    def use_chunking(self, params: ChunkParams) -> None:
        """The tracker's chunking parameters, for every cut from now on."""
        self.params = params

    # -- recording versions --------------------------------------------------------------

    def commit(self, node: Node, base: dict[str, int] | None = None) -> None:
        """Record ``node`` as a new local version and queue it for the tracker."""
        if not node.path:
            # the share's root is no entry of the table (the tracker refuses the empty path):
            # its mode and times stay local, as 'rsync -a SRC/ MOUNT/' sets them
            log.debug("attributes of the share's root stay local")
            return
        if self._ignores.ignored(node.path, node.kind):
            return  # stays local to this peer
        version = bump(node.version if base is None else base, self.peer_id)
        self._store.update_node(node.ino, version=version)
        self._store.clear_tombstone(node.path)
        partial = self._downloader.partials.get(node.data_id) if node.data_id is not None else None
        entry = dataclasses.replace(node, version=version).entry()
        if partial is not None:
            partial.must_fill = True  # others can only get it once we have it
            self._downloader.wake.set()
            # not a holder of these bytes: who is (as far as this peer heard) goes along
            entry = dataclasses.replace(entry, held=False, held_by=partial.row.holders)
        self._outbox.add(entry)

    def commit_delete(self, path: str, kind: Kind, base: dict[str, int]) -> None:
        if self._ignores.ignored(path, kind):
            return
        version = bump(base, self.peer_id)
        self._store.set_tombstone(path, version)
        self._outbox.add(Entry(path, kind, version=version, deleted=True))

    def queue_content(self, ino: int) -> None:
        """Commit ``ino``'s bytes (and with them its attributes) in the worker."""
        self._inodes.queue_commit(ino)

    def retire_data(self, data_id: int | None) -> None:
        """A node stops using ``data_id``. Downloads here may still copy chunks from it, other
        peers may still fetch them for a while (``Inodes.keep_for_fetchers``), and programs
        that have it open keep reading it; then it is deleted."""
        if data_id is None:
            return
        if data_id in self._inodes.open_data():
            self._downloader.supersede(data_id)
        else:
            self._downloader.drop(data_id)
        self._store.trash_add(data_id)
        self._inodes.keep_for_fetchers(data_id, trio.current_time())
        self._downloader.wake.set()

    def remove(self, node: Node) -> None:
        """Take ``node`` out of the tree (the kernel may still name it: an orphan)."""
        self._inodes.orphan(node)
        self._store.delete_node(node.ino)
        self.retire_data(node.data_id)
        self._ignores.changed(node.path)

    def publish_unignored(self) -> None:
        """Queue a commit of each file made here that an ignore rule kept local and none
        does now (a rule taken out of .syncfsignore, or a default that is no more, such as
        ``*~``): it syncs as if just written, not only after its next change."""
        for ino, path in self._store.never_committed_files():
            if not self._inodes.busy(ino) and not self._ignores.ignored(path, Kind.FILE):
                self.queue_content(ino)

    # -- the commit worker ------------------------------------------------------------------

    def load(self) -> None:
        for ino in self._store.dirty_inos():
            self._inodes.to_commit[ino] = None  # written before a crash, never committed

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        queue = self._inodes.to_commit
        while True:
            while not queue:
                await self._inodes.commit_wake.next().wait()
            ino = next(iter(queue))
            del queue[ino]
            self._inodes.committing.add(ino)
            try:
                await self._commit_content(ino)
            except Exception as exc:
                # keep it queued (and remote versions of it waiting) until a commit succeeds
                if isinstance(exc, OSError):
                    self._errors.note(f"could not commit inode {ino}: {exc}; retrying")
                else:
                    log.exception("could not commit inode %d; retrying", ino)
                self._inodes.committing.discard(ino)
                queue[ino] = None
                await trio.sleep(COMMIT_RETRY)
                continue
            self._inodes.committing.discard(ino)
            node = self._store.find(ino)
            if node is not None and not self._inodes.busy(ino):
                self._inodes.settle(node.path)  # a remote version waited for this commit

    async def _commit_content(self, ino: int) -> None:
        node = self._store.find(ino)
        if node is None or node.kind is not Kind.FILE or node.data_id is None:
            self._store.clear_dirty(ino)
            return
        path = self._store.data_path(node.data_id)
        gen = self._inodes.write_gen.get(ino)
        try:
            chunks = await trio.to_thread.run_sync(datafiles.chunk_file, path, self.params)
        except FileNotFoundError:
            chunks = None  # deleted or replaced while we read it: nothing left to commit
        node = self._store.find(ino)
        if chunks is None or node is None or node.data_id is None or self._store.data_path(node.data_id) != path:
            return
        if self._inodes.write_gen.get(ino) != gen:
            # written while it was cut: the chunks may mix two contents. Never published;
            # the writer's release (or this retry) commits what the file holds then
            if ino not in self._inodes.live:
                self._inodes.queue_commit(ino)
            return
        size = sum(c.length for c in chunks)
        with self._store.transaction():
            self._store.update_node(ino, chunks=tuple(chunks), size=size)
            # offered even while another handle is open: a write through it unindexes
            # again, and serving verifies every chunk against its digest anyway
            self._store.unindex(node.data_id)
            self._store.index_chunks(node.data_id, chunks)
            if ino not in self._inodes.live:
                self._store.clear_dirty(ino)
            self.commit(self._store.get(ino))
        self._overwrites.committed(ino)
        log.debug("committed %s (%d bytes, %d chunks)", node.path, size, len(chunks))
        self._cache.grew()
        self._ignores.changed(node.path)

    # -- files from outside the store --------------------------------------------------------

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
        store = self._store
        before = os.lstat(source)
        store.ensure_room(before.st_size)
        with store.transaction():
            data_id = store.new_data_file()
        try:
            chunks, after, xattrs = await trio.to_thread.run_sync(
                datafiles.copy_and_chunk, source, store.data_path(data_id), self.params)
        except BaseException:
            store.remove_data_file(data_id)
            raise
        if (before.st_ino, before.st_size, before.st_mtime_ns) != (after.st_ino, after.st_size, after.st_mtime_ns):
            store.remove_data_file(data_id)
            return None
        mode, mtime_ns, size = after.st_mode & 0o7777, after.st_mtime_ns, sum(c.length for c in chunks)
        # the tree may have moved on while we copied: decide on what is there now
        with store.transaction():
            node = store.lookup_path(path)
            if not with_xattrs:
                xattrs = node.xattrs if node is not None else {}
            parent = store.lookup_path(path.rpartition("/")[0]) if node is None else None
            refusal: FsError | None = None
            if node is not None and node.kind is not Kind.FILE:
                refusal = FsError(errno.EEXIST, f"{path} is a {node.kind.value} in the share")
            elif node is None and (parent is None or parent.kind is not Kind.DIR):
                refusal = FsError(errno.ENOENT, f"the directory of {path} is not in the share")
            if refusal is not None:
                store.remove_data_file(data_id)  # nothing will ever refer to it
                raise refusal
            if node is not None and node.chunks == chunks:
                self._adopt_data(node, data_id)
                if (node.mode, node.mtime_ns, node.xattrs) != (mode, mtime_ns, xattrs) and node.version == base:
                    store.update_node(node.ino, mode=mode, mtime_ns=mtime_ns, xattrs=xattrs)
                    self.commit(store.get(node.ino))
                node = store.get(node.ino)
                on_commit(node, after)
                return node, after
            base = own_counter_kept(base, store.known_version(path), self.peer_id)
            if node is None:
                assert parent is not None
                node = store.insert_node(parent, leaf(path), Kind.FILE, mode, mtime_ns=mtime_ns,
                                         data_id=data_id, size=size, chunks=chunks, xattrs=xattrs)
            else:
                self.retire_data(node.data_id)
                store.update_node(node.ino, data_id=data_id, chunks=chunks, size=size,
                                  mode=mode, mtime_ns=mtime_ns, xattrs=xattrs)
            store.index_chunks(data_id, chunks)
            self.commit(store.get(node.ino), base=base)
            node = store.get(node.ino)
            on_commit(node, after)
        self._ignores.changed(path)
        return node, after

    def _adopt_data(self, node: Node, data_id: int) -> None:
        """``data_id`` holds exactly ``node``'s chunks: let it complete a stale copy, or
        drop it as a duplicate of a complete one."""
        if node.data_id is None or node.data_id not in self._downloader.partials:
            self._store.remove_data_file(data_id)
            return
        self.retire_data(node.data_id)
        self._store.update_node(node.ino, data_id=data_id)
        self._store.index_chunks(data_id, node.chunks)
        self._claims.have(node.path, node.version)
