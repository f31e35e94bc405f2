"""The tracker's merge rules (pure) and its SQLite state."""

import dataclasses
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncfs.protocol import versions
from syncfs.protocol.entries import Chunk, Entry, Kind
from syncfs.protocol.paths import validate_path
from tracker import merge
from tracker.merge import Stored
from tracker.state import TrackerState

# 2026-11-24 10:15:00 UTC
T0 = 1_795_515_300 * 1_000_000_000


def chunk(tag: int, length: int = 10) -> Chunk:
    return Chunk(bytes([tag % 256]) * 32, length)


def file(path: str, version: dict[str, int], tag: int = 1, mtime_ns: int = T0) -> Entry:
    return Entry(path, Kind.FILE, 10, 0o644, mtime_ns, version, (chunk(tag),))


def tomb(path: str, version: dict[str, int], mtime_ns: int = T0) -> Entry:
    return Entry(path, Kind.FILE, 0, 0o644, mtime_ns, version, (), deleted=True)


def folder(path: str, version: dict[str, int], mtime_ns: int = T0) -> Entry:
    return Entry(path, Kind.DIR, 0, 0o755, mtime_ns, version)


class Table:
    """A dict-backed table to drive merge.decide the way TrackerState does."""

    def __init__(self) -> None:
        self.rows: dict[str, Stored] = {}
        self.log: list[Stored] = []

    def apply(self, peer: str, entry: Entry) -> list[Stored]:
        writes = merge.decide(entry, peer, self.rows.get(entry.path), self.rows.get)
        for w in writes:
            self.rows[w.entry.path] = w
        self.log.extend(writes)
        return writes


def test_new_path_is_accepted():
    t = Table()
    [row] = t.apply("alice", file("a.txt", {"alice": 1}))
    assert row == Stored(file("a.txt", {"alice": 1}), "alice", ("alice",))


def test_a_rename_by_a_peer_without_the_bytes_lists_the_holders_it_names():
    """The sender of a rename of a file it had not fetched names the holders of the row it
    renamed: the new row can be fetched from them, and found lost when none has it."""
    t = Table()
    moved = dataclasses.replace(file("b.txt", {"bob": 1}), held=False, held_by=("alice", "bob", "alice"))
    [row] = t.apply("bob", moved)
    assert row.holders == ("alice",)  # never the sender itself, each once
    assert row.entry.held_by == ()  # a hint for the tracker, not part of the row
    # a chmod of it by a third peer that lacks the bytes too keeps the row's holders
    chmod = dataclasses.replace(file("b.txt", {"bob": 1, "carol": 1}), mode=0o600, held=False)
    [row] = t.apply("carol", chmod)
    assert row.holders == ("alice",)
    # the same bytes listed with nobody: the sender's names fill in
    t.rows["c.txt"] = Stored(file("c.txt", {"dave": 1}), "dave", ())
    [row] = t.apply("erin", dataclasses.replace(file("c.txt", {"dave": 1, "erin": 1}), held=False,
                                                held_by=("dave",)))
    assert row.holders == ("dave",)


def test_newer_version_replaces_and_resets_holders():
    t = Table()
    t.apply("alice", file("a.txt", {"alice": 1}))
    t.rows["a.txt"] = merge.add_holder(t.rows["a.txt"], "bob", {"alice": 1})
    assert t.rows["a.txt"].holders == ("alice", "bob")
    [row] = t.apply("bob", file("a.txt", {"alice": 1, "bob": 1}, tag=2))
    assert row.origin == "bob" and row.holders == ("bob",)
    assert row.entry.chunks == (chunk(2),)


@pytest.mark.parametrize("version", [{"alice": 2}, {"alice": 1}])
def test_equal_or_older_version_is_ignored(version):
    t = Table()
    t.apply("alice", file("a.txt", {"alice": 2}))
    assert t.apply("alice", file("a.txt", version, tag=9)) == []
    assert t.rows["a.txt"].entry.chunks == (chunk(1),)


def test_concurrent_deletes_merge_versions():
    t = Table()
    t.apply("alice", tomb("a.txt", {"alice": 2, "bob": 1}))
    [row] = t.apply("bob", tomb("a.txt", {"alice": 1, "bob": 2}))
    assert row.entry.deleted
    assert row.entry.version == {"alice": 2, "bob": 2}
    assert list(t.rows) == ["a.txt"]


