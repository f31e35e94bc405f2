"""Background filling of stale files, and what follows a completed download.

One task (``run``) owns the schedule: it starts at most ``MAX_DOWNLOADS`` fills at a time,
each in its own task, and waits on the downloader's wake-up between passes (a new row, news of
holders, a finished fill, a retry time reached). Whether a failed fill is retried later or its
version dropped as lost is decided by ``reconcile.lost_verdict``. A second task takes the
downloader's completions: the version is announced (HAVE) and the front end told.
"""

import logging

import trio

from .claims import Claims
from .downloads import Downloader
from .errorlog import ErrorLog
from .errors import first_error
from .ignores import ShareIgnores
from .inodes import Inodes
from .notices import Notifier
from .p2p import ChunkUnavailable
from .partial import Partial
from .pinning import Pinning
from .reconcile import lost_verdict
from .remote import RemoteApply
from .store import Store

log = logging.getLogger(__name__)

MAX_DOWNLOADS = 4
SPACE_CHECK = 1.0  # seconds between looks at the disk's free space while files are kept


class FillScheduler:
    def __init__(self, store: Store, inodes: Inodes, downloader: Downloader, remote: RemoteApply, claims: Claims,
                 pinning: Pinning, ignores: ShareIgnores, notifier: Notifier, errors: ErrorLog,
                 completed: "trio.MemoryReceiveChannel[Partial]", *, on_demand: bool) -> None:
        self._store = store
        self._inodes = inodes
        self._downloader = downloader
        self._remote = remote
        self._claims = claims
        self._pinning = pinning
        self._ignores = ignores
        self._notifier = notifier
        self._errors = errors
        self._completed = completed
        self.on_demand = on_demand
        self.peer_id = store.peer_id
        self._space_checked = float("-inf")
        self.fills_held = False  # a front end that must look first (a watched directory)

    # -- pausing ---------------------------------------------------------------------------

    @property
    def paused(self) -> str:
        """'' when running; 'soft' (background transfers stop) or 'hard' (reads too)."""
        return str(self._store.get_meta("paused", ""))

    def set_paused(self, mode: str) -> None:
        self._store.set_meta("paused", mode)
        self._downloader.paused = bool(mode)
        self._downloader.wake.set()

    def hold_fills(self, held: bool) -> None:
        """Hold background downloads (not reads) while a front end finds out what it has."""
        self.fills_held = held
        self._downloader.wake.set()

    # -- running ---------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        self._downloader.paused = bool(self.paused)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._take_completions)
            task_status.started()
            await self._schedule(nursery)

    def wanted(self, p: Partial) -> bool:
        """Whether background filling fetches ``p``: always in a full mount; in an
        --on-demand one when it must be (changed here), is pinned, or lists this peer as a
        holder (the version of a rename made elsewhere, whose bytes this peer has under
        the old name: the others count on it)."""
        return (not self.on_demand or p.must_fill or self.peer_id in p.row.holders
                or self._pinning.pinned_by(p.path) is not None)

    async def _schedule(self, nursery: trio.Nursery) -> None:
        while True:
            wake = self._downloader.wake.next()
            now = trio.current_time()
            next_retry = float("inf")
            partials = list(self._downloader.partials.values())
            running = sum(p.fill.filling for p in partials)
            for p in partials:
                if p.fill.filling or p.cancelled or running >= MAX_DOWNLOADS or self.paused \
                        or self.fills_held or not self.wanted(p):
                    continue
                if not p.fill.due(now):
                    next_retry = min(next_retry, p.fill.retry_at)
                    continue
                p.fill.start()
                running += 1
                nursery.start_soon(self._fill, p)
            # old versions are kept while a download may still copy chunks from them: until
            # every waiting one has had its first try (which copies all local chunks)
            if not running and all(p.fill.attempted or not self.wanted(p) for p in partials):
                next_retry = min(next_retry, self._purge_trash(now))
            with trio.move_on_at(next_retry):
                await wake.wait()

    def _purge_trash(self, now: float) -> float:
        """Delete the data files no version uses, but those still open here and (while the
        disk has room) those kept for peers still fetching a replaced version, when that can
        delete something (``Inodes.purge_due``, or the disk is low); returns when to look
        again: while files are kept, the disk's free space is looked at once a second."""
        low = False
        if self._inodes.trash_grew() or now >= self._space_checked + SPACE_CHECK:
            self._space_checked = now
            low = self._store.low_on_space()
        if self._inodes.purge_due() <= now or low:
            keep = self._inodes.kept(now)  # what expired may go
            if low:
                keep = self._inodes.open_data()
            trashed = self._store.trash_ids()
            if trashed:
                with self._store.transaction():
                    self._store.trash_purge(keep)
                if any(d not in keep for d in trashed):
                    self._downloader.retry_all()  # space came back: downloads that ran out of it retry
        again = self._inodes.purge_due()
        return min(again, now + SPACE_CHECK) if self._inodes.kept_until else again

    async def _fill(self, p: Partial) -> None:
        try:
            await self._downloader.fill(p)
        except ChunkUnavailable as exc:
            drop, p.fill.lost_since = lost_verdict(
                every_holder_missing=exc.lost, has_holders=bool(p.row.holders), repair=p.repair,
                lost_since=p.fill.lost_since, now=trio.current_time())
            p.fill.failed(exc.why, trio.current_time())
            if drop:
                self._remote.drop_lost_version(p)
            else:
                log.info("download of %s waits: %s", p.path, exc.why)
        except Exception as exc:  # noqa: BLE001 - a fill must never take the mount down
            cause = first_error(exc) if isinstance(exc, BaseExceptionGroup) else exc
            p.fill.crashed(trio.current_time())
            if isinstance(cause, OSError):
                self._errors.note(f"download of {p.path} failed: {cause}; retrying")
            else:
                log.error("download of %s failed: %r; retrying", p.path, cause)
        finally:
            if p.fill.filling:  # it returned (complete, or paused), or was cancelled
                p.fill.ended()
            self._downloader.wake.set()

    async def _take_completions(self) -> None:
        async for partial in self._completed:
            self._on_complete(partial)

    def _on_complete(self, partial: Partial) -> None:
        node = self._store.node_with_data(partial.data_id)
        if node is not None:
            if partial.repair:
                self._notifier.node_changed(node.ino, node.path)  # pages of the damaged bytes may be cached
            # renamed or chmodded here meanwhile: announce what the file is now
            self._claims.have(node.path, node.version)
            self._notifier.completed(node.ino, node.path)
            self._ignores.changed(node.path)
        self._pinning.grew()

