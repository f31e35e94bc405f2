"""The bytes of a committed version that a local write overwrites in place, kept a while.

A program that rewrites a file in place (a database, ``dd conv=notrunc``) destroys the
committed version's bytes chunk by chunk, while other peers may still be fetching that
version for a program that opened it. Before a write first touches a chunk of the committed
version, that chunk (if its bytes still verify) is copied into a side data file, indexed
there, and so stays servable; the side file is kept until a while after the next commit
(``Inodes.keep_for_fetchers``), then deleted with the trash. New files, and files emptied
into a new data file (``Files._emptied_in_a_new_file``), have nothing to keep.

Runs in the FUSE handlers (a chunk at a time, from the page cache, before the write it
protects); what it keeps is not durable: after a crash the side files are trash.
"""

import bisect
import dataclasses
import os

import trio

from . import chunking
from .inodes import Inodes
from .protocol.entries import Chunk
from .store import Node, Store


@dataclasses.dataclass
class _Saving:
    chunks: tuple[Chunk, ...]  # of the committed version being overwritten
    offsets: list[int]
    saved: set[int]  # indices copied aside (or found already changed)
    side: int | None = None  # the data file they were copied into


class Overwrites:
    def __init__(self, store: Store, inodes: Inodes) -> None:
        self._store = store
        self._inodes = inodes
        self._saving: dict[int, _Saving] = {}

    def before_write(self, node: Node, fd: int, offset: int, length: int) -> None:
        """A write of [offset, offset+length) into ``node``'s data file (open as ``fd``) is
        about to happen: keep what it overwrites of the committed version."""
        s = self._saving.get(node.ino)
        if s is None:
            if not node.chunks:
                return  # nothing committed to keep (a new file)
            s = self._saving[node.ino] = _Saving(node.chunks, chunking.offsets(node.chunks), set())
        if len(s.saved) == len(s.chunks) or length <= 0:
            return
        first = max(bisect.bisect_right(s.offsets, offset) - 1, 0)
        for i in range(first, len(s.chunks)):
            if s.offsets[i] >= offset + length:
                break
            if i not in s.saved:
                s.saved.add(i)
                self._save(node.ino, s, i, fd)

    def emptied(self, ino: int, chunks: tuple[Chunk, ...]) -> None:
        """The committed version's data file was set aside whole: nothing to copy until the
        next commit."""
        self._saving[ino] = _Saving(chunks, [], set(range(len(chunks))))

    def committed(self, ino: int) -> None:
        """A new version of ``ino`` is committed: what was kept of the one before goes a while
        from now, and the next write keeps what it overwrites of the new one."""
        s = self._saving.pop(ino, None)
        if s is not None and s.side is not None:
            self._inodes.keep_for_fetchers(s.side, trio.current_time())

    def _save(self, ino: int, s: _Saving, i: int, fd: int) -> None:
        chunk, at = s.chunks[i], s.offsets[i]
        data = os.pread(fd, chunk.length, at)
        if len(data) != chunk.length or chunking.digest(data) != chunk.digest:
            return  # already changed (written before a crash, or truncated): not that version
        if s.side is None:
            with self._store.transaction():
                s.side = self._store.new_data_file()
                self._store.trash_add(s.side)  # deleted once no longer kept
            self._inodes.kept_until[s.side] = float("inf")  # until the next commit
        side = os.open(self._store.data_path(s.side), os.O_WRONLY)
        try:
            os.pwrite(side, data, at)
        finally:
            os.close(side)
        with self._store.transaction():
            self._store.index_chunks_at(s.side, [(chunk, at)])
