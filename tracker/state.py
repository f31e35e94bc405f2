"""The tracker's durable state: the global file table in SQLite.

One row per path: the newest entry (msgpack of its wire form), the peer that made its
last change, its sequence number and its holders. A meta row keeps the current sequence
number. Every accepted change gets the next sequence number in the same transaction that
stores it, and every call that changes anything is one transaction committed with
``synchronous=FULL``: after a crash (even SIGKILL) the table is exactly as it was after
some call, and the sequence never goes back.
"""

import logging
import sqlite3
import time
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from types import TracebackType

import msgpack

from syncfs.protocol.entries import Entry
from syncfs.protocol.messages import TableRow

from . import merge

log = logging.getLogger(__name__)

DB_NAME = "tracker.db"
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rows (
    path TEXT PRIMARY KEY,
    entry BLOB NOT NULL,
    origin TEXT NOT NULL,
    seq INTEGER NOT NULL,
    holders BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS rows_by_seq ON rows (seq);
CREATE TABLE IF NOT EXISTS peers (
    peer_id TEXT PRIMARY KEY,
    cert BLOB,
    admitted_ns INTEGER,
    revoked_ns INTEGER
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('seq', 0);
"""


class StateError(Exception):
    """The state database is unusable (unknown schema, corrupt)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class TrackerState:
    """The file table at ``state_dir/tracker.db``; created on first use.

    Not thread-safe: use it from one thread (the trio loop) only.
    """

    def __init__(self, state_dir: Path | str) -> None:
        self.path = Path(state_dir) / DB_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            self._db.close()
            raise StateError(self.path, f"unknown schema version {version}")
        self._db.executescript(
            "BEGIN IMMEDIATE;" + SCHEMA + f"PRAGMA user_version={SCHEMA_VERSION}; COMMIT;"
        )
        self._seq = self._read_seq()
        log.debug("opened %s at seq %d", self.path, self._seq)

    # -- reading ---------------------------------------------------------------

    @property
    def current_seq(self) -> int:
        """The sequence number of the last accepted change (0 for an empty table)."""
        return self._seq

    def get(self, path: str) -> merge.Stored | None:
        row = self._db.execute(
            "SELECT entry, origin, holders FROM rows WHERE path = ?", (path,)
        ).fetchone()
        if row is None:
            return None
        return merge.Stored(_decode_entry(row[0]), row[1], tuple(msgpack.unpackb(row[2])))

    def row(self, path: str) -> TableRow | None:
        found = self._db.execute(
            "SELECT entry, seq, holders FROM rows WHERE path = ?", (path,)
        ).fetchone()
        return None if found is None else _table_row(*found)

    def origin(self, path: str) -> str | None:
        found = self._db.execute("SELECT origin FROM rows WHERE path = ?", (path,)).fetchone()
        return None if found is None else found[0]

    def rows_since(self, seq: int, limit: int, upto: int | None = None) -> list[TableRow]:
        """Up to ``limit`` rows with ``seq < row.seq <= upto``, in seq order (an index range)."""
        if upto is None:
            upto = self._seq
        found = self._db.execute(
            "SELECT entry, seq, holders FROM rows WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            (seq, upto, limit),
        ).fetchall()
        return [_table_row(*r) for r in found]

    def __len__(self) -> int:
        count: int = self._db.execute("SELECT COUNT(*) FROM rows").fetchone()[0]
        return count

    # -- changing --------------------------------------------------------------

    def apply_update(self, peer_id: str, entries: Iterable[Entry]) -> list[TableRow]:
        """Merge ``entries`` from ``peer_id`` in order; returns the accepted rows in seq order.

        The whole update is one transaction: either every accepted row is stored with its
        new seq, or (on an error) none is.
        """
        out: list[TableRow] = []
        with self._transaction():
            seq = self._seq
            for entry in entries:
                for stored in merge.decide(entry, peer_id, self.get(entry.path), self.get):
                    seq += 1
                    self._put(stored, seq)
                    out.append(TableRow(stored.entry, seq, stored.holders))
            if out:
                self._set_seq(seq)
        if out:
            self._seq = seq
        return out

    def add_holder(self, peer_id: str, path: str, version: Mapping[str, int]) -> TableRow | None:
        """Make ``peer_id`` a holder of ``path`` if ``version`` is its current version.

        The row gets a new seq, so that peers learn of holders through the same delta and
        broadcast as of changes. None if nothing changed.
        """
        updated = merge.add_holder(self.get(path), peer_id, version)
        if updated is None:
            return None
        seq = self._seq + 1
        with self._transaction():
            self._put(updated, seq)
            self._set_seq(seq)
        self._seq = seq
        return TableRow(updated.entry, seq, updated.holders)

    def drop_holder(self, peer_id: str, path: str, version: Mapping[str, int],
                    online: Collection[str]) -> TableRow | str:
        """Withdraw ``peer_id`` as a holder of ``path`` at ``version`` (``merge.drop_holder``
        says when that is allowed); returns the row with a new seq, or why it is refused.

        The row gets a new seq even when the peer was not listed, so that the peer always
        learns of a grant the same way: a row of that version without it among the holders.
        """
        updated = merge.drop_holder(self.get(path), peer_id, version, online)
        if isinstance(updated, str):
            return updated
        seq = self._seq + 1
        with self._transaction():
            self._put(updated, seq)
            self._set_seq(seq)
        self._seq = seq
        return TableRow(updated.entry, seq, updated.holders)

    # -- identities -------------------------------------------------------------

    def admit(self, peer_id: str, cert: bytes) -> None:
        """Record that ``peer_id`` (with certificate ``cert``) proved the share secret."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO peers (peer_id, cert, admitted_ns) VALUES (?, ?, ?) "
                "ON CONFLICT (peer_id) DO UPDATE SET cert = excluded.cert, "
                "admitted_ns = coalesce(peers.admitted_ns, excluded.admitted_ns)",
                (peer_id, cert, time.time_ns()),
            )

    def revoke(self, peer_id: str) -> bool:
        """Refuse ``peer_id`` from now on (a running tracker notices within a second).

        Returns whether the peer had ever been admitted; an unknown id is revoked all the same.
        """
        with self._transaction():
            known = self._db.execute(
                "SELECT admitted_ns FROM peers WHERE peer_id = ?", (peer_id,)
            ).fetchone()
            self._db.execute(
                "INSERT INTO peers (peer_id, revoked_ns) VALUES (?, ?) "
                "ON CONFLICT (peer_id) DO UPDATE SET revoked_ns = excluded.revoked_ns",
                (peer_id, time.time_ns()),
            )
        return bool(known and known[0])

    def revoked(self) -> frozenset[str]:
        found = self._db.execute("SELECT peer_id FROM peers WHERE revoked_ns IS NOT NULL")
        return frozenset(r[0] for r in found)

    def admitted(self) -> list[tuple[str, bool]]:
        """Every peer that ever joined: (peer id, revoked), in the order they first joined."""
        found = self._db.execute(
            "SELECT peer_id, revoked_ns IS NOT NULL FROM peers ORDER BY admitted_ns"
        )
        return [(r[0], bool(r[1])) for r in found]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "TrackerState":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals -------------------------------------------------------------

    def _transaction(self) -> "_Transaction":
        return _Transaction(self._db)

    def _put(self, stored: merge.Stored, seq: int) -> None:
        self._db.execute(
            "INSERT INTO rows (path, entry, origin, seq, holders) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (path) DO UPDATE SET entry = excluded.entry, "
            "origin = excluded.origin, seq = excluded.seq, holders = excluded.holders",
            (
                stored.entry.path,
                msgpack.packb(stored.entry.to_wire(), use_bin_type=True),
                stored.origin,
                seq,
                msgpack.packb(list(stored.holders)),
            ),
        )

    def _set_seq(self, seq: int) -> None:
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'seq'", (seq,))

    def _read_seq(self) -> int:
        seq: int = self._db.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()[0]
        return seq


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK if the block raises."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self._db.execute("COMMIT")
        else:
            self._db.execute("ROLLBACK")


def _decode_entry(blob: bytes) -> Entry:
    return Entry.from_wire(msgpack.unpackb(blob, raw=False))


def _table_row(entry: bytes, seq: int, holders: bytes) -> TableRow:
    return TableRow(_decode_entry(entry), seq, tuple(msgpack.unpackb(holders)))
