"""Partial.read: a read of a stale file takes fetched chunks from memory while they are
still being written, and the others from the data file, byte for byte."""

import os
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from syncfs.chunking import chunk_bytes
from syncfs.downloads import Partial
from syncfs.protocol.entries import Entry, Kind
from syncfs.protocol.messages import TableRow

KiB = 1024
DATA = random.Random(3).randbytes(4 * 1024 * KiB)  # fixed: five chunks, always
CHUNKS = chunk_bytes(DATA)


def partial_over(tmp_path, fresh: set[int]) -> tuple[Partial, int]:
    """A partial whose chunks in ``fresh`` are in memory only, the rest in its data file."""
    row = TableRow(Entry("f", Kind.FILE, size=len(DATA), chunks=tuple(CHUNKS), version={"a": 1}), 1, ("a",))
    p = Partial(1, row, present=set(range(len(CHUNKS))) - fresh)
    path = tmp_path / "data"
    with open(path, "wb") as f:
        f.truncate(len(DATA))
        for i in p.present:
            f.seek(p.offsets[i])
            f.write(DATA[p.offsets[i]:p.offsets[i] + CHUNKS[i].length])
    for i in fresh:
        p.fresh[i] = DATA[p.offsets[i]:p.offsets[i] + CHUNKS[i].length]
    return p, os.open(path, os.O_RDONLY)


def test_there_are_several_chunks():
    assert len(CHUNKS) == 5


@settings(max_examples=60, deadline=None)
@given(fresh=st.sets(st.integers(0, len(CHUNKS) - 1)), offset=st.integers(0, len(DATA) + 10),
       size=st.integers(0, 2 * 1024 * KiB))
def test_read_mixes_memory_and_file(tmp_path_factory, fresh, offset, size):
    p, fd = partial_over(tmp_path_factory.mktemp("p"), fresh)
    try:
        assert all(p.readable(i) for i in range(len(CHUNKS)))
        assert p.read(fd, offset, size) == DATA[offset:offset + size]
    finally:
        os.close(fd)


def test_a_fresh_chunk_is_not_present(tmp_path):
    p, fd = partial_over(tmp_path, {1})
    os.close(fd)
    assert p.readable(1) and 1 not in p.present and not p.complete
