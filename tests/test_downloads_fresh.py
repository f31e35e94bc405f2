"""Chunks fetched for a read are handed to it before they are in the data file: a write
that fails is fetched again (never a hole in the answer), and ``stop`` waits for a write
still running before a program may truncate the file."""

import contextlib
import errno
import os
import random
import threading
import time

import pytest
import trio

from syncfs import datafiles
from syncfs.chunking import chunk_bytes
from syncfs.downloads import Downloader, Partial
from syncfs.protocol.entries import Entry, Kind
from syncfs.protocol.messages import TableRow

pytestmark = pytest.mark.timeout(60)

DATA = random.Random(3).randbytes(4 * 1024 * 1024)  # five chunks
CHUNKS = chunk_bytes(DATA)


class FakeStore:
    def __init__(self, root):
        self.root = root

    def data_path(self, data_id):
        return self.root / str(data_id)

    def ensure_room(self, n):
        pass

    def chunk_locations(self, digest):
        return []

    @contextlib.contextmanager
    def transaction(self):
        yield

    def partial_put(self, *args):
        pass

    def partial_remove(self, *args):
        pass

    def index_chunks_at(self, *args):
        pass


class SlowSecondChunk:
    """Serves every chunk; the second takes 50 ms, so a read of chunks 0 and 1 waits."""

    def __init__(self):
        self.fetched = []

    async def fetch(self, digest, length, holders, avoid):
        i = [c.digest for c in CHUNKS].index(digest)
        self.fetched.append(i)
        await trio.sleep(0.05 if i == 1 else 0.001)
        start = sum(c.length for c in CHUNKS[:i])
        return DATA[start:start + length]


def setup(tmp_path, pool):
    with open(tmp_path / "1", "wb") as f:
        f.truncate(len(DATA))
    d = Downloader(FakeStore(tmp_path), pool)
    row = TableRow(Entry("f", Kind.FILE, size=len(DATA), chunks=tuple(CHUNKS), version={"a": 1}), 1, ("a",))
    p = d.partials[1] = Partial(1, row, set())
    return d, p


def test_a_fresh_chunk_whose_write_fails_is_fetched_again(tmp_path, monkeypatch):
    real = datafiles.write_at
    failed = []

    def write_once_failing(path, data, offset):
        if offset == 0 and not failed:
            failed.append(offset)
            raise OSError(errno.EIO, "injected")
        real(path, data, offset)

    monkeypatch.setattr(datafiles, "write_at", write_once_failing)
    pool = SlowSecondChunk()
    d, p = setup(tmp_path, pool)
    offset, size = CHUNKS[0].length - 10, 20  # the last bytes of chunk 0, the first of 1

    async def main():
        async with trio.open_nursery() as nursery:
            await nursery.start(d.run)
            await d.ensure(p, p.covering(offset, size), 10, for_read=True)
            fd = os.open(tmp_path / "1", os.O_RDONLY)
            try:
                assert p.read(fd, offset, size) == DATA[offset:offset + size]
            finally:
                os.close(fd)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert failed and pool.fetched.count(0) == 2


def test_stop_waits_for_a_running_write(tmp_path, monkeypatch):
    real = datafiles.write_at
    started, finished = threading.Event(), threading.Event()

    def slow_write(path, data, offset):
        started.set()
        time.sleep(0.2)
        real(path, data, offset)
        finished.set()

    monkeypatch.setattr(datafiles, "write_at", slow_write)
    d, p = setup(tmp_path, SlowSecondChunk())

    async def main():
        async with trio.open_nursery() as nursery:
            await nursery.start(d.run)
            await d.ensure(p, [0], 10, for_read=True)
            assert 0 in p.fresh and not finished.is_set()  # answered before it is written
            while not started.is_set():
                await trio.sleep(0.001)
            await d.stop(1)
            assert finished.is_set() and 1 not in d.partials and p.cancelled
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_stop_before_the_write_starts_skips_it(tmp_path):
    d, p = setup(tmp_path, SlowSecondChunk())

    async def main():
        async with trio.open_nursery() as nursery:
            await nursery.start(d.run)
            await d.ensure(p, [0], 10, for_read=True)
            await d.stop(1)  # the background write has not run yet: it never will
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert (tmp_path / "1").read_bytes() == bytes(len(DATA)) and not p.present
