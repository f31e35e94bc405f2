"""A damaged local copy is caught by its digest when used, not served, and fetched again."""

import os
import sqlite3

import pytest
from harness import wait_for

pytestmark = pytest.mark.timeout(120)

MiB = 1 << 20


def data_file(peer, path: str):
    db = sqlite3.connect(peer.cache_dir / "state.db")
    try:
        (data_id,) = db.execute("SELECT data_id FROM nodes WHERE path=?", (path,)).fetchone()
    finally:
        db.close()
    return peer.cache_dir / "data" / str(data_id)


def test_damaged_local_chunk_is_not_served_and_is_refetched(cluster):
    cluster.expect_log(r"damaged|chunk link|download of")
    p1, p2 = cluster.start_peers(2)
    data = os.urandom(6 * MiB)
    p1.path("f").write_bytes(data)
    wait_for(lambda: p2.path("f").read_bytes() == data, what="f on p2")
    # bit rot in p1's copy, behind syncfs's back
    with open(data_file(p1, "f"), "r+b") as f:
        f.seek(3 * MiB)
        f.write(b"\xff" * 4096)
    # a new peer that can only ask p1 gets the good chunks and not the damaged one...
    p2.stop()
    p3 = cluster.add_peer()
    wait_for(lambda: "local copy of f is damaged" in p1.log_text(), what="p1 to notice the damage")
    # ...which it gets once p2 is back; p1 mends its own copy from p2 too
    p2.start()
    wait_for(lambda: p3.path("f").read_bytes() == data, timeout=60, what="f intact on p3")
    wait_for(lambda: data_file(p1, "f").read_bytes() == data, timeout=60, what="p1's copy mended")
    assert p1.path("f").read_bytes() == data


def test_damage_across_a_chunk_boundary_mends_both_chunks(cluster):
    """Two damaged chunks of one file: the second is found while the first is being
    fetched again, and must join that repair rather than stay damaged."""
    cluster.expect_log(r"damaged|chunk link|download of")
    p1, p2 = cluster.start_peers(2)
    data = os.urandom(6 * MiB)
    p1.path("f").write_bytes(data)
    wait_for(lambda: p2.path("f").read_bytes() == data, what="f on p2")
    path = data_file(p1, "f")
    db = sqlite3.connect(p1.cache_dir / "state.db")
    try:
        offsets = sorted(o for (o,) in db.execute(
            "SELECT offset FROM chunk_index WHERE data_id=?", (int(path.name),)))
    finally:
        db.close()
    boundary = offsets[len(offsets) // 2]
    assert boundary > 0
    with open(path, "r+b") as f:
        f.seek(boundary - 2048)
        f.write(b"\xff" * 4096)
    p2.stop()
    p3 = cluster.add_peer()
    wait_for(lambda: p1.log_text().count("local copy of f is damaged") >= 1, what="p1 to notice the damage")
    p2.start()
    wait_for(lambda: p3.path("f").read_bytes() == data, timeout=60, what="f intact on p3")
    wait_for(lambda: data_file(p1, "f").read_bytes() == data, timeout=60, what="p1's copy mended")
    assert p1.path("f").read_bytes() == data
