"""Readers on one peer while a program on another rewrites the file they read: every open
reads one complete version, the old one or the new one, never a mix, and never fails
because a newer version exists (issue 13, finding 1)."""

import sqlite3
import struct
import threading
import time

import pytest
from harness import wait_for

pytestmark = pytest.mark.timeout(150)

RUN = 20.0  # seconds each pair runs
SIZE = 1_300_000
BLOCK = 4096


def version_bytes(n: int) -> bytes:
    """A file every 4 KiB block of which names version ``n``: a mix of versions shows."""
    block = struct.pack(">Q", n) * (BLOCK // 8)
    return (block * (SIZE // BLOCK + 1))[:SIZE]


def version_of(data: bytes) -> int | None:
    """The version a whole file holds, or None if it mixes versions or is cut short."""
    if len(data) != SIZE:
        return None
    n = data[:8]
    return struct.unpack(">Q", n)[0] if data == (n * (SIZE // 8 + 1))[:SIZE] else None


class Loop(threading.Thread):
    """Runs ``step`` until stopped, counting the errors it raises (with the first few)."""

    def __init__(self, step) -> None:
        super().__init__(daemon=True)
        self.step = step
        self.stop = threading.Event()
        self.runs = 0
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.step()
            except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self.runs += 1

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=30)
        assert not self.is_alive(), "the loop did not stop"


def run_pair(writer: Loop, reader: Loop) -> None:
    writer.start()
    reader.start()
    try:
        time.sleep(RUN)  # the workload itself: both loops run this long
    finally:
        reader.finish()
        writer.finish()


@pytest.mark.parametrize("how", ["truncate", "in place"])
def test_whole_file_reads_during_rewrites_see_one_version(cluster, how):
    p1, p2 = cluster.start_peers(2)
    target = p1.path("data.bin")
    target.write_bytes(version_bytes(0))
    wait_for(lambda: version_of(p2.path("data.bin").read_bytes()) == 0, what="version 0 on p2")
    written = [0]

    def rewrite() -> None:
        n = written[-1] + 1
        with open(target, "wb" if how == "truncate" else "r+b") as f:
            f.write(version_bytes(n))
        written.append(n)
        time.sleep(0.03)

    seen: list[int] = []

    def read() -> None:
        data = p2.path("data.bin").read_bytes()
        v = version_of(data)
        if v is None:
            raise AssertionError(f"a read mixed versions or was cut short ({len(data)} bytes)")
        seen.append(v)

    writer, reader = Loop(rewrite), Loop(read)
    run_pair(writer, reader)
    assert writer.errors == [] and reader.errors == [], (writer.errors[:5], reader.errors[:5], reader.runs)
    assert reader.runs > 50 and len(written) > 100, (reader.runs, len(written))
    assert max(seen) > 0, "the reader never saw a newer version"
    final = written[-1]
    wait_for(lambda: version_of(p2.path("data.bin").read_bytes()) == final, what="the last version on p2")


def test_sqlite_readers_during_inserts_never_fail(cluster):
    p1, p2 = cluster.start_peers(2)
    db = p1.path("test.db")
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
        c.executemany("INSERT INTO t (body) VALUES (?)", [("x" * 200,)] * 2000)
    c.close()
    wait_for(lambda: p2.path("test.db").exists() and p2.path("test.db").stat().st_size == db.stat().st_size,
             what="the database on p2")

    def insert() -> None:
        c = sqlite3.connect(db, timeout=10)  # as the sqlite3 shell does: one connection each time
        try:
            with c:
                c.execute("INSERT INTO t (body) VALUES (?)", ("y" * 200,))
        finally:
            c.close()
        time.sleep(0.02)

    counts: list[int] = []

    def check() -> None:
        c = sqlite3.connect(f"file:{p2.path('test.db')}?mode=ro", uri=True, timeout=10)
        try:
            assert c.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            counts.append(c.execute("SELECT count(*) FROM t").fetchone()[0])
        finally:
            c.close()

    writer, reader = Loop(insert), Loop(check)
    run_pair(writer, reader)
    assert writer.errors == [] and reader.errors == [], (writer.errors[:5], reader.errors[:5], reader.runs)
    assert reader.runs > 20 and writer.runs > 100, (reader.runs, writer.runs)
    assert max(counts) > 2000, "the reader never saw a newer version"
