"""Content-defined chunking (FastCDC) with blake3 digests: pure, and pinned by a golden test.

Every peer must cut the same bytes at the same points, so the parameters come from the
tracker and the algorithm never changes silently.
"""

import os
from collections.abc import Iterator

import blake3
from pyfastcdc import FastCDC

from .protocol.entries import Chunk
from .protocol.messages import ChunkParams

DEFAULT_PARAMS = ChunkParams(256 * 1024, 1024 * 1024, 4 * 1024 * 1024)


def digest(data: bytes | memoryview) -> bytes:
    return blake3.blake3(data).digest()


class _Reader:
    """A positioned reader over bytes [start, end) of a file descriptor (end None: to the
    end of the file), for cut_stream (which never seeks)."""

    def __init__(self, fd: int, start: int = 0, end: int | None = None) -> None:
        self.fd = fd
        self.pos = start
        self.end = end

    def readinto(self, buf: memoryview) -> int:
        if self.end is not None:
            buf = buf[:max(0, self.end - self.pos)]
            if not buf:
                return 0
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


def iter_chunks_fd(fd: int, params: ChunkParams, start: int = 0) -> Iterator:
    return _chunker(params).cut_stream(_Reader(fd, start))


def chunk_fd_from(fd: int, params: ChunkParams, start: int) -> list[Chunk]:
    """Cut the file behind ``fd`` from ``start``, a cut point of the whole file: the rest
    of what chunk_fd would give."""
    return [Chunk(digest(c.data), c.length) for c in iter_chunks_fd(fd, params, start)]


def final_chunks(fd: int, params: ChunkParams, start: int, end: int) -> list[Chunk]:
    """The chunks of bytes [start, end) behind ``fd``, ``start`` a cut point, that no
    bytes written after ``end`` can change: all but the last (which more bytes may
    lengthen). FastCDC finds each cut from the bytes since the previous one only."""
    # each chunk's data is a view of a buffer that the next read reuses: hash it at once
    return [Chunk(digest(c.data), c.length) for c in _chunker(params).cut_stream(_Reader(fd, start, end))][:-1]


def offsets(chunks: list[Chunk] | tuple[Chunk, ...]) -> list[int]:
    out, pos = [], 0
    for c in chunks:
        out.append(pos)
        pos += c.length
    return out
