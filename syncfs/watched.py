"""The watched-directory front end: an ordinary directory kept in the share, for hosts
without FUSE (``syncfs sync DIR``).

watchdog reports inotify events from its own thread; they come back to the trio loop
through the trio token and only mark paths as pending. One task reconciles pending paths
one at a time: ``mirror.decide`` compares the directory, the share's node and what the two
last agreed on (``Sides``), and the front end then commits the directory's state to the
engine (``Pusher``, push) or writes the share's state into the directory (``Puller``,
pull). Nothing is polled: the only full scan is the one at start-up, which finds what
changed while the process was stopped.

- A file is pushed once it is quiet: CLOSED_QUIET after it was closed, or SETTLE after
  its last write if it stays open. It is copied into the store and chunked there; if it changed
  while being copied, it is tried again later, so no half-written file is sent.
- Remote versions are written to a temporary file in the same directory, given their mode
  and mtime, flushed, and renamed over the path, so no reader sees half a file. Just
  before the rename the path is checked again: a local edit made meanwhile is pushed
  instead (and becomes a conflict copy if it is concurrent with the remote one).

The parts: this module keeps the queue of pending paths, its worker and the dispatch of
each decision; ``watched_sides`` what each side holds at a path; ``watched_push`` and
``watched_pull`` the two directions; ``watched_disk`` the plain file-system steps and the
watchdog glue.
"""

import dataclasses
import logging
import os
from pathlib import Path

import trio
from watchdog.observers import Observer

from .engine import Engine
from .errors import FsError
from .ignores import tree_paths
from .mirror import Action, decide
from .notices import Notice
from .protocol.entries import Kind
from .protocol.errors import BadPath
from .protocol.paths import validate_path
from .watched_disk import TEMP_PREFIX, Events, OverflowWatch, drop_stop_race, holdable_target, walk
from .watched_pull import DirChanged, Puller
from .watched_push import Pusher
from .watched_sides import Sides

log = logging.getLogger(__name__)

QUIET = 0.1  # seconds after an event before a path is reconciled (more may follow: a rename, a chmod)
CLOSED_QUIET = 0.02  # ... after a close: the file is whole; a later utime (cp -p) is pushed too
SETTLE = 1.0  # seconds without writes before a file still open for writing is pushed anyway
CATCH_UP_WAIT = 10.0  # seconds to wait at start for the tracker's news before deciding without it
RETRY = 1.0  # seconds before a path whose reconciliation failed is tried again
MAX_POSTPONE = 30.0  # seconds a file being written all the time waits at most before it is pushed


@dataclasses.dataclass
class _Pending:
    due: float
    since: float  # queued first at: a file written without pause is pushed after MAX_POSTPONE
    writing: bool = False
    moved_to: str | None = None  # this path was renamed to moved_to (a chance to rename in the share)
    failures: int = 0