@pytest.mark.parametrize("edit_first", [True, False])
def test_edit_beats_concurrent_delete(edit_first):
    t = Table()
    edit = ("alice", file("a.txt", {"alice": 2, "bob": 1}, tag=7))
    delete = ("bob", tomb("a.txt", {"alice": 1, "bob": 2}, mtime_ns=T0 + 10**9))
    first, second = (edit, delete) if edit_first else (delete, edit)
    t.apply(*first)
    [row] = t.apply(*second)
    assert not row.entry.deleted
    assert row.entry.chunks == (chunk(7),)
    assert row.entry.version == {"alice": 2, "bob": 2}
    assert versions.dominates(row.entry.version, edit[1].version)
    assert versions.dominates(row.entry.version, delete[1].version)
    assert row.origin == "alice" and row.holders == ("alice",)
    assert list(t.rows) == ["a.txt"]


def test_both_live_newer_mtime_wins_and_loser_becomes_conflict_copy():
    t = Table()
    t.apply("bob1234567", file("dir/notes.txt", {"bob1234567": 1}, tag=1, mtime_ns=T0))
    writes = t.apply("alice", file("dir/notes.txt", {"alice": 1}, tag=2, mtime_ns=T0 + 5))
    copy, winner = writes  # the copy's seq comes first
    assert copy.entry.path == "dir/notes.sync-conflict-20261124-101500-bob1234.txt"
    assert copy.entry.chunks == (chunk(1),)
    assert copy.entry.version == {"bob1234567": 1}
    assert copy.origin == "bob1234567" and copy.holders == ("bob1234567",)
    assert winner.entry.path == "dir/notes.txt"
    assert winner.entry.chunks == (chunk(2),)
    assert winner.entry.version == {"alice": 1, "bob1234567": 1}
    assert winner.origin == "alice" and winner.holders == ("alice",)


def test_mtime_tie_is_broken_by_larger_origin():
    t = Table()
    t.apply("zed", file("a", {"zed": 1}, tag=1))
    copy, winner = t.apply("amy", file("a", {"amy": 1}, tag=2))
    assert winner.origin == "zed" and winner.entry.chunks == (chunk(1),)
    assert copy.origin == "amy" and copy.entry.path.startswith("a.sync-conflict-")


def test_dir_beats_newer_file():
    t = Table()
    t.apply("alice", folder("x", {"alice": 1}, mtime_ns=T0))
    copy, winner = t.apply("bob", file("x", {"bob": 1}, mtime_ns=T0 + 10**12))
    assert winner.entry.kind is Kind.DIR and winner.entry.path == "x"
    assert copy.entry.kind is Kind.FILE and copy.entry.path.startswith("x.sync-conflict-")


def test_two_dirs_just_merge_versions():
    t = Table()
    t.apply("alice", folder("x", {"alice": 1}))
    [row] = t.apply("bob", folder("x", {"bob": 1}))
    assert row.entry.kind is Kind.DIR and row.entry.version == {"alice": 1, "bob": 1}
    assert list(t.rows) == ["x"]


@pytest.mark.parametrize(
    "name, expected",
    [
        ("notes.txt", "notes.sync-conflict-20261124-101500-abc1234.txt"),
        ("Makefile", "Makefile.sync-conflict-20261124-101500-abc1234"),
        (".bashrc", ".bashrc.sync-conflict-20261124-101500-abc1234"),
        ("a.tar.gz", "a.tar.sync-conflict-20261124-101500-abc1234.gz"),
        ("d/e/f.md", "d/e/f.sync-conflict-20261124-101500-abc1234.md"),
    ],
)
def test_conflict_path_names(name, expected):
    assert merge.conflict_path(name, T0, "abc1234567") == expected


def test_conflict_path_numbers_when_taken():
    assert merge.conflict_path("n.txt", T0, "abc", 2) == "n.sync-conflict-20261124-101500-abc-2.txt"


def test_taken_conflict_path_gets_a_number_and_tombstone_is_dominated():
    t = Table()
    base = "notes.sync-conflict-20261124-101500-bob"
    t.apply("carol", file(base + ".txt", {"carol": 1}))  # live: taken
    t.apply("carol", tomb(base + "-1.txt", {"carol": 3, "bob": 4}))  # tombstone: free
    t.apply("bob", file("notes.txt", {"bob": 1}, tag=1))
    copy, _ = t.apply("alice", file("notes.txt", {"alice": 1}, tag=2, mtime_ns=T0 + 1))
    assert copy.entry.path == base + "-1.txt"
    assert copy.entry.version == {"carol": 3, "bob": 5}
    assert t.rows[base + ".txt"].origin == "carol"


