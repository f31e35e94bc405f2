"""A big file written from empty is cut into chunks while it is written: its commit after
close cuts only the tail, and publishes exactly the chunks a whole cut gives."""

import os
import random
import re
import sqlite3

import pytest
from harness import wait_for

from syncfs.chunking import chunk_bytes
from syncfs.store import unpack_chunks

pytestmark = pytest.mark.timeout(120)

MiB = 1 << 20


def committed_chunks(peer, path: str):
    db = sqlite3.connect(peer.cache_dir / "state.db")
    try:
        (raw,) = db.execute("SELECT chunks FROM nodes WHERE path=?", (path,)).fetchone()
    finally:
        db.close()
    return list(unpack_chunks(raw))


def cut_while_written(peer, path: str) -> list[int]:
    """For each commit of ``path`` in the peer's log, how many chunks were cut before it."""
    pattern = rf"committed {re.escape(path)} \(\d+ bytes, \d+ chunks, (\d+) of them cut while written\)"
    return [int(n) for n in re.findall(pattern, peer.log_text())]


def write_in_pieces(path, data: bytes, *, rewrite_at: int | None = None) -> None:
    with open(path, "wb") as f:
        for off in range(0, len(data), MiB):
            f.write(data[off:off + MiB])
            if off == 32 * MiB:
                f.flush()
                os.fsync(f.fileno())  # the kernel sends what it holds: cutting starts
        if rewrite_at is not None:
            f.seek(rewrite_at)
            f.write(data[rewrite_at:rewrite_at + 100])


@pytest.mark.parametrize("rewrite_at", [None, 100], ids=["sequential", "header-rewritten"])
def test_chunks_cut_while_written_are_those_of_a_whole_cut(cluster, rewrite_at):
    p1 = cluster.add_peer(extra_args=["--log-level", "DEBUG"])
    p2 = cluster.add_peer()
    data = random.Random(11).randbytes(48 * MiB)
    write_in_pieces(p1.path("big"), data, rewrite_at=rewrite_at)
    wait_for(lambda: p2.path("big").read_bytes() == data, timeout=60, what="big on p2")
    assert committed_chunks(p1, "big") == chunk_bytes(data)
    counts = wait_for(lambda: cut_while_written(p1, "big"), what="the commit in p1's log")
    if rewrite_at is None:
        assert counts[-1] > 0  # most of it was cut before close
    else:
        assert counts[-1] == 0  # a write below what was cut: the whole file is cut again
