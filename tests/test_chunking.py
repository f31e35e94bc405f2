"""Chunking is pure and pinned: every peer must cut the same bytes at the same points."""

import hashlib
import os
import random
import tempfile

from hypothesis import given, settings
from hypothesis import strategies as st

from syncfs.chunking import DEFAULT_PARAMS, chunk_bytes, chunk_fd, digest, offsets
from syncfs.protocol.messages import ChunkParams

SMALL = ChunkParams(4096, 16384, 65536)


def golden_input() -> bytes:
    return random.Random(20261124).randbytes(6 << 20)


def test_chunkpoints_unchanged():
    """If this fails, the chunker changed: peers on two versions would no longer agree."""
    chunks = chunk_bytes(golden_input())
    assert [(c.length, c.digest.hex()[:16]) for c in chunks] == [
        (1352386, "f086b0ab48447ba1"),
        (1398710, "4822096cde07362a"),
        (749290, "f884f1e08f7755bc"),
        (1793720, "d78bc6074fdb15d2"),
        (997350, "ab0cde7f60a2f72b"),
    ]


def test_small_parameters_unchanged():
    chunks = chunk_bytes(golden_input()[: 1 << 20], SMALL)
    assert len(chunks) == 48
    assert [c.length for c in chunks[:5]] == [36679, 11429, 29777, 30332, 10610]
    joined = hashlib.sha256(b"".join(c.digest for c in chunks)).hexdigest()
    assert joined == "9606fe710d8a148a3116b0d1d61b8fe4998f7237184eb7d288b043a19a85bcf0"


def test_streaming_from_a_file_matches_the_buffer():
    data = golden_input()
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.flush()
        assert chunk_fd(f.fileno()) == chunk_bytes(data)


def test_an_insert_near_the_start_changes_only_the_chunks_around_it():
    data = golden_input()
    before = {c.digest for c in chunk_bytes(data)}
    after = chunk_bytes(os.urandom(100) + data)
    changed = [c for c in after if c.digest not in before]
    assert sum(c.length for c in changed) < 2 * DEFAULT_PARAMS.max_size


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300_000))
def test_chunks_cover_the_input_within_bounds(data):
    chunks = chunk_bytes(data, SMALL)
    assert sum(c.length for c in chunks) == len(data)
    for c, off in zip(chunks, offsets(chunks), strict=True):
        assert c.digest == digest(data[off : off + c.length])
        assert c.length <= SMALL.max_size
    for c in chunks[:-1]:
        assert c.length >= SMALL.min_size
