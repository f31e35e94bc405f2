"""The store on its own: "a path and everything below it" in every table that asks it, typed
rows through the durable queues, and stores made before the schema had a version."""

import sqlite3

import msgpack
import pytest

from syncfs.mirror import Seen
from syncfs.protocol.entries import Chunk, Entry, Kind
from syncfs.protocol.messages import TableRow
from syncfs.store import ROOT_INO, SCHEMA_VERSION, SavedPartial, Store, StoreBusy, StoreTooNew

# the schema of the stores made before it had a version (as syncfs/store.py had it)
OLD_SCHEMA = """
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

# "a" and what is below it, among names that share its prefix or sort next to it, and
# names with the characters LIKE would take as wildcards
DIRS = ["a", "a/x", "ab", "a-b", "a.b", "a0", "a%", "a_", "b"]
FILES = ["a/x/y", "a/z", "ab/y", "a-b/y", "a%/y", "a_/y", "a%b", "a_b", "a0/y"]
ALL = sorted(DIRS + FILES)

CHUNK = Chunk(b"\x01" * 32, 10)
ROW = TableRow(Entry("d/f", Kind.FILE, size=10, chunks=(CHUNK,), version={"a": 2}), 7, ("a", "b"))


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "store")
    s.open()
    yield s
    s.close()


def _tree(store: Store) -> None:
    for path in sorted(DIRS, key=lambda p: p.count("/")):
        parent, _, name = path.rpartition("/")
        store.insert_node(store.lookup_path(parent), name, Kind.DIR, 0o755)
    for path in FILES:
        parent, _, name = path.rpartition("/")
        store.insert_node(store.lookup_path(parent), name, Kind.FILE, 0o644)


def _seen(path: str) -> Seen:
    return Seen(path, Kind.FILE, 1, 0, 0, 0o644, b"", {"a": 1})


def _paths(nodes) -> list[str]:
    return [n.path for n in nodes]


# -- a path and everything below it ---------------------------------------------------------


@pytest.mark.parametrize(("top", "below"), [
    ("a", ["a/x", "a/x/y", "a/z"]),
    ("a%", ["a%/y"]),
    ("a_", ["a_/y"]),
    ("a0", ["a0/y"]),
    ("a/z", []),
    ("", ALL),
])
def test_descendants_are_what_is_below_and_parents_come_first(store, top, below):
    _tree(store)
    assert _paths(store.descendants(top)) == below


def test_moving_a_directory_moves_what_is_below_it_and_no_sibling(store):
    _tree(store)
    store.move_node(store.lookup_path("a_"), store.lookup_path("b"), "c")
    assert store.lookup_path("b/c/y") is not None and store.lookup_path("a_/y") is None
    store.move_node(store.lookup_path("a"), store.get(ROOT_INO), "q")
    moved = {"a": "q", "a/x": "q/x", "a/x/y": "q/x/y", "a/z": "q/z", "a_": "b/c", "a_/y": "b/c/y"}
    assert sorted(_paths(store.descendants(""))) == sorted(moved.get(p, p) for p in ALL)
    assert store.lookup_path("q/x/y").parent == store.lookup_path("q/x").ino


@pytest.mark.parametrize(("top", "gone"), [
    ("a", {"a", "a/x", "a/x/y", "a/z"}),
    ("a_", {"a_", "a_/y"}),
    ("a%", {"a%", "a%/y"}),
    ("", set(ALL)),
])
def test_unpinning_takes_the_pins_of_a_path_and_below_it(store, top, gone):
    for path in ALL:
        store.pin_add(path)
    store.pin_remove_under(top)
    assert store.pins() == set(ALL) - gone


def test_a_moved_pin_takes_those_below_it_along(store):
    for path in ALL:
        store.pin_add(path)
    store.pin_move("a_", "n")
    store.pin_move("a", "m")
    moved = {"a": "m", "a/x": "m/x", "a/x/y": "m/x/y", "a/z": "m/z", "a_": "n", "a_/y": "n/y"}
    assert store.pins() == {moved.get(p, p) for p in ALL}


def test_forgetting_what_was_seen_at_a_path(store):
    for path in ALL:
        store.put_seen(_seen(path))
    store.forget_seen("a%")
    store.forget_seen("a", subtree=False)
    assert sorted(store.seen_paths()) == sorted(set(ALL) - {"a", "a%", "a%/y"})
    store.forget_seen("a")
    assert sorted(store.seen_paths()) == sorted(set(ALL) - {"a", "a/x", "a/x/y", "a/z", "a%", "a%/y"})


def test_a_move_of_what_was_seen_replaces_what_was_seen_there(store):
    for path in ["a", "a/x", "ab", "a_", "a_/y", "m", "m/old"]:
        store.put_seen(_seen(path))
    store.move_seen("a", "m")
    store.move_seen("a_", "a_b")
    assert sorted(store.seen_paths()) == ["a_b", "a_b/y", "ab", "m", "m/x"]
    assert store.seen("m/x") == _seen("m/x")


# -- the durable queues, typed ---------------------------------------------------------------


def test_deferred_rows_round_trip_one_per_path_oldest_first(store):
    other = TableRow(Entry("e", Kind.DIR, version={"b": 1}), 3, ("b",))
    newer = TableRow(Entry("d/f", Kind.FILE, size=0, version={"a": 3}), 9, ())
    store.deferred_put(ROW)
    store.deferred_put(other)
    assert store.deferred_rows() == [ROW, other]
    store.deferred_put(newer)  # replaces the row kept for its path
    assert store.deferred_pop("d/f") == newer
    assert store.deferred_pop("d/f") is None
    assert store.deferred_rows() == [other]


def test_partials_round_trip(store):
    store.partial_put(SavedPartial(4, ROW))
    store.partial_put(SavedPartial(5, ROW, (0, 2, 3)))
    store.partial_put(SavedPartial(4, ROW, (1,)))
    assert sorted(store.partials(), key=lambda s: s.data_id) == [SavedPartial(4, ROW, (1,)),
                                                                 SavedPartial(5, ROW, (0, 2, 3))]
    store.partial_remove(4)
    assert store.partials() == [SavedPartial(5, ROW, (0, 2, 3))]


def test_a_newer_local_change_replaces_the_queued_one_of_its_path(store):
    store.outbox_add(ROW.entry)
    store.outbox_add(Entry("e", Kind.DIR, version={"b": 1}))
    newer = Entry("d/f", Kind.FILE, size=0, version={"a": 3})
    store.outbox_add(newer)
    assert [e for _, e in store.outbox_after(0, 10)] == [Entry("e", Kind.DIR, version={"b": 1}), newer]
    assert [e for _, e in store.outbox_for("d/f")] == [newer]


# -- the schema ------------------------------------------------------------------------------


def _old_store(root) -> None:
    """A store as the code before the versioned schema left it, with a row in each queue
    in the form that code wrote."""
    (root / "data").mkdir(parents=True)
    db = sqlite3.connect(root / "state.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(OLD_SCHEMA)
    db.execute("INSERT INTO meta (key, value) VALUES ('peer_id', 'oldpeer'), ('last_seq', 12)")
    db.execute(
        "INSERT INTO nodes (ino, parent, name, path, kind, mode, mtime_ns, ctime_ns, version, chunks)"
        " VALUES (?, ?, '', '', 'dir', ?, 1, 1, ?, ?)",
        (ROOT_INO, ROOT_INO, 0o755, msgpack.packb({}), msgpack.packb([])),
    )
    db.execute(
        "INSERT INTO nodes (parent, name, path, kind, mode, size, mtime_ns, ctime_ns, version, chunks, data_id)"
        " VALUES (?, 'f', 'f', 'file', 420, 10, 5, 5, ?, ?, 3)",
        (ROOT_INO, msgpack.packb({"a": 2}), msgpack.packb([[CHUNK.digest, CHUNK.length]])),
    )
    db.execute("INSERT INTO partials (data_id, row, present) VALUES (3, ?, ?)",
               (msgpack.packb(ROW.to_wire()), msgpack.packb([0])))
    db.execute("INSERT INTO deferred (path, row) VALUES (?, ?)", (ROW.entry.path, msgpack.packb(ROW.to_wire())))
    db.close()


def test_a_store_from_before_the_schema_version_opens_with_what_it_held(tmp_path):
    root = tmp_path / "store"
    _old_store(root)
    store = Store(root)
    store.open()
    try:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert (store.peer_id, store.last_seq) == ("oldpeer", 12)
        f = store.lookup_path("f")
        assert (f.version, f.chunks, f.data_id) == ({"a": 2}, (CHUNK,), 3)
        assert _paths(store.children(ROOT_INO)) == ["f"]
        assert store.partials() == [SavedPartial(3, ROW, (0,))]
        assert store.deferred_rows() == [ROW]
    finally:
        store.close()


def test_a_new_store_has_the_current_schema_and_a_root(tmp_path):
    store = Store(tmp_path / "store")
    store.open()
    try:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        root = store.get(ROOT_INO)
        assert (root.path, root.kind, root.version) == ("", Kind.DIR, {})
        peer_id = store.peer_id
    finally:
        store.close()
    store.open()  # reopened: nothing made again
    try:
        assert store.peer_id == peer_id and store.counts() == {"files": 0, "dirs": 0, "symlinks": 0}
    finally:
        store.close()


def test_a_store_from_a_newer_syncfs_is_refused_and_left_unlocked(tmp_path):
    store = Store(tmp_path / "store")
    store.open()
    store.db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    store.close()
    with pytest.raises(StoreTooNew) as caught:
        store.open()
    assert caught.value.version == SCHEMA_VERSION + 1
    with pytest.raises(StoreTooNew):  # not StoreBusy: the failed open let go of the lock
        Store(tmp_path / "store").open()


def test_a_store_opens_in_one_process_at_a_time(tmp_path):
    first = Store(tmp_path / "store")
    first.open()
    try:
        with pytest.raises(StoreBusy):
            Store(tmp_path / "store").open()
    finally:
        first.close()
