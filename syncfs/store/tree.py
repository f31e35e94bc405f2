"""The tree: nodes (one per path, with its version and chunk list) and the versions of
deleted paths (tombstones)."""

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import msgpack

from ..protocol.entries import Chunk, Entry, Kind
from ..protocol.paths import join
from .db import ROOT_INO, StoreBase, in_subtree, pack_version, unpack_version


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


def pack_chunks(chunks: tuple[Chunk, ...] | list[Chunk]) -> bytes:
    return msgpack.packb([[c.digest, c.length] for c in chunks])


def unpack_chunks(raw: bytes) -> tuple[Chunk, ...]:
    return tuple(Chunk(d, n) for d, n in msgpack.unpackb(raw))


_NODE_COLS = "ino, parent, name, path, kind, mode, size, mtime_ns, ctime_ns, target, version, chunks, data_id, xattrs"


def _node(row: tuple[Any, ...]) -> Node:
    ino, parent, name, path, kind, mode, size, mtime, ctime, target, version, chunks, data_id, xattrs = row
    return Node(
        ino, parent, name, path, Kind(kind), mode, size, mtime, ctime, target,
        unpack_version(version), unpack_chunks(chunks), data_id,
        msgpack.unpackb(xattrs) if xattrs else {},
    )


class TreeMixin(StoreBase):
    """Nodes and tombstones. Every node but the root has a parent directory node, and its
    ``path`` is the parent's joined with its ``name``."""

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
        where, params = in_subtree(path, below_only=True)
        rows = self.db.execute(f"SELECT {_NODE_COLS} FROM nodes WHERE {where} ORDER BY path", params)
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
            where, params = in_subtree(node.path, below_only=True)
            self.db.execute(f"UPDATE nodes SET path = ? || substr(path, ?) WHERE {where}",
                            (new_path, len(node.path) + 1, *params))

    def counts(self) -> dict[str, int]:
        rows = dict(self.db.execute("SELECT kind, count(*) FROM nodes WHERE ino != ? GROUP BY kind", (ROOT_INO,)).fetchall())
        return {"files": rows.get("file", 0), "dirs": rows.get("dir", 0), "symlinks": rows.get("symlink", 0)}

    def all_paths(self) -> Iterator[tuple[str, bool]]:
        """(path, is a directory) of every node but the root, for a scan of the whole tree."""
        rows = self.db.execute("SELECT path, kind FROM nodes WHERE ino != ?", (ROOT_INO,))
        return ((path, kind == Kind.DIR.value) for path, kind in rows)

    def never_committed_files(self) -> list[tuple[int, str]]:
        """(ino, path) of the files without a version: made here and never committed (an
        ignore rule kept them local), as no file that came from another peer can be."""
        rows = self.db.execute("SELECT ino, path FROM nodes WHERE kind = ? AND version = ?",
                               (Kind.FILE.value, pack_version({})))
        return rows.fetchall()

    def conflict_paths(self, limit: int = 100) -> list[str]:
        rows = self.db.execute("SELECT path FROM nodes WHERE name LIKE '%.sync-conflict-%' ORDER BY path LIMIT ?", (limit,))
        return [r[0] for r in rows.fetchall()]

    # -- versions of deleted paths --------------------------------------------------

    def tombstone(self, path: str) -> dict[str, int] | None:
        row = self.db.execute("SELECT version FROM tombstones WHERE path=?", (path,)).fetchone()
        return None if row is None else unpack_version(row[0])

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
