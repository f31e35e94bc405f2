"""The filesystem operations a front end calls: create, open, read, write, rename, …

It does not know it sits under FUSE: refusals are ``FsError``s, which the front end turns
into errnos at its one boundary. Each operation changes the store in one transaction and
commits metadata at once; a file's bytes are committed after its last writer closes it
(``LocalCommits``). Remote rows that waited for a writer are applied by the remote side's
task once ``Inodes.settle`` says so, never inside these handlers.
"""

import errno
import os
import time

from .commits import LocalCommits
from .downloads import Downloader
from .errorlog import ErrorLog
from .errors import FsError
from .ignore import IGNORE_FILE
from .ignores import ShareIgnores
from .inodes import Handle, Inodes, checked_name
from .overwrites import Overwrites
from .p2p import ChunkUnavailable
from .pinning import Pinning
from .protocol.entries import Kind
from .protocol.paths import BadPath, join, validate_path
from .protocol.versions import merge
from .store import Node, Store

RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2


class Files:
    def __init__(self, store: Store, inodes: Inodes, commits: LocalCommits, downloader: Downloader,
                 pinning: Pinning, ignores: ShareIgnores, errors: ErrorLog, overwrites: Overwrites, *,
                 fetch_timeout: float, kernel_mtime: bool) -> None:
        self.store = store
        self.inodes = inodes
        self._commits = commits
        self._downloader = downloader
        self._pinning = pinning
        self._ignores = ignores
        self._errors = errors
        self._overwrites = overwrites
        self.fetch_timeout = fetch_timeout
        # the front end's kernel keeps the mtime of files being written (FUSE writeback
        # cache) and sends it by setattr: writes and truncates must not invent one
        self.kernel_mtime = kernel_mtime

    # -- creating --------------------------------------------------------------------------

    def mkdir(self, parent_ino: int, name: str, mode: int) -> Node:
        parent = self.inodes.dir(parent_ino)
        path = self.inodes.free_name(parent, name)
        with self.store.transaction():
            node = self.store.insert_node(parent, name, Kind.DIR, mode & 0o7777, version=self.store.known_version(path))
            self._commits.commit(node)
        return self.inodes.node(node.ino)

    def symlink(self, parent_ino: int, name: str, target: str) -> Node:
        parent = self.inodes.dir(parent_ino)
        path = self.inodes.free_name(parent, name)
        with self.store.transaction():
            node = self.store.insert_node(parent, name, Kind.SYMLINK, 0o777, target=target,
                                          version=self.store.known_version(path))
            self._commits.commit(node)
        return self.inodes.node(node.ino)

    def create(self, parent_ino: int, name: str, mode: int) -> tuple[Handle, Node]:
        parent = self.inodes.dir(parent_ino)
        path = self.inodes.free_name(parent, name)
        with self.store.transaction():
            data_id = self.store.new_data_file()
            node = self.store.insert_node(
                parent, name, Kind.FILE, mode & 0o7777, data_id=data_id, version=self.store.known_version(path)
            )
            self.store.mark_dirty(node.ino)
        handle = self._open_handle(node, writable=True)
        handle.dirty = True
        return handle, self.inodes.node(node.ino)

    # -- open files ------------------------------------------------------------------------

    async def open(self, ino: int, flags: int) -> Handle:
        node = self.inodes.node(ino)
        if node.kind is not Kind.FILE:
            raise FsError(errno.EISDIR if node.kind is Kind.DIR else errno.ELOOP)
        writable = (flags & os.O_ACCMODE) != os.O_RDONLY
        if writable and ino in self.inodes.gone_remotely:
            # opened through a name the kernel had not forgotten yet: writes to it would be
            # lost; ESTALE makes the kernel look the name up again and open what is there now
            raise FsError(errno.ESTALE, "replaced by a remote change")
        if writable:
            await self._download_out_of_the_way(node, truncating=bool(flags & os.O_TRUNC))
            if ino in self.inodes.gone_remotely:  # replaced while we waited
                raise FsError(errno.ESTALE, "replaced by a remote change")
            node = self.inodes.node(ino)
            if flags & os.O_TRUNC:
                node = self._emptied_in_a_new_file(node)
        handle = self._open_handle(node, writable)
        if writable and flags & os.O_TRUNC:
            os.ftruncate(handle.fd, 0)
            self.wrote(handle, 0, 0)
            self.inodes.live[ino].size = 0
        return handle

    def _open_handle(self, node: Node, writable: bool) -> Handle:
        handle = self.inodes.open_handle(node, writable)
        self._pinning.uses.used(node.path)
        return handle

    def will_write(self, handle: Handle, offset: int, length: int) -> None:
        """Before a write through ``handle``: refuse it if the store is full (keeping room
        for metadata), and on the first write remember the inode must be committed, so that
        even a crash right after the bytes change cannot forget them."""
        live = self.inodes.live[handle.ino]
        if offset + length > live.size:
            self.store.ensure_room(offset + length - live.size)
        node = self.store.find(handle.ino)
        if node is not None and node.data_id == handle.data_id:
            self._overwrites.before_write(node, handle.fd, offset, length)
        if not handle.dirty:
            self.wrote(handle, 0, 0)

    def wrote(self, handle: Handle, offset: int, length: int) -> None:
        """Bookkeeping after a program wrote ``length`` bytes at ``offset`` through ``handle``."""
        live = self.inodes.live[handle.ino]
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
        self.inodes.written(handle.ino)
        if not self.kernel_mtime:
            live.mtime_ns = time.time_ns()

    def release(self, fh: int) -> None:
        handle = self.inodes.close_handle(fh)
        if handle is None:
            return
        if handle.data_id in self._downloader.superseded and handle.data_id not in self.inodes.open_data():
            self._downloader.drop(handle.data_id)  # its last reader is gone
            self.inodes.trash_changed()
            self._downloader.wake.set()
        if not handle.writable:
            return
        ino = handle.ino
        live = self.inodes.live[ino]
        live.writers -= 1
        node = self.store.find(ino)
        if node is not None and node.path == IGNORE_FILE and handle.dirty:
            self._ignores.reload()  # new rules hold from now, not from when the commit lands
        if node is not None and handle.dirty:
            self.store.update_node(ino, size=live.size, mtime_ns=live.mtime_ns)
            self._commits.queue_content(ino)
        if live.writers == 0:
            del self.inodes.live[ino]
            if node is not None and not self.inodes.busy(ino):
                self.inodes.settle(node.path)  # a remote version may have waited for this writer

    def fsync(self, fh: int) -> None:
        os.fsync(self.inodes.handle(fh).fd)

    async def read(self, handle: Handle, offset: int, size: int) -> bytes:
        partial = handle.partial
        if partial is not None and partial.cancelled:
            if all(i in partial.present for i in partial.covering(offset, size)):
                return os.pread(handle.fd, size, offset)
            # replaced or deleted before its bytes arrived: never hand out unverified holes
            raise FsError(errno.EIO, f"{partial.path} was replaced before it was fetched")
        if partial is not None and partial.complete:
            partial = None
        if partial is not None and self.store.get_meta("paused", "") == "hard" and not all(
            partial.readable(i) for i in partial.covering(offset, size)
        ):
            raise FsError(errno.EIO, "transfers are paused (--hard); run 'syncfs resume'")
        if partial is not None:
            needed = partial.covering(offset, size)
            try:
                await self._downloader.ensure(partial, needed, self.fetch_timeout, for_read=True)
            except ChunkUnavailable as exc:
                self._errors.note(f"read of {partial.path} failed: {exc.why}")
                raise FsError(errno.EIO, exc.why) from None
            if needed:
                self._downloader.read_ahead(partial, needed[-1])
        # in the loop, not a worker thread: for the kernel's 1 MiB read-ahead requests the
        # hand-off cost more than it saved (bench/RESULTS.md, paired runs)
        if partial is not None:
            return partial.read(handle.fd, offset, size)  # ensure left every chunk readable
        return os.pread(handle.fd, size, offset)

    def write(self, handle: Handle, offset: int, data: bytes) -> int:
        """Write ``data`` through ``handle`` (refused with ENOSPC when the store is full)."""
        self.will_write(handle, offset, len(data))
        # a page-cache copy, in the loop: for the kernel's 1 MiB writeback requests a worker
        # thread's hand-off cost more than it saved (bench/RESULTS.md, paired runs)
        n = os.pwrite(handle.fd, data, offset)
        self.wrote(handle, offset, n)
        return n

    def _emptied_in_a_new_file(self, node: Node) -> Node:
        """A program empties ``node`` to write it anew (O_TRUNC, truncate to 0): when its bytes
        are a committed version nobody here has open, it gets a new empty data file and the
        old one stays servable a while (``LocalCommits.retire_data``), so that a peer reading
        that version can finish it. Open elsewhere here, it is emptied in place, as POSIX
        says every descriptor of the file must see."""
        if node.kind is not Kind.FILE or node.data_id is None or not node.chunks \
                or node.ino in self.inodes.open_count or self.inodes.busy(node.ino) \
                or node.data_id in self._downloader.partials:
            return node
        with self.store.transaction():
            new = self.store.new_data_file()
            self.store.update_node(node.ino, data_id=new)
            self._commits.retire_data(node.data_id)
        self._overwrites.emptied(node.ino, node.chunks)
        return self.inodes.node(node.ino)

    async def _download_out_of_the_way(self, node: Node, *, truncating: bool) -> None:
        """Before a program changes a file's bytes: a download of it stops if the program
        empties the file (once no chunk write can land on it any more), and completes
        first otherwise (the program changes the whole newest version)."""
        if truncating:
            await self._downloader.stop(node.data_id)
            return
        partial = self._downloader.partials.get(node.data_id) if node.data_id is not None else None
        if partial is None:
            return
        try:
            await self._downloader.complete(partial, self.fetch_timeout)
        except ChunkUnavailable as exc:
            if partial.cancelled:  # replaced or truncated meanwhile: open what is there now
                raise FsError(errno.ESTALE, "replaced while it was completed") from None
            self._errors.note(f"could not complete {partial.path} for writing: {exc.why}")
            raise FsError(errno.EIO, exc.why) from None

    # -- attributes ------------------------------------------------------------------------

    async def setattr(self, ino: int, *, mode: int | None = None, size: int | None = None,
                      mtime_ns: int | None = None, fh: int | None = None) -> Node:
        node = self.inodes.node(ino)
        if self.store.find(ino) is None:
            raise FsError(errno.ENOENT, "file was deleted")
        if size is not None and node.kind is Kind.FILE:
            await self._download_out_of_the_way(node, truncating=size == 0)
            if self.store.find(ino) is None or ino in self.inodes.gone_remotely:  # while we waited
                raise FsError(errno.ESTALE, "replaced by a remote change")
            node = self.inodes.node(ino)
        fields: dict[str, object] = {}
        if mode is not None:
            fields["mode"] = mode & 0o7777
        live = self.inodes.live.get(ino)
        if size is not None:
            if node.kind is not Kind.FILE:
                raise FsError(errno.EISDIR)
            if size == 0:
                node = self._emptied_in_a_new_file(node)
            assert node.data_id is not None
            stored = self.store.find(ino)
            if stored is not None and size < node.size:
                fd = os.open(self.store.data_path(node.data_id), os.O_RDONLY)
                try:
                    self._overwrites.before_write(stored, fd, size, node.size - size)
                finally:
                    os.close(fd)
            with self.store.transaction():
                self.store.unindex(node.data_id)
                self.store.mark_dirty(ino)
            os.truncate(self.store.data_path(node.data_id), size)
            fields["size"] = size
            self.inodes.written(ino)  # a commit cutting the old length must not publish
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
                writer = self.inodes.writer_of(ino)
                if writer is not None:
                    writer.dirty = True
            elif size is not None or self.inodes.busy(ino):
                # a content commit publishes the attributes with the right bytes
                self._commits.queue_content(ino)
            elif fields:
                self._commits.commit(self.store.get(ino))
        return self.inodes.node(ino)

    # -- removing and renaming ----------------------------------------------------------------

    def unlink(self, parent_ino: int, name: str) -> None:
        node = self.inodes.lookup(parent_ino, name)
        if node.kind is Kind.DIR:
            raise FsError(errno.EISDIR)
        self._remove_committed(node)

    def rmdir(self, parent_ino: int, name: str) -> None:
        node = self.inodes.lookup(parent_ino, name)
        if node.kind is not Kind.DIR:
            raise FsError(errno.ENOTDIR)
        if self.store.has_children(node.ino):
            raise FsError(errno.ENOTEMPTY)
        self._remove_committed(node)

    def _remove_committed(self, node: Node) -> None:
        with self.store.transaction():
            self._commits.remove(node)
            self._commits.commit_delete(node.path, node.kind, node.version)
            self._pinning.forget(node.path)

    def rename(self, old_parent: int, old_name: str, new_parent: int, new_name: str, flags: int = 0) -> None:
        if flags & RENAME_EXCHANGE:
            raise FsError(errno.EINVAL, "RENAME_EXCHANGE is not supported")
        node = self.inodes.lookup(old_parent, old_name)
        parent = self.inodes.dir(new_parent)
        try:
            new_path = validate_path(join(parent.path, checked_name(new_name)))
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
                self._commits.remove(target)
                self._pinning.forget(target.path)
            self.store.move_node(node, parent, new_name)
            self._pinning.moved(node.path, new_path)
            moved = [self.store.get(n.ino) for n in before]
            for n in moved:
                base = target.version if (target is not None and n.ino == node.ino) else self.store.tombstone(n.path) or {}
                if n.kind is Kind.FILE and self.inodes.busy(n.ino):
                    # its pending content commit publishes it, with the right bytes, here
                    self.store.update_node(n.ino, version=merge(base, n.version))
                    self.store.clear_tombstone(n.path)
                    continue
                self._commits.commit(n, base=base)
            for n in reversed(before):
                self._commits.commit_delete(n.path, n.kind, n.version)