class WatchedDir:
    """Keeps ``root`` and the share identical. It takes the engine's notices."""

    def __init__(self, engine: Engine, root: Path, notices: "trio.MemoryReceiveChannel[Notice]") -> None:
        self.engine = engine
        self.store = engine.store
        self.root = root
        self._notices = notices
        self.pending: dict[str, _Pending] = {}
        self._wake = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._initial: set[str] = set()  # paths of the start-up scan not yet reconciled
        self.sides = Sides(root, engine.store, engine.downloader, engine.errors)
        self.pusher = Pusher(self.sides, engine.store, engine.files, engine.inodes, engine.xattrs,
                             engine.commits, self._queue)
        self.puller = Puller(self.sides, engine.store, engine.downloader, self._queue)
        engine.ignores.count_in(lambda: tree_paths(root))  # ignored files never enter the store
        engine.ignores.on_reload(self._rules_changed)

    async def _take_notices(self) -> None:
        """The engine applied a remote change (or completed a download): the path it names
        is reconciled with the directory."""
        async for notice in self._notices:
            if notice.path:
                self._queue(notice.path)

    # -- events from the directory -------------------------------------------------------

    def _queue(self, path: str, *, delay: float = 0.0, writing: bool | None = None) -> None:
        now = trio.current_time()
        item = self.pending.pop(path, None)  # re-queued at the end: paths go in event order
        if item is None:
            item = _Pending(now + delay, now)
        elif delay or not item.writing:
            item.due = now + delay  # a new event restarts the wait for quiet
        if writing is not None:
            item.writing = writing
        if item.writing:
            item.due = min(max(item.due, now + SETTLE), item.since + MAX_POSTPONE)
            self._initial_done(path)  # a file being written must not hold downloads back
        self.pending[path] = item
        self._wake.set()

    def _relative(self, raw: str | bytes) -> str | None:
        """The share path of an absolute path from watchdog; None for the root, paths
        outside it, our own temporary files and names the share cannot hold."""
        text = os.fsdecode(raw)
        try:
            rel = Path(text).relative_to(self.root).as_posix()
        except ValueError:
            return None
        if rel in ("", ".") or rel.rpartition("/")[2].startswith(TEMP_PREFIX):
            return None
        try:
            return validate_path(rel)
        except BadPath as exc:
            log.info("not synced: %r (%s)", text, exc.why)
            return None

    def on_event(self, kind: str, src: str | bytes, dest: str | bytes) -> None:
        """One watchdog event, on the trio loop."""
        path = self._relative(src)
        if kind == "moved":
            target = self._relative(dest)
            if path is not None:
                self._queue(path, delay=QUIET, writing=False)
                self.pending[path].moved_to = target
            if target is not None:
                self._queue(target, delay=QUIET, writing=False)
            return
        if path is None:
            return
        if kind in ("created", "modified"):
            self._queue(path, delay=QUIET, writing=not self._is_dir(path))
        elif kind == "closed":
            self._queue(path, delay=CLOSED_QUIET, writing=False)
        elif kind == "deleted":
            self._queue(path, delay=QUIET, writing=False)
        else:  # attrib
            self._queue(path, delay=QUIET)

    def _is_dir(self, path: str) -> bool:
        return os.path.isdir(self.sides.abs(path)) and not os.path.islink(self.sides.abs(path))

    # -- running -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        token = trio.lowlevel.current_trio_token()
        observer = Observer()
        observer.schedule(Events(token, self.on_event), str(self.root), recursive=True)
        overflow = OverflowWatch(token, self._rescan)
        logging.getLogger("watchdog.observers.inotify_c").addHandler(overflow)
        observer.start()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._take_notices)
                task_status.started()
                # Decide against the share as it is now, and fetch nothing before: a file
                # the directory already holds is adopted, neither downloaded nor made a
                # conflict copy of itself.
                with trio.move_on_after(CATCH_UP_WAIT):
                    await self.engine.remote.caught_up.wait()
                self._initial = set(await self._scan())
                if not self._initial:
                    self.engine.filler.hold_fills(False)
                nursery.start_soon(self._worker)
        finally:
            logging.getLogger("watchdog.observers.inotify_c").removeHandler(overflow)
            # watchdog logs an ERROR when its reader thread wakes once more during stop()
            logging.getLogger("watchdog.observers.inotify").addFilter(drop_stop_race)
            observer.stop()
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await trio.to_thread.run_sync(observer.join)

    def _rescan(self) -> None:
        """The kernel dropped events (its queue overflowed): look at everything again."""
        self.engine.errors.note(f"too many changes at once in {self.root}: rescanning it")
        if self._nursery is not None:
            self._nursery.start_soon(self._scan)

    def _rules_changed(self) -> None:
        """What the old rules kept here may sync now (the initial scan sees it at start)."""
        if self._nursery is not None and not self._initial:
            self._nursery.start_soon(self._look_again)

    async def _look_again(self) -> None:
        on_disk = await trio.to_thread.run_sync(lambda: list(tree_paths(self.root)))
        for path, _ in on_disk:
            parent, _, name = path.rpartition("/")
            if (child := self.sides.child(parent, name)) is not None:
                self._queue(child)

    async def _scan(self) -> list[str]:
        """Queue every path of the directory, of the share and of the last agreement: what
        changed while we were stopped (on either side) is among them."""
        on_disk = await trio.to_thread.run_sync(walk, str(self.root))
        paths = dict.fromkeys(p for p in (self.sides.child(parent, name) for parent, name in on_disk) if p)
        paths.update(dict.fromkeys(self.store.seen_paths()))
        paths.update(dict.fromkeys(n.path for n in self.store.descendants("")))
        for path in sorted(paths):
            self._queue(path)
        log.info("watching %s: %d paths to check", self.root, len(paths))
        return list(paths)

    async def _worker(self) -> None:
        while True:
            now = trio.current_time()
            due = [p for p, item in self.pending.items() if item.due <= now]
            for path in due:
                item = self.pending.pop(path, None)
                if item is None:
                    continue
                try:
                    await self._reconcile(path, item)
                    self._initial_done(path)
                except DirChanged:
                    self._queue(path, delay=QUIET)
                except Exception as exc:  # noqa: BLE001 - one path must never end the process
                    if not isinstance(exc, (FsError, OSError)):
                        log.exception("reconciling %s failed", path)
                    item.failures += 1
                    level = logging.WARNING if item.failures in (3, 30) else logging.INFO
                    log.log(level, "cannot sync %s yet: %s", path, exc)
                    if item.failures == 3:
                        self.engine.errors.note(f"cannot sync {path}: {exc}")
                    retry = self.pending.setdefault(path, item)
                    retry.failures = item.failures
                    retry.due = max(retry.due, now + min(RETRY * item.failures, 30.0))
                    self._initial_done(path)
            if not due:
                next_due = min((item.due for item in self.pending.values()), default=float("inf"))
                with trio.move_on_at(next_due):
                    await self._wake.wait()
                self._wake = trio.Event()

    def _initial_done(self, path: str) -> None:
        if self._initial:
            self._initial.discard(path)
            if not self._initial:
                self.engine.filler.hold_fills(False)
                log.info("%s checked against the share", self.root)

    # -- one path --------------------------------------------------------------------------

    async def _reconcile(self, path: str, item: _Pending) -> None:
        disk = self.sides.disk(path)
        if disk is not None and self.engine.ignores.rules.ignored(path, disk.kind is Kind.DIR):
            return  # stays local, as in a mount
        if disk is not None and disk.kind is Kind.SYMLINK and not holdable_target(disk.target):
            log.info("not synced: %r (its target is not UTF-8 or too long)", path)
            return
        node = self.store.lookup_path(path)
        seen = self.store.seen(path)
        action = decide(disk, seen, self.sides.shared(node))
        if action is Action.PUSH and disk is None and item.moved_to \
                and await self.pusher.rename(path, item.moved_to, seen, node):
            return
        if action is Action.PUSH:
            await self.pusher.push(path, disk, seen, node)
        elif action is Action.PULL:
            await self.puller.pull(path, disk, seen, node)
        elif action is Action.RECORD:
            if node is None:
                self.store.forget_seen(path)
            else:
                assert seen is not None  # decide records a node only where both sides agreed before
                self.store.put_seen(dataclasses.replace(seen, version=node.version))
