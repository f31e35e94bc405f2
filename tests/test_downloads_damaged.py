"""A local chunk that fails its check is fetched again: it starts a repair of a complete
file, or joins the download or repair already under way (a second damaged chunk)."""

import contextlib
import random
import time

import trio

from syncfs import datafiles
from syncfs.chunking import chunk_bytes, offsets
from syncfs.downloads import Downloader, Partial
from syncfs.protocol.entries import Entry, Kind
from syncfs.protocol.messages import TableRow

DATA = random.Random(5).randbytes(4 * 1024 * 1024)
CHUNKS = chunk_bytes(DATA)
OFFSETS = offsets(CHUNKS)
ROW = TableRow(Entry("f", Kind.FILE, size=len(DATA), chunks=tuple(CHUNKS), version={"a": 1}), 0, ("b",))


class RecordingStore:
    def __init__(self):
        self.recorded = {}

    def partial_put(self, saved):
        self.recorded[saved.data_id] = list(saved.present)


def damage(d, i):
    return d.damaged(1, ROW, OFFSETS[i], CHUNKS[i].length, CHUNKS[i].digest)


def test_a_damaged_chunk_of_a_complete_file_starts_a_repair_of_just_it():
    store = RecordingStore()
    d = Downloader(store, pool=None)
    assert len(CHUNKS) >= 3
    assert damage(d, 1)
    p = d.partials[1]
    assert p.repair and p.must_fill and p.missing() == [1]
    assert store.recorded[1] == [i for i in range(len(CHUNKS)) if i != 1]


def test_a_second_damaged_chunk_joins_the_repair_under_way():
    store = RecordingStore()
    d = Downloader(store, pool=None)
    assert damage(d, 1)
    p = d.partials[1]
    p.fill.start()
    p.fill.failed("no holder online", now=9.5)  # waiting out a backoff, until 10.0
    assert p.fill.retry_at == 10.0
    assert damage(d, 2)
    assert d.partials[1] is p and p.missing() == [1, 2] and p.fill.retry_at == 0.0
    assert 2 not in store.recorded[1]


def test_a_chunk_that_is_not_present_there_changes_nothing():
    store = RecordingStore()
    d = Downloader(store, pool=None)
    assert damage(d, 1)
    assert not damage(d, 1)  # already being fetched again
    other = CHUNKS[0]
    assert not d.damaged(1, ROW, OFFSETS[1], other.length, other.digest)  # not the chunk there
    assert d.partials[1].missing() == [1]


class SlowSyncStore(RecordingStore):
    """Records like RecordingStore; its data files take 0.2 s to fdatasync."""

    def data_path(self, data_id):
        return "/dev/null"

    @contextlib.contextmanager
    def transaction(self):
        yield

    def index_chunks_at(self, *args):
        pass


def test_damage_found_while_chunks_are_synced_records_only_durable_ones(monkeypatch):
    """A chunk whose fdatasync has not returned is not on disk yet: a crash may lose it,
    so no record may list it as present."""
    monkeypatch.setattr(datafiles, "datasync", lambda path: time.sleep(0.2))
    store = SlowSyncStore()
    d = Downloader(store, pool=None)
    p = d.partials[1] = Partial(1, ROW, {0, 1})
    p.add_present(2)
    p.unsynced.append(2)  # written, not yet durable

    async def main():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(d.flush)  # records what was written: the one partial
            await trio.sleep(0.05)  # the record is waiting for fdatasync
            assert damage(d, 1)
            assert store.recorded[1] == [0]  # not chunk 2
        assert store.recorded[1] == [0, 2]  # recorded once durable; chunk 1 is fetched again

    trio.run(main)
    assert p.missing() == [1] + list(range(3, len(CHUNKS)))
    assert p.bytes_present == CHUNKS[0].length + CHUNKS[2].length
