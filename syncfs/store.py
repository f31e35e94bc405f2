"""The local store of one mount: metadata in SQLite, file contents in sparse data files.

Layout under the store directory: ``state.db`` (WAL) and ``data/<data_id>``, one file per
content version of a file. A remote version is written into a fresh data file and made
current in one transaction, so a crash leaves every file at its old or its new version.
"""

import dataclasses
import errno
import fcntl
import logging
import os
import secrets
import sqlite3
import time
from pathlib import Path

import msgpack

from .mirror import Seen
from .protocol.entries import Chunk, Entry, Kind
from .protocol.messages import Have
from .protocol.paths import join

log = logging.getLogger(__name__)

ROOT_INO = 1
RESERVE = 8 * 1024 * 1024  # kept free for SQLite: deleting files must work on a full disk

SCHEMA = """
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


class StoreBusy(Exception):
    """Another process has this store open (a second mount of the same share store)."""

    def __init__(self, root: Path) -> None:
        super().__init__(str(root))
        self.root = root

    def __str__(self) -> str:
        return f"the store {self.root} is in use by another syncfs process"


class NotFound(Exception):
    pass


@dataclasses.dataclass
class Node:
    ino: int
    parent: int
    name: str
    path: str
    kind: Kind
    mode: int
    size: int
    mtime_ns: int
    ctime_ns: int
    target: str
    version: dict[str, int]
    chunks: tuple[Chunk, ...]
    data_id: int | None
    xattrs: dict[str, bytes] = dataclasses.field(default_factory=dict)

    def entry(self, version: dict[str, int] | None = None, held: bool = True) -> Entry:
        return Entry(
            path=self.path,
            kind=self.kind,
            # the size the committed chunks add up to: a pending content commit follows
            size=sum(c.length for c in self.chunks) if self.kind is Kind.FILE else 0,
            mode=self.mode,
            mtime_ns=self.mtime_ns,
            version=dict(self.version if version is None else version),
            chunks=self.chunks if self.kind is Kind.FILE else (),
            target=self.target,
            held=held,
            xattrs=dict(self.xattrs) if self.kind is not Kind.SYMLINK else {},
        )


def pack_version(v: dict[str, int]) -> bytes:
    return msgpack.packb(v)


def pack_chunks(chunks: tuple[Chunk, ...] | list[Chunk]) -> bytes:
    return msgpack.packb([[c.digest, c.length] for c in chunks])


def unpack_chunks(raw: bytes) -> tuple[Chunk, ...]:
    return tuple(Chunk(d, n) for d, n in msgpack.unpackb(raw))


_NODE_COLS = "ino, parent, name, path, kind, mode, size, mtime_ns, ctime_ns, target, version, chunks, data_id, xattrs"


def _node(row: tuple) -> Node:
    ino, parent, name, path, kind, mode, size, mtime, ctime, target, version, chunks, data_id, xattrs = row
    return Node(
        ino, parent, name, path, Kind(kind), mode, size, mtime, ctime, target,
        msgpack.unpackb(version), unpack_chunks(chunks), data_id,
        msgpack.unpackb(xattrs) if xattrs else {},
    )


class Store:
    """Metadata and data files of one mount. Single-threaded use from the event loop,
    except the data-file helpers, which are plain file I/O safe to run in a thread."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data_dir = root / "data"
        self._lock_fd: int | None = None
        self.db: sqlite3.Connection

    # -- lifecycle -----------------------------------------------------------------

    def open(self) -> None:
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
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        if self.get_meta("peer_id") is None:
            self.set_meta("peer_id", secrets.token_hex(8))
        if self.lookup_path("") is None:
            now = time.time_ns()
            self.db.execute(
                "INSERT INTO nodes (ino, parent, name, path, kind, mode, mtime_ns, ctime_ns, version, chunks)"
                " VALUES (?, ?, '', '', 'dir', ?, ?, ?, ?, ?)",
                (ROOT_INO, ROOT_INO, 0o755, now, now, pack_version({}), pack_chunks(())),
            )

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
        return int(self.get_meta("last_seq", 0))  # type: ignore[arg-type]

    # -- nodes ---------------------------------------------------------------------

    def get(self, ino: int) -> Node:
        row = self.db.execute(f"SELECT {_NODE_COLS} FROM nodes WHERE ino=?", (ino,)).fetchone()
        if row is None:
            raise NotFound(ino)
        return _node(row)

    def find(self, ino: int) -> Node | None:
        try:
            return self.get(ino)
        except NotFound:
            return None

    def lookup(self, parent: int, name: str) -> Node | None:
        row = self.db.execute(
            f"SELECT {_NODE_COLS} FROM nodes WHERE parent=? AND name=? AND ino != ?", (parent, name, ROOT_INO)
        ).fetchone()
        return None if row is None else _node(row)

    def node_with_data(self, data_id: int) -> Node | None:
        row = self.db.execute(f"SELECT {_NODE_COLS} FROM nodes WHERE data_id=?", (data_id,)).fetchone()
        return None if row is None else _node(row)

    def lookup_path(self, path: str) -> Node | None:
        row = self.db.execute(f"SELECT {_NODE_COLS} FROM nodes WHERE path=?", (path,)).fetchone()
        return None if row is None else _node(row)

    def children(self, ino: int, after_ino: int = 0, limit: int = 256) -> list[Node]:
        rows = self.db.execute(
            f"SELECT {_NODE_COLS} FROM nodes WHERE parent=? AND ino>? AND ino != ? ORDER BY ino LIMIT ?",
            (ino, after_ino, ROOT_INO, limit),
        )
        return [_node(r) for r in rows.fetchall()]

    def has_children(self, ino: int) -> bool:
        return self.db.execute("SELECT 1 FROM nodes WHERE parent=? AND ino != ? LIMIT 1", (ino, ROOT_INO)).fetchone() is not None

    def descendants(self, path: str) -> list[Node]:
        """Every node strictly below ``path``, parents before children."""
        if path == "":
            rows = self.db.execute(f"SELECT {_NODE_COLS} FROM nodes WHERE ino != ? ORDER BY path", (ROOT_INO,))
        else:
            # '0' sorts right after '/', so this is the index range of "path/..."
            rows = self.db.execute(
                f"SELECT {_NODE_COLS} FROM nodes WHERE path > ? AND path < ? ORDER BY path",
                (path + "/", path + "0"),
            )
        return [_node(r) for r in rows.fetchall()]

    def insert_node(
        self,
        parent: Node,
        name: str,
        kind: Kind,
        mode: int,
        *,
        mtime_ns: int | None = None,
        target: str = "",
        version: dict[str, int] | None = None,
        data_id: int | None = None,
        size: int = 0,
        chunks: tuple[Chunk, ...] = (),
        xattrs: dict[str, bytes] | None = None,
    ) -> Node:
        now = time.time_ns()
        mtime = now if mtime_ns is None else mtime_ns
        path = join(parent.path, name)
        cur = self.db.execute(
            "INSERT INTO nodes (parent, name, path, kind, mode, size, mtime_ns, ctime_ns, target, version, chunks,"
            " data_id, xattrs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (parent.ino, name, path, kind.value, mode, size, mtime, now, target,
             pack_version(version or {}), pack_chunks(chunks), data_id, msgpack.packb(xattrs) if xattrs else None),
        )
        return self.get(cur.lastrowid)  # type: ignore[arg-type]

    def update_node(self, ino: int, **fields: object) -> None:
        if not fields:
            return
        enc = dict(fields)
        if "version" in enc:
            enc["version"] = pack_version(enc["version"])  # type: ignore[arg-type]
        if "chunks" in enc:
            enc["chunks"] = pack_chunks(enc["chunks"])  # type: ignore[arg-type]
        if "kind" in enc:
            enc["kind"] = enc["kind"].value  # type: ignore[attr-defined]
        if "xattrs" in enc:
            enc["xattrs"] = msgpack.packb(enc["xattrs"]) if enc["xattrs"] else None
        enc.setdefault("ctime_ns", time.time_ns())
        cols = ", ".join(f"{k}=?" for k in enc)
        self.db.execute(f"UPDATE nodes SET {cols} WHERE ino=?", (*enc.values(), ino))

    def delete_node(self, ino: int) -> None:
        self.db.execute("DELETE FROM nodes WHERE ino=?", (ino,))

    def move_node(self, node: Node, new_parent: Node, new_name: str) -> None:
        """Rename ``node`` (and the paths of everything below it) to new_parent/new_name."""
        new_path = join(new_parent.path, new_name)
        self.db.execute(
            "UPDATE nodes SET parent=?, name=?, path=?, ctime_ns=? WHERE ino=?",
            (new_parent.ino, new_name, new_path, time.time_ns(), node.ino),
        )
        if node.kind is Kind.DIR:
            old = node.path
            self.db.execute(
                "UPDATE nodes SET path = ? || substr(path, ?) WHERE path > ? AND path < ?",
                (new_path, len(old) + 1, old + "/", old + "0"),
            )

    # -- versions of deleted paths --------------------------------------------------

    def tombstone(self, path: str) -> dict[str, int] | None:
        row = self.db.execute("SELECT version FROM tombstones WHERE path=?", (path,)).fetchone()
        return None if row is None else msgpack.unpackb(row[0])

    def set_tombstone(self, path: str, version: dict[str, int]) -> None:
        self.db.execute("INSERT OR REPLACE INTO tombstones (path, version) VALUES (?, ?)", (path, pack_version(version)))

    def clear_tombstone(self, path: str) -> None:
        self.db.execute("DELETE FROM tombstones WHERE path=?", (path,))

    def known_version(self, path: str) -> dict[str, int]:
        """The version a local change at ``path`` builds on: the node's, else its tombstone's."""
        node = self.lookup_path(path)
        if node is not None:
            return node.version
        return self.tombstone(path) or {}

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
        return self.db.execute("SELECT count(*) FROM outbox").fetchone()[0]

    # -- partial versions and remote changes waiting for a local writer -------------------

    def partial_put(self, data_id: int, row: bytes, present: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO partials (data_id, row, present) VALUES (?, ?, ?)", (data_id, row, present))

    def partial_remove(self, data_id: int) -> None:
        self.db.execute("DELETE FROM partials WHERE data_id=?", (data_id,))

    def partials(self) -> list[tuple[int, bytes, bytes]]:
        return self.db.execute("SELECT data_id, row, present FROM partials").fetchall()

    def deferred_put(self, path: str, row: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO deferred (path, row) VALUES (?, ?)", (path, row))

    def deferred_rows(self) -> list[tuple[str, bytes]]:
        return self.db.execute("SELECT path, row FROM deferred ORDER BY rowid").fetchall()

    def deferred_pop(self, path: str) -> bytes | None:
        row = self.db.execute("SELECT row FROM deferred WHERE path=?", (path,)).fetchone()
        if row is not None:
            self.db.execute("DELETE FROM deferred WHERE path=?", (path,))
        return None if row is None else row[0]

    # -- versions completed here that the tracker has not yet listed us for --------------

    def have_put(self, path: str, version: dict[str, int]) -> None:
        self.db.execute("INSERT OR REPLACE INTO haves (path, version) VALUES (?, ?)", (path, pack_version(version)))

    def have_settled(self, path: str) -> None:
        self.db.execute("DELETE FROM haves WHERE path=?", (path,))

    def pending_have(self, path: str) -> dict[str, int] | None:
        row = self.db.execute("SELECT version FROM haves WHERE path=?", (path,)).fetchone()
        return None if row is None else msgpack.unpackb(row[0])

    def pending_haves(self) -> list[Have]:
        rows = self.db.execute("SELECT path, version FROM haves").fetchall()
        return [Have(path, msgpack.unpackb(v)) for path, v in rows]

    # -- pins (kept local in --on-demand mounts) and withdrawals asked of the tracker -------

    def pins(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT path FROM pins")}

    def pin_add(self, path: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO pins (path) VALUES (?)", (path,))

    def pin_remove_under(self, path: str) -> None:
        """Forget the pins of ``path`` and of everything below it ("" is the root: all)."""
        if not path:
            self.db.execute("DELETE FROM pins")
            return
        self.db.execute("DELETE FROM pins WHERE path = ? OR (path > ? AND path < ?)", (path, path + "/", path + "0"))

    def pin_move(self, old: str, new: str) -> None:
        self.db.execute("UPDATE pins SET path = ? WHERE path = ?", (new, old))
        self.db.execute("UPDATE pins SET path = ? || substr(path, ?) WHERE path > ? AND path < ?",
                        (new, len(old) + 1, old + "/", old + "0"))

    def drop_put(self, path: str, version: dict[str, int]) -> None:
        self.db.execute("INSERT OR REPLACE INTO drops (path, version) VALUES (?, ?)", (path, pack_version(version)))

    def drop_pending(self, path: str) -> dict[str, int] | None:
        row = self.db.execute("SELECT version FROM drops WHERE path=?", (path,)).fetchone()
        return None if row is None else msgpack.unpackb(row[0])

    def drop_done(self, path: str) -> None:
        self.db.execute("DELETE FROM drops WHERE path=?", (path,))

    def pending_drops(self) -> list[tuple[str, dict[str, int]]]:
        return [(p, msgpack.unpackb(v)) for p, v in self.db.execute("SELECT path, version FROM drops")]

    def last_uses(self) -> dict[str, float]:
        return dict(self.db.execute("SELECT path, t FROM last_use").fetchall())

    def save_last_uses(self, uses: dict[str, float]) -> None:
        self.db.executemany("INSERT OR REPLACE INTO last_use (path, t) VALUES (?, ?)", list(uses.items()))
        self.db.execute("DELETE FROM last_use WHERE path NOT IN (SELECT path FROM nodes)")

    def file_sizes(self) -> list[tuple[str, int, int | None]]:
        """(path, size, data_id) of every file: what the cache limit counts."""
        return self.db.execute("SELECT path, size, data_id FROM nodes WHERE kind = 'file'").fetchall()

    # -- files written locally and not yet committed (a crash must not forget them) --------

    def mark_dirty(self, ino: int) -> None:
        self.db.execute("INSERT OR IGNORE INTO dirty (ino) VALUES (?)", (ino,))

    def clear_dirty(self, ino: int) -> None:
        self.db.execute("DELETE FROM dirty WHERE ino=?", (ino,))

    def dirty_inos(self) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT ino FROM dirty").fetchall()]

    # -- what a watched directory held when it last agreed with the share ----------------

    def seen(self, path: str) -> Seen | None:
        row = self.db.execute(
            "SELECT path, kind, ino, size, mtime_ns, mode, content, version, xattrs FROM mirror WHERE path=?", (path,)
        ).fetchone()
        if row is None:
            return None
        path, kind, ino, size, mtime_ns, mode, content, version, xattrs = row
        return Seen(path, Kind(kind), ino, size, mtime_ns, mode, content, msgpack.unpackb(version), xattrs)

    def put_seen(self, s: Seen) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO mirror (path, kind, ino, size, mtime_ns, mode, content, version, xattrs)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (s.path, s.kind.value, s.ino, s.size, s.mtime_ns, s.mode, s.content, pack_version(s.version), s.xattrs),
        )

    def forget_seen(self, path: str, subtree: bool = True) -> None:
        """Forget ``path`` and (unless not ``subtree``) everything recorded below it."""
        if not subtree:
            self.db.execute("DELETE FROM mirror WHERE path=?", (path,))
            return
        self.db.execute("DELETE FROM mirror WHERE path=? OR (path > ? AND path < ?)", (path, path + "/", path + "0"))

    def move_seen(self, old: str, new: str) -> None:
        self.forget_seen(new)
        self.db.execute("UPDATE mirror SET path=? WHERE path=?", (new, old))
        self.db.execute(
            "UPDATE mirror SET path = ? || substr(path, ?) WHERE path > ? AND path < ?",
            (new, len(old) + 1, old + "/", old + "0"),
        )

    def seen_paths(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT path FROM mirror")]

    # -- data files no version uses any more (kept while downloads may reuse their chunks) ---

    def trash_add(self, data_id: int) -> None:
        self.db.execute("INSERT OR IGNORE INTO trash (data_id) VALUES (?)", (data_id,))

    def trash_ids(self) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT data_id FROM trash").fetchall()]

    def trash_discard(self, data_id: int) -> None:
        """Delete one trashed data file now (its bytes were freed on purpose)."""
        self.remove_data_file(data_id)
        self.db.execute("DELETE FROM trash WHERE data_id=?", (data_id,))

    def trash_purge(self) -> None:
        for data_id in self.trash_ids():
            self.remove_data_file(data_id)
        self.db.execute("DELETE FROM trash")

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

    def counts(self) -> dict[str, int]:
        rows = dict(self.db.execute("SELECT kind, count(*) FROM nodes WHERE ino != ? GROUP BY kind", (ROOT_INO,)).fetchall())
        return {"files": rows.get("file", 0), "dirs": rows.get("dir", 0), "symlinks": rows.get("symlink", 0)}

    def conflict_paths(self, limit: int = 100) -> list[str]:
        rows = self.db.execute("SELECT path FROM nodes WHERE name LIKE '%.sync-conflict-%' ORDER BY path LIMIT ?", (limit,))
        return [r[0] for r in rows.fetchall()]

    def ensure_room(self, nbytes: int) -> None:
        """Raise ENOSPC unless ``nbytes`` more fit and leave ``RESERVE`` for the metadata:
        a store whose disk is full must still record deletions, or no space comes back."""
        st = os.statvfs(self.data_dir)
        if st.f_bavail * st.f_frsize < nbytes + RESERVE:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def statvfs(self) -> os.statvfs_result:
        return os.statvfs(self.root)


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
