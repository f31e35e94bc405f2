"""File contents: the data files under ``data/``, the index of the chunks they hold, data
files no version uses any more (trash), and inodes written locally but not yet committed."""

import errno
import os
from collections.abc import Collection
from pathlib import Path

from ..protocol.entries import Chunk
from .db import StoreBase

RESERVE = 8 * 1024 * 1024  # kept free for SQLite: deleting files must work on a full disk


class ContentMixin(StoreBase):
    """Data files are named by a ``data_id`` never used twice; a chunk is offered from a
    data file only while the chunk index lists it there."""

    # -- data files and the chunk index ------------------------------------------------

    def data_path(self, data_id: int) -> Path:
        return self.data_dir / str(data_id)

    def new_data_file(self, size: int = 0) -> int:
        data_id = self.db.execute("INSERT INTO data_ids (dummy) VALUES (0)").lastrowid
        fd = os.open(self.data_path(data_id), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)  # type: ignore[arg-type]
        try:
            if size:
                os.ftruncate(fd, size)
        finally:
            os.close(fd)
        return data_id  # type: ignore[return-value]

    def index_chunks(self, data_id: int, chunks: tuple[Chunk, ...] | list[Chunk]) -> None:
        rows, pos = [], 0
        for c in chunks:
            rows.append((c.digest, data_id, pos, c.length))
            pos += c.length
        self.db.executemany("INSERT INTO chunk_index (digest, data_id, offset, length) VALUES (?, ?, ?, ?)", rows)

    def index_chunks_at(self, data_id: int, placed: list[tuple[Chunk, int]]) -> None:
        self.db.executemany(
            "INSERT INTO chunk_index (digest, data_id, offset, length) VALUES (?, ?, ?, ?)",
            [(c.digest, data_id, offset, c.length) for c, offset in placed],
        )

    def unindex_at(self, data_id: int, offset: int, digest: bytes) -> bool:
        """Stop offering chunk ``digest`` at ``offset`` of ``data_id``; False if it was not
        offered there (any more)."""
        cur = self.db.execute("DELETE FROM chunk_index WHERE data_id=? AND offset=? AND digest=?",
                              (data_id, offset, digest))
        return cur.rowcount > 0

    def unindex(self, data_id: int) -> None:
        self.db.execute("DELETE FROM chunk_index WHERE data_id=?", (data_id,))

    def chunk_locations(self, digest: bytes) -> list[tuple[int, int, int]]:
        return list(self.db.execute(
            "SELECT data_id, offset, length FROM chunk_index WHERE digest=? LIMIT 8", (digest,)
        ))

    def remove_data_file(self, data_id: int) -> None:
        self.unindex(data_id)
        try:
            os.unlink(self.data_path(data_id))
        except FileNotFoundError:
            pass

    def referenced_data_ids(self) -> set[int]:
        ids = {r[0] for r in self.db.execute("SELECT data_id FROM nodes WHERE data_id IS NOT NULL")}
        return ids | set(self.trash_ids())

    def low_on_space(self) -> bool:
        """Less than 5% (or 64 MiB) of the store's disk is free: keep nothing longer than needed."""
        st = os.statvfs(self.data_dir)
        return st.f_bavail * st.f_frsize < max(8 * RESERVE, st.f_blocks * st.f_frsize // 20)

    def ensure_room(self, nbytes: int) -> None:
        """Raise ENOSPC unless ``nbytes`` more fit and leave ``RESERVE`` for the metadata:
        a store whose disk is full must still record deletions, or no space comes back."""
        st = os.statvfs(self.data_dir)
        if st.f_bavail * st.f_frsize < nbytes + RESERVE:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def statvfs(self) -> os.statvfs_result:
        return os.statvfs(self.root)

    # -- data files no version uses any more (kept while downloads may reuse their chunks) ---

    def trash_add(self, data_id: int) -> None:
        self.db.execute("INSERT OR IGNORE INTO trash (data_id) VALUES (?)", (data_id,))

    def trash_ids(self) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT data_id FROM trash").fetchall()]

    def trash_discard(self, data_id: int) -> None:
        """Delete one trashed data file now (its bytes were freed on purpose)."""
        self.remove_data_file(data_id)
        self.db.execute("DELETE FROM trash WHERE data_id=?", (data_id,))

    def trash_purge(self, keep: Collection[int] = ()) -> None:
        """Delete the trashed data files, but those in ``keep``."""
        for data_id in self.trash_ids():
            if data_id not in keep:
                self.remove_data_file(data_id)
                self.db.execute("DELETE FROM trash WHERE data_id=?", (data_id,))

    # -- files written locally and not yet committed (a crash must not forget them) --------

    def mark_dirty(self, ino: int) -> None:
        self.db.execute("INSERT OR IGNORE INTO dirty (ino) VALUES (?)", (ino,))

    def clear_dirty(self, ino: int) -> None:
        self.db.execute("DELETE FROM dirty WHERE ino=?", (ino,))

    def dirty_inos(self) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT ino FROM dirty").fetchall()]
