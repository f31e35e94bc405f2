"""The pure push/pull decision of the watched-directory front end (syncfs/mirror.py)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncfs.mirror import (
    Action,
    Disk,
    Seen,
    Shared,
    content_key,
    decide,
    disk_unchanged,
    share_unchanged,
)
from syncfs.protocol.entries import Chunk, Kind

A = content_key(Kind.FILE, (Chunk(b"a" * 32, 10),))
B = content_key(Kind.FILE, (Chunk(b"b" * 32, 10),))
V1 = {"p": 1}
V2 = {"p": 2}


def seen(content: bytes = A, version: dict = V1, **kw) -> Seen:
    fields = dict(path="f", kind=Kind.FILE, ino=7, size=10, mtime_ns=100, mode=0o644, content=content, version=version)
    fields.update(kw)
    return Seen(**fields)


def disk(**kw) -> Disk:
    fields = dict(kind=Kind.FILE, ino=7, size=10, mtime_ns=100, mode=0o644)
    fields.update(kw)
    return Disk(**fields)


def shared(content: bytes = A, version: dict = V1, **kw) -> Shared:
    fields = dict(kind=Kind.FILE, mode=0o644, mtime_ns=100, content=content, version=version)
    fields.update(kw)
    return Shared(**fields)


@pytest.mark.parametrize(
    ("d", "s", "n", "action"),
    [
        (None, None, None, Action.NOTHING),
        (disk(), seen(), shared(), Action.NOTHING),
        # the directory changed
        (disk(size=11), seen(), shared(), Action.PUSH),
        (disk(mtime_ns=101), seen(), shared(), Action.PUSH),
        (disk(mode=0o600), seen(), shared(), Action.PUSH),
        (disk(ino=8), seen(), shared(), Action.PUSH),  # replaced by a rename over it
        (disk(), None, None, Action.PUSH),  # new here
        (disk(), None, shared(), Action.PUSH),  # new here and there: import decides (adopt or conflict)
        (None, seen(), shared(), Action.PUSH),  # deleted here
        (disk(kind=Kind.DIR, mode=0o755), seen(), shared(), Action.PUSH),
        # both changed: the directory's change is pushed (on the seen version: a conflict)
        (disk(size=11), seen(), shared(content=B, version=V2), Action.PUSH),
        # the share changed
        (disk(), seen(), shared(content=B, version=V2), Action.PULL),
        (disk(), seen(), shared(mode=0o600, version=V2), Action.PULL),
        (disk(), seen(), shared(mtime_ns=5, version=V2), Action.PULL),
        (disk(), seen(), None, Action.PULL),  # deleted in the share
        (None, None, shared(), Action.PULL),  # new in the share
        (disk(), seen(), shared(content=B, version=V2, complete=False), Action.WAIT),
        # deleted here, edited there: the edit wins and comes back (once it is all here)
        (None, seen(), shared(content=B, version=V2), Action.PULL),
        (None, seen(), shared(content=B, version=V2, complete=False), Action.WAIT),
        # gone from both, or agreeing on a new version of the same state
        (None, seen(), None, Action.RECORD),
        (disk(), seen(), shared(version=V2), Action.RECORD),
        # user.* attributes count as a change on either side
        (disk(xattrs=b"x"), seen(), shared(), Action.PUSH),
        (disk(), seen(), shared(xattrs=b"x", version=V2), Action.PULL),
        (disk(xattrs=b"x"), seen(xattrs=b"x"), shared(xattrs=b"x"), Action.NOTHING),
    ],
)
def test_decide(d, s, n, action) -> None:
    assert decide(d, s, n) is action


def test_directories_ignore_mtime_and_inode() -> None:
    s = seen(kind=Kind.DIR, content=b"", mode=0o755)
    n = shared(kind=Kind.DIR, content=b"", mode=0o755, mtime_ns=1)
    assert decide(disk(kind=Kind.DIR, mode=0o755, mtime_ns=999, ino=3, size=4096), s, n) is Action.NOTHING


def test_a_symlink_is_its_target() -> None:
    s = seen(kind=Kind.SYMLINK, content=content_key(Kind.SYMLINK, target="a"), mode=0o777)
    n = shared(kind=Kind.SYMLINK, content=content_key(Kind.SYMLINK, target="a"), mode=0o777)
    assert decide(disk(kind=Kind.SYMLINK, mode=0o777, target="a"), s, n) is Action.NOTHING
    assert decide(disk(kind=Kind.SYMLINK, mode=0o777, target="b"), s, n) is Action.PUSH


kinds = st.sampled_from([Kind.FILE, Kind.DIR, Kind.SYMLINK])
disks = st.none() | st.builds(Disk, kinds, st.integers(1, 3), st.integers(0, 2), st.integers(0, 2),
                               st.sampled_from([0o644, 0o600]), st.sampled_from(["", "a"]))
seens = st.none() | st.builds(Seen, st.just("f"), kinds, st.integers(1, 3), st.integers(0, 2), st.integers(0, 2),
                               st.sampled_from([0o644, 0o600]), st.sampled_from([A, B]), st.sampled_from([V1, V2]))
shareds = st.none() | st.builds(Shared, kinds, st.sampled_from([0o644, 0o600]), st.integers(0, 2),
                                 st.sampled_from([A, B]), st.sampled_from([V1, V2]), st.booleans())


@given(disks, seens, shareds)
def test_a_directory_change_is_never_overwritten(d, s, n) -> None:
    """Whatever the states, a change here is pushed (never pulled over), unless it was a
    deletion and the share changed meanwhile (then the edit comes back)."""
    action = decide(d, s, n)
    if action is Action.PULL:
        assert n is None or n.kind is not Kind.FILE or n.complete, "never writes bytes that are not all here"
    if not disk_unchanged(s, d):
        if d is None:
            assert action in (Action.PUSH, Action.PULL, Action.WAIT, Action.RECORD)
            assert action in (Action.PUSH, Action.RECORD) or not share_unchanged(s, n)
        else:
            assert action is Action.PUSH
    else:
        assert action is not Action.PUSH
