"""Chunks cut while a file is written from empty are the chunks of the whole file: a
commit that cuts only the tail after them publishes what a full cut would."""

import random
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncfs import chunking
from syncfs.precut import CUT_EVERY, MAX_AHEAD, Precut
from syncfs.protocol.entries import Chunk
from syncfs.protocol.messages import ChunkParams

SMALL = ChunkParams(4096, 16384, 65536)


DATA = random.Random(9).randbytes(1 << 20)


@pytest.fixture(scope="module")
def fd():
    with tempfile.TemporaryFile() as f:
        f.write(DATA)
        f.flush()
        yield f.fileno()


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(1, (1 << 20) - 1), max_size=8))
def test_final_chunks_then_the_tail_equal_a_whole_cut(fd, cuts):
    head, upto = [], 0
    for end in sorted(cuts):
        if end <= upto:
            continue
        got = chunking.final_chunks(fd, SMALL, upto, end)
        head += got
        upto += sum(c.length for c in got)
        assert upto <= end
    assert head + chunking.chunk_fd_from(fd, SMALL, upto) == chunking.chunk_bytes(DATA, SMALL)


def fake_chunks(n: int, length: int) -> list[Chunk]:
    return [Chunk(bytes([i]) * 32, length) for i in range(n)]


def test_ordered_writes_make_a_cut_due_and_its_chunks_count():
    p = Precut()
    for off in range(0, CUT_EVERY, 1 << 20):
        assert p.due() is None
        p.wrote(off, 1 << 20)
    assert p.due() == (0, CUT_EVERY)
    assert p.due() is None  # one cut at a time
    p.cut(fake_chunks(3, 1 << 20))
    assert p.head() == (fake_chunks(3, 1 << 20), 3 << 20)


def test_pieces_ahead_of_a_gap_join_when_it_is_filled():
    p = Precut()
    half = CUT_EVERY // 2
    p.wrote(half, half)  # the second half first
    assert p.due() is None
    p.wrote(0, half)
    assert p.due() == (0, CUT_EVERY)


def test_a_write_below_the_cut_or_a_truncate_gives_up():
    p = Precut()
    p.wrote(0, CUT_EVERY)
    p.due()
    p.cut(fake_chunks(2, 4096))
    p.wrote(100, 10)  # a program went back to rewrite a header
    assert p.head() is None
    q = Precut()
    q.wrote(0, 10)
    q.truncated()
    assert q.head() is None


def test_a_write_into_a_running_cut_discards_that_cut():
    p = Precut()
    p.wrote(0, CUT_EVERY)
    p.due()
    p.wrote(5, 1)  # rewritten while the cut read it
    p.cut(fake_chunks(2, 4096))
    assert p.head() == ([], 0)  # still valid: the next cut starts again at 0
    assert p.due() == (0, CUT_EVERY)


def test_a_failed_cut_changes_nothing():
    p = Precut()
    p.wrote(0, CUT_EVERY)
    p.due()
    p.cut(None)
    assert p.head() == ([], 0) and p.due() == (0, CUT_EVERY)


def test_too_many_pieces_beyond_a_gap_give_up():
    p = Precut()
    for i in range(MAX_AHEAD + 1):
        p.wrote(4096 * (2 * i + 1), 4096)  # every other page: never contiguous
    assert p.head() is None
