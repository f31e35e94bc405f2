"""Filling data files of remote versions with verified chunks, from local copies or peers.

A remote file version becomes visible at once (a *stale* file: final size and mtime,
content not yet local); its data file is sparse and a ``Partial`` records which chunks are
present and verified. Reads wait for just the chunks they cover; background filling does
the rest. Presence is recorded only after the bytes are on disk (fdatasync), so a restart
resumes from every verified chunk and never returns bytes that were not verified.
"""

import bisect
import contextlib
import dataclasses
import logging
import sqlite3
from collections.abc import Iterable

import trio

from . import datafiles
from .local_chunks import LocalChunks
from .p2p import BadChunk, ChunkUnavailable, ChunkWithheld, PeerPool
from .partial import Partial
from .protocol.messages import TableRow
from .store import SavedPartial, Store
from .wakeup import Wakeup

log = logging.getLogger(__name__)

SYNC_EVERY = 16  # chunks written between fdatasync + presence records …
SYNC_SECONDS = 0.5  # … or seconds, whichever comes first
MAX_UNSYNCED = 4 * SYNC_EVERY  # fetched but not yet recorded: beyond this, fetching waits
CHUNKS_IN_FLIGHT_PER_FILE = 8
READ_AHEAD = 2


class Downloader:
    """Owns every Partial of the store; the other parts ask it to fill, read or drop them.

    It reports on channels made by the composition root: each version completed here
    (``completed``), and the digests of chunks of partial versions as they become servable
    to the swarm (``indexed``). None drops that kind of report (tests of the downloader
    alone). Chunks already on this machine come from ``local``."""

    def __init__(self, store: Store, pool: PeerPool, *,
                 completed: "trio.MemorySendChannel[Partial] | None" = None,
                 local: LocalChunks | None = None,
                 indexed: "trio.MemorySendChannel[list[bytes]] | None" = None,
                 max_rate: float = 0.0) -> None:
        self.store = store
        self.pool = pool
        self._completed = completed
        self._local = local if local is not None else LocalChunks(store)
        self._indexed = indexed
        self.partials: dict[int, Partial] = {}
        self.superseded: dict[int, Partial] = {}  # replaced, but still open here (``supersede``)
        self._limit = trio.CapacityLimiter(16)
        self.bytes_local = 0
        self.wake = Wakeup()
        self.paused = False  # background filling stops between chunks
        self.max_rate = max_rate  # bytes per second from the network; 0: no limit
        self._rate_free_at = 0.0
        # where presence records and read-ahead run off the fetching task's path
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def load(self) -> None:
        for saved in self.store.partials():
            repair = saved.row.seq == 0  # made here to mend a damaged local copy (see Engine)
            self.partials[saved.data_id] = Partial(saved.data_id, saved.row, set(saved.present),
                                                   repair=repair, must_fill=repair)

    def add(self, data_id: int, row: TableRow) -> Partial:
        p = Partial(data_id, row, set())
        self.partials[data_id] = p
        self.store.partial_put(SavedPartial(data_id, row))
        self.wake.set()
        return p

    def drop(self, data_id: int) -> None:
        p = self.partials.pop(data_id, None) or self.superseded.pop(data_id, None)
        if p is not None:
            p.fill.cancel()
            self.store.partial_remove(data_id)

    def supersede(self, data_id: int) -> None:
        """A newer version replaced ``data_id``'s, which programs here still have open: it
        stays readable for them (its chunks fetched on demand, by digest, from its holders),
        is no longer filled in the background or recorded, and goes when they close it."""
        p = self.partials.pop(data_id, None)
        if p is not None:
            self.superseded[data_id] = p
            self.store.partial_remove(data_id)

    def damaged(self, data_id: int, repair: TableRow, offset: int, length: int, digest: bytes) -> bool:
        """A chunk of data file ``data_id`` failed its check: fetch it again. Joins the
        download under way of that file, if any (it counted the chunk present), else starts
        a repair of the complete version ``repair`` (seq 0). False if no chunk present
        there is that one."""
        p = self.partials.get(data_id) or Partial(
            data_id, repair, set(range(len(repair.entry.chunks))), repair=True, must_fill=True)
        chunks = p.row.entry.chunks
        bad = {i for i in p.present
               if p.offsets[i] == offset and chunks[i].length == length and chunks[i].digest == digest}
        if not bad:
            return False
        p.drop_present(bad)
        p.fill.news()
        self.partials[data_id] = p
        self.store.partial_put(SavedPartial(data_id, p.row, tuple(p.durable())))
        self.wake.set()
        return True

    def update_holders(self, row: TableRow, data_id: int | None = None) -> None:
        """News about who holds a version being fetched: for the partials of that version
        at ``row``'s path, and for the one of data file ``data_id``, the file this peer
        has there (renamed here from a stale file, its row still named the old path's
        holders, so it never asked those who fetched it since). A repair keeps seq 0,
        which marks it as one across restarts."""
        for p in self.partials.values():
            if (p.data_id == data_id and p.row.entry.chunks == row.entry.chunks) or (
                    p.path == row.entry.path and p.row.entry.version == row.entry.version):
                p.row = dataclasses.replace(row, seq=0) if p.repair else row
                p.fill.news()
        self.wake.set()

    def retry_all(self) -> None:
        for p in self.partials.values():
            p.fill.news()
        self.wake.set()

    # -- reading and filling -------------------------------------------------------------

    async def ensure(self, p: Partial, indices: Iterable[int], timeout: float, *, for_read: bool = False) -> None:
        """Wait until the chunks ``indices`` of ``p`` are present, fetching them now;
        ``for_read``: or fresh (``Partial.read`` then gives them before they are written).

        Raises ChunkUnavailable when they cannot be had within ``timeout`` seconds, or ``p``
        was replaced meanwhile: a return means every one of them is there.
        """
        wanted = [i for i in indices if not p.has(i, for_read)]
        with trio.move_on_after(timeout):
            # again until all are there at once: a fresh chunk whose write failed while
            # another chunk of the same read was on its way is neither fresh nor present
            while wanted and not p.cancelled and not p.unobtainable:
                if len(wanted) == 1:
                    await self._ensure_patiently(p, wanted[0], for_read)
                else:
                    async with trio.open_nursery() as nursery:
                        for i in wanted:
                            nursery.start_soon(self._ensure_patiently, p, i, for_read)
                wanted = [i for i in wanted if not p.has(i, for_read)]
        missing = [i for i in wanted if not p.has(i, for_read)]
        if missing and p.unobtainable:
            raise ChunkUnavailable(p.row.entry.chunks[missing[0]].digest,
                                   f"{p.path}: replaced, and no holder has the version opened any more")
        if missing and p.cancelled:
            raise ChunkUnavailable(p.row.entry.chunks[missing[0]].digest, f"{p.path}: replaced by a newer version")
        if missing:
            raise ChunkUnavailable(p.row.entry.chunks[missing[0]].digest,
                                   f"{p.path}: not fetched within {timeout:g}s ({p.fill.last_error or 'no holder online'})")

    async def _ensure_patiently(self, p: Partial, i: int, for_read: bool = False) -> None:
        delay = 0.05
        while not p.has(i, for_read) and not p.cancelled and not p.unobtainable:
            try:
                await self._ensure_one(p, i, for_read)
            except ChunkUnavailable as exc:
                p.fill.last_error = exc.why
                if exc.lost and p.data_id in self.superseded:
                    # replaced, and every holder has overwritten it too: waiting cannot help
                    p.unobtainable = True
                    return
                await trio.sleep(delay)
                delay = min(delay * 2, 1.0)

    def fill_order(self, p: Partial) -> list[int]:
        """The missing chunks of ``p`` in the order to fetch them: each peer fetching the
        version starts at its own share of the file (its rank among the online peers that
        are not holders), so that the pieces it gets first are ones the others get last,
        and they can fetch those from each other (``PeerPool.fetch``) instead of all from
        the holders."""
        missing = p.missing()
        fetchers = sorted(({self.pool.peer_id} | set(self.pool.peers)) - set(p.row.holders))
        if len(fetchers) < 2 or not missing or self.pool.peer_id not in fetchers:
            return missing
        n = len(p.row.entry.chunks)
        start = fetchers.index(self.pool.peer_id) * n // len(fetchers)
        cut = bisect.bisect_left(missing, start)
        return missing[cut:] + missing[:cut]

    async def fill(self, p: Partial) -> None:
        """Fetch every missing chunk of ``p`` (background work; raises ChunkUnavailable)."""
        missing = self.fill_order(p)
        limit = trio.Semaphore(CHUNKS_IN_FLIGHT_PER_FILE)
        errors: list[ChunkUnavailable] = []

        async def one(i: int) -> None:
            async with limit:
                if p.cancelled or self.paused:
                    return
                try:
                    await self._ensure_one(p, i)
                except ChunkUnavailable as exc:
                    errors.append(exc)

        async with trio.open_nursery() as nursery:
            for i in missing:
                nursery.start_soon(one, i)
        if errors:
            raise errors[0]
        await self.settle(p)

    def read_ahead(self, p: Partial, after: int) -> None:
        if self._nursery is None:
            return
        for i in range(after + 1, min(after + 1 + READ_AHEAD, len(p.row.entry.chunks))):
            if i not in p.present and i not in p.inflight:
                self._nursery.start_soon(self._ensure_quietly, p, i)

    async def _ensure_quietly(self, p: Partial, i: int) -> None:
        try:
            await self._ensure_one(p, i)
        except ChunkUnavailable:
            pass
        except OSError as exc:  # read-ahead is best effort; the read itself reports errors
            log.info("read-ahead of %s stopped: %s", p.path, exc)

    async def _ensure_one(self, p: Partial, i: int, for_read: bool = False) -> None:
        while not p.has(i, for_read):
            if p.cancelled:
                raise ChunkUnavailable(p.row.entry.chunks[i].digest, f"{p.path}: replaced by a newer version")
            busy = p.inflight.get(i)
            if busy is None:
                busy = p.writing.get(i)
            if busy is not None:
                await busy.wait()
                continue
            done = p.inflight[i] = trio.Event()
            try:
                await self._fetch_into(p, i, for_read)
            finally:
                del p.inflight[i]
                done.set()

    async def _fetch_into(self, p: Partial, i: int, for_read: bool = False) -> None:
        chunk = p.row.entry.chunks[i]
        async with self._limit:
            data = await self._local.read(chunk.digest, chunk.length)
            if data is not None:
                self.bytes_local += len(data)
            else:
                avoid: set[str] = set()
                while True:
                    try:
                        data = await self.pool.fetch(chunk.digest, chunk.length, p.row.holders, avoid)
                        break
                    except BadChunk:
                        continue
                await self._throttle(len(data))
            if p.cancelled:
                return
            self.store.ensure_room(len(data))  # the sparse file grows by at most this
            if for_read and self._nursery is not None:
                # the read need not wait for the write (about 1 ms for 1 MiB): it gets
                # these verified bytes from memory, and the chunk is present once written
                p.fresh[i] = data
                p.writing[i] = trio.Event()
                self._nursery.start_soon(self._write_fresh, p, i)
                return
            await self._write_chunk(p, i, data)
        await self._written(p, i)

    async def _write_chunk(self, p: Partial, i: int, data: bytes | bytearray) -> None:
        """Write chunk ``i`` into ``p``'s data file (counted: ``stop`` waits for it)."""
        p.writes_running += 1
        try:
            await trio.to_thread.run_sync(datafiles.write_at, self.store.data_path(p.data_id), data, p.offsets[i])
        finally:
            p.writes_running -= 1
            if not p.writes_running:
                idle, p.writes_idle = p.writes_idle, trio.Event()
                idle.set()

    async def _write_fresh(self, p: Partial, i: int) -> None:
        try:
            if p.cancelled:
                return
            await self._write_chunk(p, i, p.fresh[i])
            await self._written(p, i)
        except Exception as exc:  # noqa: BLE001 - in the engine's nursery: never end the mount
            if not p.cancelled:
                log.warning("could not keep a fetched chunk of %s (it is fetched again when needed): %s",
                            p.path, exc)
        finally:
            del p.fresh[i]  # after present.add: a reader always finds it in one of them
            p.writing.pop(i).set()

    async def stop(self, data_id: int | None) -> None:
        """Drop ``data_id``'s partial, once no chunk write into its file is still running
        (so that none lands on the file after a program truncated or rewrote it)."""
        p = self.partials.get(data_id) if data_id is not None else None
        if p is None:
            return
        p.fill.cancel()  # no write starts from now on
        while p.writing or p.writes_running:
            if p.writing:
                await next(iter(p.writing.values())).wait()
            else:
                await p.writes_idle.wait()
        if self.partials.get(p.data_id) is p:
            self.drop(p.data_id)

    async def _written(self, p: Partial, i: int) -> None:
        """Chunk ``i`` is in the data file: present now, recorded soon."""
        p.add_present(i)
        p.unsynced.append(i)
        if p.complete:
            await self.settle(p)  # whoever fetched the last chunk (fill, read, read-ahead)
        elif len(p.unsynced) >= SYNC_EVERY or trio.current_time() - p.recorded_at > SYNC_SECONDS:
            if self._nursery is None or len(p.unsynced) >= MAX_UNSYNCED:
                await self._record(p)  # back-pressure: a crash loses a bounded amount
            elif not p.record_soon:
                # the bytes are in the data file, so a read can use them now; making them
                # durable (fdatasync) and saying so need not hold up that read
                p.record_soon = True
                self._nursery.start_soon(self._record_quietly, p)
        elif self._nursery is not None and not p.record_soon:
            # recorded (and so served to others) within SYNC_SECONDS even if no further
            # chunk arrives, as after an on-demand read
            p.record_soon = True
            self._nursery.start_soon(self._record_quietly, p, p.recorded_at + SYNC_SECONDS)


    async def _throttle(self, n: int) -> None:
        """Hold the caller so that network bytes average at most ``max_rate`` per second."""
        if self.max_rate <= 0:
            return
        now = trio.current_time()
        self._rate_free_at = max(self._rate_free_at, now) + n / self.max_rate
        await trio.sleep_until(self._rate_free_at)

    async def _record(self, p: Partial) -> None:
        """Make written chunks durable, then say so: the order that makes resume safe.

        Serialized per partial, so that settling waits for a record still in flight. A
        batch that could not be recorded stays unsynced for the next record.
        """
        async with p.record_lock:
            p.record_soon = False
            batch, p.unsynced = p.unsynced, []
            p.recorded_at = trio.current_time()
            if not batch or p.cancelled:
                return
            p.syncing = batch
            try:
                await trio.to_thread.run_sync(datafiles.datasync, self.store.data_path(p.data_id))
                p.syncing = []
                if p.cancelled:
                    return
                entry = p.row.entry
                batch = [i for i in batch if i in p.present]  # not one found damaged meanwhile
                with self.store.transaction():
                    if p.data_id in self.partials:
                        # not those written meanwhile, which the next record covers
                        self.store.partial_put(SavedPartial(p.data_id, p.row, tuple(p.durable())))
                    self.store.index_chunks_at(p.data_id, [(entry.chunks[i], p.offsets[i]) for i in batch])
            except BaseException:
                p.syncing = []
                p.unsynced[:0] = [i for i in batch if i in p.present]
                raise
            if not p.complete and self._indexed is not None:
                with contextlib.suppress(trio.WouldBlock, trio.BrokenResourceError):
                    # a hint to the swarm: when the server falls behind, peers ask anyway
                    self._indexed.send_nowait([entry.chunks[i].digest for i in batch])

    async def _record_quietly(self, p: Partial, at: float = 0.0) -> None:
        """_record in the background (from time ``at``): a failure is logged, and the next
        record retries."""
        try:
            await trio.sleep_until(at)
            await self._record(p)
        except (OSError, sqlite3.Error) as exc:
            if not p.cancelled:
                log.warning("could not record the fetched chunks of %s yet: %s", p.path, exc)

    async def flush(self) -> None:
        """Record every fetched chunk not yet recorded (before an unmount, so that a restart
        fetches none of them again)."""
        for p in list(self.partials.values()):
            if p.unsynced and not p.cancelled:
                try:
                    await self._record(p)
                except (OSError, sqlite3.Error) as exc:
                    log.warning("could not record the fetched chunks of %s: %s", p.path, exc)

    async def settle(self, p: Partial) -> None:
        await self._record(p)
        if p.complete and not p.cancelled and p.data_id in self.partials:
            del self.partials[p.data_id]
            self.store.partial_remove(p.data_id)
            log.debug("completed %s", p.path)
            if self._completed is not None:
                await self._completed.send(p)

    async def complete(self, p: Partial, timeout: float) -> None:
        await self.ensure(p, range(len(p.row.entry.chunks)), timeout)
        await self.settle(p)

    async def serve_chunk(self, want: bytes) -> bytes | bytearray | None:
        """A chunk for another peer; None answers MISSING, which peers may take as proof
        that this peer no longer has the version. A chunk this peer is mending in a copy
        it still holds is not that: the link is closed instead, and the asker goes
        elsewhere or waits."""
        data = await self._local.read(want)
        if data is None and any(
            p.repair and any(p.row.entry.chunks[i].digest == want for i in p.missing())
            for p in self.partials.values()
        ):
            raise ChunkWithheld(want, "this copy of the chunk is being repaired")
        return data
