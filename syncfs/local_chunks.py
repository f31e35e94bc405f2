"""Chunks this machine already has: read from any local data file that holds them, and
verified. A chunk that fails its check (or cannot be read) is reported on the ``damaged``
channel, for the repairer (``repair.py``); the reader goes on to the next copy."""

import dataclasses
import errno

import trio

from . import chunking, datafiles
from .store import Store


@dataclasses.dataclass(frozen=True)
class Damage:
    """A chunk of a local data file failed its check (or could not be read)."""

    data_id: int
    offset: int
    length: int
    digest: bytes
    why: str


class LocalChunks:
    def __init__(self, store: Store, damaged: "trio.MemorySendChannel[Damage] | None" = None) -> None:
        self._store = store
        self._damaged = damaged

    async def read(self, want: bytes, length: int | None = None) -> bytes | bytearray | None:
        """The bytes of chunk ``want`` from any local data file, verified; None if absent."""
        for data_id, offset, n in self._store.chunk_locations(want):
            if length is not None and n != length:
                continue
            try:
                path = self._store.data_path(data_id)
                data: bytes | bytearray | None = datafiles.read_cached(path, offset, n)
                if data is not None:
                    # in the page cache: checked here, without a worker thread's round trip
                    # (most of an on-demand read's wait on the holder's side)
                    data = data if chunking.digest(data) == want else None
                else:
                    data = await trio.to_thread.run_sync(datafiles.read_verified, path, offset, n, want)
            except OSError as exc:
                data = None
                if exc.errno != errno.ENOENT:  # gone is normal (deleted meanwhile); unreadable is not
                    await self._report_damage(Damage(data_id, offset, n, want, f"unreadable: {exc}"))
            else:
                if data is None:
                    await self._report_damage(Damage(data_id, offset, n, want, "its digest does not match"))
            if data is not None:
                return data
        return None

    async def _report_damage(self, damage: Damage) -> None:
        if self._damaged is not None:
            await self._damaged.send(damage)
