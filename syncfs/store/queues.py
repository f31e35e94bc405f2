"""The durable queues: local changes for the tracker (outbox), versions being fetched
(partials), remote rows waiting to be applied (deferred), and claims not yet acknowledged
by the tracker (HAVE: we hold a version; DROP: we withdraw ours).

Rows go in and come out typed; their wire form (msgpack of ``to_wire()``) is this
module's business alone.
"""

import dataclasses

import msgpack

from ..protocol.entries import Entry
from ..protocol.messages import Have, TableRow
from .db import StoreBase, pack_version, unpack_version


@dataclasses.dataclass(frozen=True)
class SavedPartial:
    """What a restart needs of a version being fetched into data file ``data_id``: its
    row, and the chunks already present there and made durable (ascending indices)."""

    data_id: int
    row: TableRow
    present: tuple[int, ...] = ()


def _pack_row(row: TableRow) -> bytes:
    return msgpack.packb(row.to_wire())


def _unpack_row(raw: bytes) -> TableRow:
    return TableRow.from_wire(msgpack.unpackb(raw))


class QueuesMixin(StoreBase):
    """Each queue holds at most one item per path (per data file for partials), the
    newest: an item put again replaces the one before."""

    # -- outbox --------------------------------------------------------------------

    def outbox_add(self, entry: Entry) -> None:
        # a newer local change of a path supersedes a queued one on the same causal line
        self.db.execute("DELETE FROM outbox WHERE path=?", (entry.path,))
        self.db.execute("INSERT INTO outbox (path, entry) VALUES (?, ?)", (entry.path, msgpack.packb(entry.to_wire())))

    def outbox_after(self, after_id: int, limit: int) -> list[tuple[int, Entry]]:
        rows = self.db.execute("SELECT id, entry FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)).fetchall()
        return [(i, Entry.from_wire(msgpack.unpackb(e))) for i, e in rows]

    def outbox_for(self, path: str) -> list[tuple[int, Entry]]:
        rows = self.db.execute("SELECT id, entry FROM outbox WHERE path=? ORDER BY id", (path,)).fetchall()
        return [(i, Entry.from_wire(msgpack.unpackb(e))) for i, e in rows]

    def outbox_has(self, path: str) -> bool:
        return self.db.execute("SELECT 1 FROM outbox WHERE path=? LIMIT 1", (path,)).fetchone() is not None

    def outbox_remove(self, ids: list[int]) -> None:
        self.db.executemany("DELETE FROM outbox WHERE id=?", [(i,) for i in ids])

    def outbox_len(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    # -- partial versions and remote changes waiting for a local writer -------------------

    def partial_put(self, saved: SavedPartial) -> None:
        self.db.execute("INSERT OR REPLACE INTO partials (data_id, row, present) VALUES (?, ?, ?)",
                        (saved.data_id, _pack_row(saved.row), msgpack.packb(list(saved.present))))

    def partial_remove(self, data_id: int) -> None:
        self.db.execute("DELETE FROM partials WHERE data_id=?", (data_id,))

    def partials(self) -> list[SavedPartial]:
        rows = self.db.execute("SELECT data_id, row, present FROM partials").fetchall()
        return [SavedPartial(data_id, _unpack_row(row), tuple(msgpack.unpackb(present)))
                for data_id, row, present in rows]

    def deferred_put(self, row: TableRow) -> None:
        """Keep ``row`` to apply later, in place of any kept for its path."""
        self.db.execute("INSERT OR REPLACE INTO deferred (path, row) VALUES (?, ?)",
                        (row.entry.path, _pack_row(row)))

    def deferred_rows(self) -> list[TableRow]:
        """The rows kept, oldest first."""
        return [_unpack_row(r[0]) for r in self.db.execute("SELECT row FROM deferred ORDER BY rowid").fetchall()]

    def deferred_pop(self, path: str) -> TableRow | None:
        row = self.db.execute("SELECT row FROM deferred WHERE path=?", (path,)).fetchone()
        if row is None:
            return None
        self.db.execute("DELETE FROM deferred WHERE path=?", (path,))
        return _unpack_row(row[0])

    # -- versions completed here that the tracker has not yet listed us for --------------

    def have_put(self, path: str, version: dict[str, int]) -> None:
        self.db.execute("INSERT OR REPLACE INTO haves (path, version) VALUES (?, ?)", (path, pack_version(version)))

    def have_settled(self, path: str) -> None:
        self.db.execute("DELETE FROM haves WHERE path=?", (path,))

    def pending_have(self, path: str) -> dict[str, int] | None:
        row = self.db.execute("SELECT version FROM haves WHERE path=?", (path,)).fetchone()
        return None if row is None else unpack_version(row[0])

    def pending_haves(self) -> list[Have]:
        rows = self.db.execute("SELECT path, version FROM haves").fetchall()
        return [Have(path, unpack_version(v)) for path, v in rows]

    # -- withdrawals asked of the tracker ---------------------------------------------

    def drop_put(self, path: str, version: dict[str, int]) -> None:
        self.db.execute("INSERT OR REPLACE INTO drops (path, version) VALUES (?, ?)", (path, pack_version(version)))

    def drop_pending(self, path: str) -> dict[str, int] | None:
        row = self.db.execute("SELECT version FROM drops WHERE path=?", (path,)).fetchone()
        return None if row is None else unpack_version(row[0])

    def drop_done(self, path: str) -> None:
        self.db.execute("DELETE FROM drops WHERE path=?", (path,))

    def pending_drops(self) -> list[tuple[str, dict[str, int]]]:
        return [(p, unpack_version(v)) for p, v in self.db.execute("SELECT path, version FROM drops")]
