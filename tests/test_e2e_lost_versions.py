"""A version whose bytes are gone from every peer that held them is removed everywhere,
instead of staying listed with reads that fail forever: also when it was renamed, twice,
by peers that had not fetched it."""

import os

import pytest
from harness import syncfs_cli, wait_for, wait_same_tree

pytestmark = pytest.mark.timeout(180)


def test_a_stale_file_renamed_twice_after_its_only_holder_overwrote_it_is_removed(cluster):
    cluster.expect_log(r"tracker 127\.0\.0\.11|download of|every holder has overwritten")
    # a keeps no replaced bytes for fetchers: its overwrite destroys the first version
    a, b, c = cluster.start_peers(3, extra_args=["--keep-replaced", "0"])
    for peer in (a, b, c):  # nothing is fetched, so only a ever holds the first bytes
        assert syncfs_cli("pause", str(peer.mnt)).returncode == 0
    a.path("x").write_bytes(b"first version\n" * 100)
    wait_for(lambda: b.path("x").exists() and c.path("x").exists(), what="x listed on b and c")
    cluster.tracker.kill()
    with open(a.path("x"), "r+b") as f:  # a overwrites its only copy of those bytes
        f.write(b"SECOND VERSION\n" * 100)
    os.rename(b.path("x"), b.path("y"))  # b renames what it never fetched
    cluster.tracker.start()
    wait_for(lambda: c.path("y").exists(), timeout=30, what="y listed on c")
    os.rename(c.path("y"), c.path("z"))  # and so does c, from the row it got
    wait_for(lambda: a.path("z").exists() and b.path("z").exists(), timeout=30, what="z listed on a and b")
    for peer in (a, b, c):
        assert syncfs_cli("resume", str(peer.mnt)).returncode == 0
    # no peer has the first bytes: z is removed; x keeps the second version everywhere
    tree = wait_same_tree([a, b, c], timeout=90)
    assert sorted(tree) == ["x"], sorted(tree)
    for peer in (a, b, c):
        assert peer.path("x").read_bytes() == b"SECOND VERSION\n" * 100
