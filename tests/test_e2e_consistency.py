"""Issue 4 end to end: conflicts, deletions, offline edits and crashes converge without loss."""

import os
import re

import pytest
from harness import wait_for, wait_same_tree

pytestmark = pytest.mark.timeout(120)

CONFLICT = re.compile(r"^doc\.sync-conflict-\d{8}-\d{6}-[0-9a-f]{1,7}(-\d+)?\.txt$")


def contents(peer) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(peer.mnt.iterdir()) if p.is_file()}


def test_concurrent_edits_while_tracker_down_keep_both(cluster):
    cluster.expect_log(r"tracker 127\.0\.0\.11")
    p1, p2, p3 = cluster.start_peers(3)
    p1.path("doc.txt").write_text("original\n")
    wait_same_tree([p1, p2, p3])
    cluster.tracker.kill()
    p1.path("doc.txt").write_text("edit from p1\n")
    p2.path("doc.txt").write_text("edit from p2, a longer one\n")
    cluster.tracker.start()
    tree = wait_same_tree([p1, p2, p3], timeout=60)
    names = sorted(tree)
    assert len(names) == 2 and "doc.txt" in names, names
    assert CONFLICT.match([n for n in names if n != "doc.txt"][0]), names
    assert sorted(contents(p3).values()) == ["edit from p1\n", "edit from p2, a longer one\n"]


def test_edit_beats_concurrent_delete(cluster):
    cluster.expect_log(r"tracker 127\.0\.0\.11")
    p1, p2, p3 = cluster.start_peers(3)
    p1.path("doc.txt").write_text("keep me\n")
    wait_same_tree([p1, p2, p3])
    cluster.tracker.kill()
    p1.path("doc.txt").write_text("keep me, edited\n")
    os.unlink(p2.path("doc.txt"))
    cluster.tracker.start()
    wait_same_tree([p1, p2, p3], timeout=60)
    for p in (p1, p2, p3):
        assert contents(p) == {"doc.txt": "keep me, edited\n"}


def test_offline_edits_survive_peer_sigkill_and_reach_others(cluster):
    cluster.expect_log(r"tracker 127\.0\.0\.11")
    p1, p2 = cluster.start_peers(2)
    cluster.tracker.kill()
    p1.path("offline.txt").write_text("written while the tracker was away\n")
    wait_for(lambda: p1.status()["outbox"] == 1, what="the outbox to hold it")
    p1.kill()  # the outbox must be durable
    p1.start()
    cluster.tracker.start()
    wait_same_tree([p1, p2], timeout=60)
    assert contents(p2) == {"offline.txt": "written while the tracker was away\n"}


def test_tracker_sigkill_loses_nothing_and_doubles_nothing(cluster):
    cluster.expect_log(r"tracker 127\.0\.0\.11")
    p1, p2 = cluster.start_peers(2)
    for i in range(40):
        p1.path(f"f{i}").write_text(f"{i}\n")
        if i == 20:
            cluster.tracker.kill()
            cluster.tracker.start()
    tree = wait_same_tree([p1, p2], timeout=60)
    assert sorted(tree) == sorted(f"f{i}" for i in range(40))


def test_remote_delete_of_directory_keeps_unsynced_local_file(cluster):
    cluster.expect_log(r"tracker 127\.0\.0\.11")
    p1, p2 = cluster.start_peers(2)
    os.makedirs(p1.path("d"))
    p1.path("d/a").write_text("a")
    wait_same_tree([p1, p2])
    cluster.tracker.kill()
    os.unlink(p1.path("d/a"))
    os.rmdir(p1.path("d"))
    p2.path("d/new").write_text("made on p2 meanwhile")
    cluster.tracker.start()
    tree = wait_same_tree([p1, p2], timeout=60)
    assert sorted(tree) == ["d", "d/new"]
