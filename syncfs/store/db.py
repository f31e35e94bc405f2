"""The store's SQLite database: opening and locking it, transactions, the meta table, the
versioned schema, and what every table group shares (version encoding, subtree ranges).

The schema's version is SQLite's ``user_version``. ``MIGRATIONS[i]`` takes a database from
version ``i`` to ``i + 1``, each step in its own transaction together with the new version
number, so a crash between steps leaves a database the next open carries on from. Stores
made before the schema had a number are version 0 and hold the tables of version 1 already
(every statement of version 1 is ``IF NOT EXISTS``), so they open as they are.
"""

import fcntl
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import msgpack

log = logging.getLogger(__name__)

ROOT_INO = 1

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS nodes (
    ino INTEGER PRIMARY KEY AUTOINCREMENT,
    parent INTEGER NOT NULL,
    name TEXT NOT NULL,
    path TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    mode INTEGER NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    version BLOB NOT NULL,
    chunks BLOB NOT NULL,
    data_id INTEGER,
    xattrs BLOB
);
CREATE UNIQUE INDEX IF NOT EXISTS nodes_by_parent ON nodes (parent, name);
CREATE TABLE IF NOT EXISTS tombstones (path TEXT PRIMARY KEY, version BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS chunk_index (
    digest BLOB NOT NULL, data_id INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chunk_by_digest ON chunk_index (digest);
CREATE INDEX IF NOT EXISTS chunk_by_data ON chunk_index (data_id);
CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, entry BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_by_path ON outbox (path);
CREATE TABLE IF NOT EXISTS partials (data_id INTEGER PRIMARY KEY, row BLOB NOT NULL, present BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS deferred (path TEXT PRIMARY KEY, row BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS trash (data_id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS dirty (ino INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS haves (path TEXT PRIMARY KEY, version BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS pins (path TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS drops (path TEXT PRIMARY KEY, version BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS last_use (path TEXT PRIMARY KEY, t REAL NOT NULL);
CREATE TABLE IF NOT EXISTS data_ids (data_id INTEGER PRIMARY KEY AUTOINCREMENT, dummy INTEGER);
CREATE TABLE IF NOT EXISTS mirror (
    path TEXT PRIMARY KEY, kind TEXT NOT NULL, ino INTEGER NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, mode INTEGER NOT NULL, content BLOB NOT NULL, version BLOB NOT NULL,
    xattrs BLOB NOT NULL
);
"""


def _v1_tables_and_root(db: sqlite3.Connection) -> None:
    # one statement at a time: executescript would commit the step's transaction
    for statement in _SCHEMA_V1.split(";"):
        if statement.strip():
            db.execute(statement)
    now = time.time_ns()
    db.execute(
        "INSERT OR IGNORE INTO nodes (ino, parent, name, path, kind, mode, mtime_ns, ctime_ns, version, chunks)"
        " VALUES (?, ?, '', '', 'dir', ?, ?, ?, ?, ?)",
        (ROOT_INO, ROOT_INO, 0o755, now, now, pack_version({}), msgpack.packb([])),
    )


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_v1_tables_and_root,)
SCHEMA_VERSION = len(MIGRATIONS)


class StoreBusy(Exception):
    """Another process has this store open (a second mount of the same share store)."""

    def __init__(self, root: Path) -> None:
        super().__init__(str(root))
        self.root = root

    def __str__(self) -> str:
        return f"the store {self.root} is in use by another syncfs process"


class StoreTooNew(Exception):
    """The store's schema is newer than this program knows (written by a later syncfs)."""

    def __init__(self, root: Path, version: int) -> None:
        super().__init__(str(root), version)
        self.root = root
        self.version = version

    def __str__(self) -> str:
        return (f"the store {self.root} has schema version {self.version};"
                f" this syncfs knows versions up to {SCHEMA_VERSION}")


def pack_version(v: dict[str, int]) -> bytes:
    return msgpack.packb(v)


def unpack_version(raw: bytes) -> dict[str, int]:
    return {str(k): int(v) for k, v in msgpack.unpackb(raw).items()}


def in_subtree(path: str, *, below_only: bool = False) -> tuple[str, tuple[str, ...]]:
    """The WHERE condition (on a ``path`` column) and its parameters for ``path`` and
    everything below it, or with ``below_only`` just what is below. ``""`` is the root.

    A range, not LIKE: '0' sorts right after '/', so "a/..." is exactly the paths between
    "a/" and "a0" in SQLite's binary order (which is UTF-8 byte order), it uses the path
    index, and no character of a path is special in it.
    """
    if not path:
        return ("path != ''", ()) if below_only else ("1", ())
    if below_only:
        return "(path > ? AND path < ?)", (path + "/", path + "0")
    return "(path = ? OR (path > ? AND path < ?))", (path, path + "/", path + "0")


class StoreBase:
    """The connection and lock of one store; the table groups build on it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data_dir = root / "data"
        self._lock_fd: int | None = None
        self.db: sqlite3.Connection

    def open(self) -> None:
        """Lock the store (StoreBusy if another process holds it), open its database and
        bring its schema to SCHEMA_VERSION (StoreTooNew if it is past that)."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.data_dir.mkdir(exist_ok=True, mode=0o700)
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreBusy(self.root) from None
        self._lock_fd = fd
        self.db = sqlite3.connect(self.root / "state.db", isolation_level=None, check_same_thread=False)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
            if self.get_meta("peer_id") is None:
                self.set_meta("peer_id", secrets.token_hex(8))
        except BaseException:
            self.db.close()
            os.close(fd)
            self._lock_fd = None
            raise

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreTooNew(self.root, version)
        for step in range(version, SCHEMA_VERSION):
            with self.transaction():
                MIGRATIONS[step](self.db)
                self.db.execute(f"PRAGMA user_version={step + 1}")
            log.debug("store %s: schema version %d", self.root, step + 1)

    def close(self) -> None:
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            log.warning("could not checkpoint the store: %s", exc)
        self.db.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def transaction(self) -> "_Transaction":
        return _Transaction(self.db)

    def savepoint(self) -> "_Savepoint":
        """A nested part of the current transaction that can fail alone."""
        return _Savepoint(self.db)

    # -- meta ----------------------------------------------------------------------

    def get_meta(self, key: str, default: object = None) -> object:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return default if row is None else row[0]

    def set_meta(self, key: str, value: object) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @property
    def peer_id(self) -> str:
        return str(self.get_meta("peer_id"))

    @property
    def last_seq(self) -> int:
        seq = self.get_meta("last_seq", 0)
        return seq if isinstance(seq, int) else 0


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            try:
                self.db.execute("COMMIT")
            except sqlite3.Error:
                _rollback(self.db)
                raise
        else:
            _rollback(self.db)


def _rollback(db: sqlite3.Connection) -> None:
    try:
        db.execute("ROLLBACK")
    except sqlite3.OperationalError:
        pass  # SQLite already rolled back (e.g. after "database or disk is full")


class _Savepoint:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("SAVEPOINT row")

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self.db.execute("ROLLBACK TO row")
        self.db.execute("RELEASE row")