def test_conflict_copy_strictly_dominates_tombstone_at_its_path():
    t = Table()
    path = "n.sync-conflict-20261124-101500-bob"
    t.apply("carol", tomb(path, {"carol": 3}))
    t.apply("bob", file("n", {"bob": 1}))
    copy, _ = t.apply("alice", file("n", {"alice": 1}, mtime_ns=T0 + 1))
    assert copy.entry.path == path
    assert versions.dominates(copy.entry.version, {"carol": 3})


def test_long_names_are_cut_to_fit():
    name = "x" * 251 + ".txt"
    path = merge.conflict_path("d/" + name, T0, "peer")
    validate_path(path)
    part = path.split("/")[-1]
    assert len(part.encode()) <= 255 and part.endswith("-peer.txt")
    multi = "é" * 125 + ".txt"
    part = merge.conflict_path(multi, T0, "peer")
    validate_path(part)
    assert len(part.encode()) <= 255


def test_deep_path_still_gets_a_valid_conflict_copy():
    parent = "/".join(["p" * 200] * 20)  # 4019 bytes
    path = parent + "/" + "n" * 70
    validate_path(path)
    out = merge.conflict_path(path, T0, "peer")
    validate_path(out)
    assert "sync-conflict" in out


def test_conflict_stamp_handles_extreme_times():
    assert merge.conflict_stamp(0) == "19700101-000000"
    assert merge.conflict_stamp(-(10**30)) == "00010101-000000"
    assert merge.conflict_stamp(10**30) == "99991231-235959"


def test_add_holder_rules():
    row = Stored(file("a", {"alice": 1}), "alice", ("alice",))
    assert merge.add_holder(row, "bob", {"alice": 1}).holders == ("alice", "bob")
    assert merge.add_holder(row, "alice", {"alice": 1}) is None
    assert merge.add_holder(row, "bob", {"alice": 2}) is None
    assert merge.add_holder(None, "bob", {"alice": 1}) is None


def test_drop_holder_is_granted_only_while_another_holder_is_online():
    row = Stored(file("a", {"alice": 1}), "alice", ("alice", "bob"))
    # another holder online: granted, and only the asker leaves the holders
    granted = merge.drop_holder(row, "alice", {"alice": 1}, {"alice", "bob"})
    assert isinstance(granted, Stored) and granted.holders == ("bob",) and granted.entry == row.entry
    # the other holder is offline: the asker may hold the only reachable copy
    assert "no other holder is online" in merge.drop_holder(row, "alice", {"alice": 1}, {"alice", "carol"})
    # the only holder
    only = Stored(file("a", {"alice": 1}), "alice", ("alice",))
    assert "only copy" in merge.drop_holder(only, "alice", {"alice": 1}, {"alice", "bob", "carol"})
    # a superseded or deleted version, or an unknown path: refused, nothing to withdraw from
    assert "newer version" in merge.drop_holder(row, "alice", {"alice": 2}, {"alice", "bob"})
    assert isinstance(merge.drop_holder(None, "alice", {"alice": 1}, {"alice", "bob"}), str)
    gone = Stored(tomb("a", {"alice": 2}), "alice", ())
    assert isinstance(merge.drop_holder(gone, "alice", {"alice": 2}, {"alice", "bob"}), str)
    # not a holder (a request repeated after a lost link): the row as it is
    assert merge.drop_holder(row, "carol", {"alice": 1}, {"carol"}) == row


def test_two_holders_dropping_in_turn_keep_the_last_copy():
    row = Stored(file("a", {"alice": 1}), "alice", ("alice", "bob"))
    online = {"alice", "bob"}
    first = merge.drop_holder(row, "alice", {"alice": 1}, online)
    assert isinstance(first, Stored) and first.holders == ("bob",)
    assert isinstance(merge.drop_holder(first, "bob", {"alice": 1}, online), str)


# -- property: the arrival order of two concurrent updates does not matter --------------

PEERS = ["p" + str(i) for i in range(4)]


