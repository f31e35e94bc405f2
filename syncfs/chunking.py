"""Content-defined chunking (FastCDC) with blake3 digests: pure, and pinned by a golden test.

Every peer must cut the same bytes at the same points, so the parameters come from the
tracker and the algorithm never changes silently.
"""

import os
from collections.abc import Iterator

import blake3
import pyfastcdc
from pyfastcdc import FastCDC

from .protocol.entries import Chunk
from .protocol.messages import ChunkParams

DEFAULT_PARAMS = ChunkParams(256 * 1024, 1024 * 1024, 4 * 1024 * 1024)


def digest(data: bytes | bytearray | memoryview) -> bytes:
    return blake3.blake3(data).digest()


class _Reader:
    """A positioned reader over a file descriptor, for cut_stream (which never seeks)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pos = 0

    def readinto(self, buf: memoryview) -> int:
        n = os.preadv(self.fd, [buf], self.pos)
        self.pos += n
        return n


def _chunker(params: ChunkParams) -> FastCDC:
    return FastCDC(params.avg_size, min_size=params.min_size, max_size=params.max_size)


def chunk_bytes(data: bytes, params: ChunkParams = DEFAULT_PARAMS) -> list[Chunk]:
    return [Chunk(digest(c.data), c.length) for c in _chunker(params).cut_buf(data)]


def chunk_fd(fd: int, params: ChunkParams = DEFAULT_PARAMS) -> list[Chunk]:
    """Cut the whole file behind ``fd``, streaming: memory stays at about one max chunk."""
    return [Chunk(digest(c.data), c.length) for c in iter_chunks_fd(fd, params)]


def iter_chunks_fd(fd: int, params: ChunkParams) -> Iterator[pyfastcdc.Chunk]:
    return _chunker(params).cut_stream(_Reader(fd))


def offsets(chunks: list[Chunk] | tuple[Chunk, ...]) -> list[int]:
    out, pos = [], 0
    for c in chunks:
        out.append(pos)
        pos += c.length
    return out
