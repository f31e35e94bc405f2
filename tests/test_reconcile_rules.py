"""The peer-side merge rules beside ``decide``: pure, tested by tables."""

import pytest

from syncfs.protocol.entries import Chunk, Entry, Kind
from syncfs.reconcile import (
    LOST_CONFIRM,
    FileChange,
    delete_keeps_dir,
    file_change,
    lost_verdict,
    own_counter_kept,
)

A = (Chunk(b"a" * 32, 10),)
B = (Chunk(b"b" * 32, 10),)


def f(chunks, mtime=1, kind=Kind.FILE):
    return Entry("x", kind, size=sum(c.length for c in chunks), mode=0o644, mtime_ns=mtime,
                 version={"p": 1}, chunks=chunks if kind is Kind.FILE else ())


@pytest.mark.parametrize(("local", "remote", "change"), [
    (None, f(A), FileChange.CONTENT),
    (f(A), f(A), FileChange.ATTRIBUTES),  # chmod, setfattr, a merge of versions
    (f(A, mtime=1), f(A, mtime=2), FileChange.RENUMBER),  # touch: the kernel keeps its own mtime
    (f(A), f(B), FileChange.CONTENT),
    (f((), kind=Kind.DIR), f(()), FileChange.CONTENT),  # another shape at the path
])
def test_how_a_remote_file_lands(local, remote, change):
    assert file_change(local, remote) is change


@pytest.mark.parametrize(("kind", "children", "kept"), [
    (Kind.DIR, True, True), (Kind.DIR, False, False), (Kind.FILE, False, False), (Kind.SYMLINK, False, False),
])
def test_a_directory_with_unknown_children_survives_a_delete(kind, children, kept):
    assert delete_keeps_dir(kind, children) is kept


@pytest.mark.parametrize(("base", "known", "out"), [
    ({}, {}, {}),
    ({"me": 1}, {"me": 3}, {"me": 3}),  # the caller missed two of our own commits
    ({"me": 4}, {"me": 3}, {"me": 4}),
    ({"o": 2}, {"me": 1, "o": 1}, {"o": 2, "me": 1}),
    ({"o": 2, "me": 5}, {"me": 5}, {"o": 2, "me": 5}),
])
def test_our_own_counter_never_goes_back(base, known, out):
    assert own_counter_kept(base, known, "me") == out


@pytest.mark.parametrize(("missing", "holders", "repair", "since", "now", "verdict"), [
    (True, True, False, None, 100.0, (False, 100.0)),  # first sighting: wait for confirmation
    (True, True, False, 100.0, 100.0 + LOST_CONFIRM - 0.1, (False, 100.0)),
    (True, True, False, 100.0, 100.0 + LOST_CONFIRM, (True, 100.0)),
    (False, True, False, 100.0, 500.0, (False, None)),  # a holder came back: start again
    (True, False, False, 100.0, 500.0, (False, None)),  # no holder named: an offline peer may have it
    (True, True, True, 100.0, 500.0, (False, None)),  # a repair is never dropped
])
def test_the_lost_verdict(missing, holders, repair, since, now, verdict):
    assert lost_verdict(every_holder_missing=missing, has_holders=holders, repair=repair,
                        lost_since=since, now=now) == verdict