@st.composite
def concurrent_pair(draw):
    """A base row (or none) and two updates on top of it from two peers, concurrent."""
    path = draw(st.sampled_from(["f", "d/notes.txt", "Makefile"]))
    base = draw(st.none() | st.builds(lambda v: {"p3": v}, st.integers(1, 3)))
    a_peer, b_peer = draw(st.permutations(PEERS[:3]))[:2]

    def one(peer, tag):
        version = versions.bump(base or {}, peer)
        extra = draw(st.dictionaries(st.sampled_from(PEERS), st.integers(0, 2), max_size=2))
        version = versions.merge(version, extra)
        version[peer] = version[peer] + draw(st.integers(0, 2))
        kind = draw(st.sampled_from(["file", "file", "dir", "deleted"]))
        mtime = T0 + draw(st.integers(0, 2)) * 10**9
        if kind == "dir":
            return peer, folder(path, version, mtime)
        if kind == "deleted":
            return peer, tomb(path, version, mtime)
        return peer, file(path, version, tag, mtime)

    a = one(a_peer, 1)
    b = one(b_peer, 2)
    if versions.compare(a[1].version, b[1].version) is not versions.Order.CONCURRENT:
        # make them concurrent: each carries a change the other has not seen
        va = versions.bump(a[1].version, "x" + a_peer)
        vb = versions.bump(b[1].version, "x" + b_peer)
        a = (a[0], Entry(**{**a[1].__dict__, "version": va}))
        b = (b[0], Entry(**{**b[1].__dict__, "version": vb}))
    occupied = draw(st.booleans())
    return base, a, b, occupied


def seeded(base, path, occupied):
    t = Table()
    if base is not None:
        t.apply("p3", file(path, base, tag=3))
    if occupied:
        # something live already sits where a conflict copy would go
        for peer in PEERS:
            for mt in range(3):
                t.apply("p3", file(merge.conflict_path(path, T0 + mt * 10**9, peer), {"p3": 1}))
    return t


@settings(max_examples=300, deadline=None)
@given(concurrent_pair())
def test_arrival_order_does_not_matter_and_nothing_is_lost(case):
    base, (pa, a), (pb, b), occupied = case
    assert versions.compare(a.version, b.version) is versions.Order.CONCURRENT
    one = seeded(base, a.path, occupied)
    one.apply(pa, a)
    one.apply(pb, b)
    two = seeded(base, a.path, occupied)
    two.apply(pb, b)
    two.apply(pa, a)
    assert one.rows == two.rows

    row = one.rows[a.path]
    assert versions.compare(row.entry.version, a.version) is versions.Order.AFTER
    assert versions.compare(row.entry.version, b.version) is versions.Order.AFTER
    live = [r.entry for r in one.rows.values() if not r.entry.deleted]
    for e in (a, b):
        if e.deleted:
            continue
        if e.kind is Kind.DIR:
            assert row.entry.kind is Kind.DIR and not row.entry.deleted
        else:
            assert any(x.kind is e.kind and x.chunks == e.chunks for x in live), e
    for r in one.rows.values():
        validate_path(r.entry.path)


# -- the SQLite state ---------------------------------------------------------------


def test_state_persists_across_reopen(tmp_path: Path):
    with TrackerState(tmp_path) as state:
        assert state.current_seq == 0
        rows = state.apply_update("alice", [file("a", {"alice": 1}), folder("d", {"alice": 1})])
        assert [r.seq for r in rows] == [1, 2]
        assert state.add_holder("bob", "a", {"alice": 1}).seq == 3
        assert state.add_holder("bob", "a", {"alice": 1}) is None
    with TrackerState(tmp_path) as state:
        assert state.current_seq == 3
        assert [r.entry.path for r in state.rows_since(0, 10)] == ["d", "a"]
        assert state.row("a").holders == ("alice", "bob")
        assert state.origin("a") == "alice"
        assert state.rows_since(2, 10)[0].seq == 3
        assert state.rows_since(0, 1)[0].entry.path == "d"
        assert state.rows_since(0, 10, upto=2)[0].entry.path == "d"
        assert len(state.rows_since(0, 10, upto=2)) == 1


def test_state_apply_update_conflict_order_and_idempotence(tmp_path: Path):
    with TrackerState(tmp_path) as state:
        state.apply_update("bob", [file("n.txt", {"bob": 1}, tag=1)])
        rows = state.apply_update("alice", [file("n.txt", {"alice": 1}, tag=2, mtime_ns=T0 + 1)])
        assert [r.entry.path for r in rows] == ["n.sync-conflict-20261124-101500-bob.txt", "n.txt"]
        assert [r.seq for r in rows] == [2, 3]
        assert state.apply_update("alice", [file("n.txt", {"alice": 1}, tag=2)]) == []
        assert state.current_seq == 3


def test_state_db_is_wal_and_seq_is_indexed(tmp_path: Path):
    TrackerState(tmp_path).close()
    db = sqlite3.connect(tmp_path / "tracker.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    plan = db.execute(
        "EXPLAIN QUERY PLAN SELECT entry, seq, holders FROM rows "
        "WHERE seq > 1 AND seq <= 5 ORDER BY seq LIMIT 10"
    ).fetchall()
    assert any("rows_by_seq" in str(step) for step in plan), plan
    db.close()
