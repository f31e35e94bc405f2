"""Cutting a file into chunks while a program writes it, so that its commit after close
has only the tail left to cut (sans-I/O: writes in, ranges to cut out).

Only for files written from empty (created, or opened with O_TRUNC): the final chunks
are known from the first byte. The kernel's writeback sends a sequential write as mostly
ordered requests; pieces that arrive ahead of the written prefix wait in ``_ahead``. A
write below what is already cut, or a truncate, gives up (the commit then cuts the whole
file, as without this).
"""

from __future__ import annotations

from .protocol.entries import Chunk

CUT_EVERY = 16 * 1024 * 1024  # bytes written past the cut before the next cut
MAX_AHEAD = 256  # written pieces beyond a gap kept track of; more gives up


class Precut:
    def __init__(self) -> None:
        self.chunks: list[Chunk] = []  # final chunks of [0, upto)
        self.upto = 0
        self.valid = True
        self.cutting: tuple[int, int] | None = None  # the range a cut is running on
        self._spoiled = False  # a write landed in the running cut's range
        self._end = 0  # [0, _end) is written
        self._ahead: dict[int, int] = {}  # start -> end of written pieces beyond _end

    def wrote(self, offset: int, length: int) -> None:
        if not self.valid or length <= 0:
            return
        if offset < self.upto:
            self.valid = False
            return
        if self.cutting is not None and offset < self.cutting[1]:
            self._spoiled = True
        end = offset + length
        if offset > self._end:
            if len(self._ahead) >= MAX_AHEAD:
                self.valid = False
            else:
                self._ahead[offset] = max(end, self._ahead.get(offset, end))
            return
        self._end = max(self._end, end)
        while self._ahead:
            joined = [s for s in self._ahead if s <= self._end]
            if not joined:
                break
            for s in joined:
                self._end = max(self._end, self._ahead.pop(s))

    def truncated(self) -> None:
        """The file's size was set (other than to 0, which starts a new Precut)."""
        self.valid = False

    def due(self) -> tuple[int, int] | None:
        """A range [start, end) to cut now (with chunking.final_chunks), or None."""
        if not self.valid or self.cutting is not None or self._end - self.upto < CUT_EVERY:
            return None
        self.cutting = (self.upto, self._end)
        self._spoiled = False
        return self.cutting

    def cut(self, chunks: list[Chunk] | None) -> None:
        """The final chunks of the range ``due`` gave (None: that cut failed)."""
        start, _ = self.cutting  # type: ignore[misc]
        self.cutting = None
        if chunks is None or not self.valid or self._spoiled or start != self.upto:
            return
        self.chunks += chunks
        self.upto += sum(c.length for c in chunks)

    def head(self) -> tuple[list[Chunk], int] | None:
        """For a commit: the chunks already cut and the offset where cutting goes on (a
        copy, for another thread), or None when the whole file must be cut."""
        return (list(self.chunks), self.upto) if self.valid else None
