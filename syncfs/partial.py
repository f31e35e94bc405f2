"""The fill state of one stale version: which of its chunks are present, on their way,
fresh in memory or being made durable, and where its background fill stands (``fill``).

``data_id`` and ``repair`` are fixed when the version starts to be fetched; ``row`` changes
with news of its holders; the chunk sets change as chunks arrive (only the downloader writes
them, from the one event loop); ``fill`` changes only through its transitions.
"""

import bisect
import dataclasses
import os

import trio

from . import chunking
from .fillstate import FillMachine
from .protocol.messages import TableRow


@dataclasses.dataclass
class Partial:
    data_id: int
    row: TableRow
    present: set[int]
    offsets: list[int] = dataclasses.field(default_factory=list)
    inflight: dict[int, trio.Event] = dataclasses.field(default_factory=dict)
    # verified chunks fetched for a read, given to it before they are in the data file;
    # each is in ``writing`` (set once written and present, or failed) until then
    fresh: dict[int, bytes | bytearray] = dataclasses.field(default_factory=dict)
    writing: dict[int, trio.Event] = dataclasses.field(default_factory=dict)
    # chunk writes into the data file running in worker threads, and their end
    writes_running: int = 0
    writes_idle: trio.Event = dataclasses.field(default_factory=trio.Event)
    unsynced: list[int] = dataclasses.field(default_factory=list)
    syncing: list[int] = dataclasses.field(default_factory=list)  # the batch a record is making durable
    bytes_present: int = 0
    record_lock: trio.Lock = dataclasses.field(default_factory=trio.Lock)
    recorded_at: float = 0.0
    record_soon: bool = False  # a background _record is scheduled
    must_fill: bool = False  # fill even in --on-demand mode (renamed or changed here)
    unobtainable: bool = False  # superseded, and no holder has its missing chunks any more
    repair: bool = False  # a complete local copy found corrupt: refetch, never drop
    fill: FillMachine = dataclasses.field(default_factory=FillMachine)

    def __post_init__(self) -> None:
        self.offsets = chunking.offsets(self.row.entry.chunks)
        self.bytes_present = sum(self.row.entry.chunks[i].length for i in self.present)

    def add_present(self, i: int) -> None:
        if i not in self.present:
            self.present.add(i)
            self.bytes_present += self.row.entry.chunks[i].length

    def drop_present(self, indices: set[int]) -> None:
        gone = indices & self.present
        self.present -= gone
        self.bytes_present -= sum(self.row.entry.chunks[i].length for i in gone)
        self.unsynced = [i for i in self.unsynced if i not in gone]

    def durable(self) -> list[int]:
        """The chunks present whose bytes an fdatasync has covered: what may be recorded."""
        return sorted(i for i in self.present if i not in self.unsynced and i not in self.syncing)

    @property
    def cancelled(self) -> bool:
        """Replaced, deleted or truncated: no chunk is written into its file any more."""
        return self.fill.cancelled

    @property
    def downloading(self) -> bool:
        """Bytes are on their way: a background fill runs, or a read waits for chunks."""
        return self.fill.filling or bool(self.inflight)

    @property
    def path(self) -> str:
        return self.row.entry.path

    @property
    def complete(self) -> bool:
        return len(self.present) == len(self.row.entry.chunks)

    def missing(self) -> list[int]:
        return [i for i in range(len(self.row.entry.chunks)) if i not in self.present]

    def readable(self, i: int) -> bool:
        """Chunk ``i`` can be read: present in the data file, or fresh."""
        return i in self.present or i in self.fresh

    def has(self, i: int, for_read: bool) -> bool:
        """Chunk ``i`` is as far as a fetch must take it: readable for a read, else present."""
        return self.readable(i) if for_read else i in self.present

    def read(self, fd: int, offset: int, size: int) -> bytes:
        """Bytes [offset, offset+size) of chunks that are all readable: fresh ones from
        memory, the others from the data file behind ``fd``."""
        if not self.fresh:
            return os.pread(fd, size, offset)
        end = min(offset + size, self.row.entry.size)
        out = bytearray()
        for i in self.covering(offset, size):
            start = self.offsets[i]
            lo, hi = max(offset, start), min(end, start + self.row.entry.chunks[i].length)
            data = self.fresh.get(i)
            out += data[lo - start:hi - start] if data is not None else os.pread(fd, hi - lo, lo)
        return bytes(out)

    def covering(self, offset: int, size: int) -> range:
        """Indices of the chunks that hold bytes [offset, offset+size)."""
        chunks = self.row.entry.chunks
        if not chunks or size <= 0 or offset >= self.row.entry.size:
            return range(0)
        first = bisect.bisect_right(self.offsets, offset) - 1
        last = bisect.bisect_right(self.offsets, min(offset + size, self.row.entry.size) - 1) - 1
        return range(max(first, 0), last + 1)
