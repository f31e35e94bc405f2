"""The watched-directory front end: an ordinary directory kept in the share, for hosts
without FUSE (``syncfs sync DIR``).

watchdog reports inotify events from its own thread; they come back to the trio loop
through the trio token and only mark paths as pending. One task reconciles pending paths
one at a time: ``mirror.decide`` compares the directory, the share's node and what the two
last agreed on, and the front end then commits the directory's state to the engine (push)
or writes the share's state into the directory (pull). Nothing is polled: the only full
scan is the one at start-up, which finds what changed while the process was stopped.

- A file is pushed once it is quiet: CLOSED_QUIET after it was closed, or SETTLE after
  its last write if it stays open. It is copied into the store and chunked there; if it changed
  while being copied, it is tried again later, so no half-written file is sent.
- Remote versions are written to a temporary file in the same directory, given their mode
  and mtime, flushed, and renamed over the path, so no reader sees half a file. Just
  before the rename the path is checked again: a local edit made meanwhile is pushed
  instead (and becomes a conflict copy if it is concurrent with the remote one).
"""

import contextlib
import dataclasses
import errno
import logging
import os
import secrets
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import trio
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from .datafiles import copy_fd, user_xattrs
from .engine import Engine
from .errors import FsError
from .mirror import (
    Action,
    Disk,
    Seen,
    Shared,
    content_key,
    decide,
    disk_unchanged,
    share_unchanged,
    xattrs_key,
)
from .notices import Notice
from .protocol.conflicts import conflict_path
from .protocol.entries import MAX_TARGET_BYTES, Kind
from .protocol.paths import BadPath, join, parent_of, validate_path
from .store import Node

log = logging.getLogger(__name__)

QUIET = 0.1  # seconds after an event before a path is reconciled (more may follow: a rename, a chmod)
CLOSED_QUIET = 0.02  # ... after a close: the file is whole; a later utime (cp -p) is pushed too
SETTLE = 1.0  # seconds without writes before a file still open for writing is pushed anyway
CATCH_UP_WAIT = 10.0  # seconds to wait at start for the tracker's news before deciding without it
RETRY = 1.0  # seconds before a path whose reconciliation failed is tried again
TEMP_PREFIX = ".syncfs-tmp."  # also ignored by default everywhere (syncfs/ignore.py)
XATTRS_OFF = "watched_xattrs_off"  # meta key: this directory cannot hold the share's user.* attributes
MAX_POSTPONE = 30.0  # seconds a file being written all the time waits at most before it is pushed


@dataclasses.dataclass
class _Pending:
    due: float
    since: float  # queued first at: a file written without pause is pushed after MAX_POSTPONE
    writing: bool = False
    moved_to: str | None = None  # this path was renamed to moved_to (a chance to rename in the share)
    failures: int = 0


class _Changed(Exception):
    """The directory changed under a write into it: push the directory's state instead."""


class WatchedDir:
    """Keeps ``root`` and the share identical. It takes the engine's notices."""

    def __init__(self, engine: Engine, root: Path, notices: "trio.MemoryReceiveChannel[Notice]") -> None:
        self.engine = engine
        self.files = engine.files
        self.store = engine.store
        self.root = root
        self._notices = notices
        self.pending: dict[str, _Pending] = {}
        self._wake = trio.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._initial: set[str] = set()  # paths of the start-up scan not yet reconciled
        self._real_root = os.path.realpath(root)
        # else user.* attributes are neither read nor written here (remembered: a restart
        # must not take a partial set on disk for a local change)
        self.xattrs = not self.store.get_meta(XATTRS_OFF) and _holds_user_xattrs(root)

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

    def _child(self, parent: str, name: str) -> str | None:
        """``parent/name`` if the share can hold that name (UTF-8, within limits), else None."""
        if name.startswith(TEMP_PREFIX):
            return None
        try:
            return validate_path(join(parent, name))
        except BadPath as exc:
            log.info("not synced: %r (%s)", os.path.join(self._abs(parent), name), exc.why)
            return None

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
        return os.path.isdir(self._abs(path)) and not os.path.islink(self._abs(path))

    def _abs(self, path: str) -> str:
        return os.path.join(self.root, path)

    # -- running -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        self._token = trio.lowlevel.current_trio_token()
        observer = Observer()
        observer.schedule(_Events(self), str(self.root), recursive=True)
        overflow = _OverflowWatch(self._token, self._rescan)
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
            logging.getLogger("watchdog.observers.inotify").addFilter(_drop_stop_race)
            observer.stop()
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await trio.to_thread.run_sync(observer.join)

    def _rescan(self) -> None:
        """The kernel dropped events (its queue overflowed): look at everything again."""
        self.engine.errors.note(f"too many changes at once in {self.root}: rescanning it")
        if self._nursery is not None:
            self._nursery.start_soon(self._scan)

    async def _scan(self) -> list[str]:
        """Queue every path of the directory, of the share and of the last agreement: what
        changed while we were stopped (on either side) is among them."""
        on_disk = await trio.to_thread.run_sync(_walk, str(self.root))
        paths = dict.fromkeys(p for p in (self._child(parent, name) for parent, name in on_disk) if p)
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
                except _Changed:
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

    def _disk(self, path: str) -> Disk | None:
        """What the directory holds at ``path``; None if nothing, or if a parent on the way
        is no longer a directory of the tree (a symlink put in its place leads outside)."""
        parent = parent_of(path)
        if parent and os.path.realpath(self._abs(parent)) != os.path.join(self._real_root, parent):
            return None
        try:
            st = os.lstat(self._abs(path))
            target = os.readlink(self._abs(path)) if stat.S_ISLNK(st.st_mode) else ""
            xattrs = xattrs_key(user_xattrs(self._abs(path))) if self.xattrs and not target else b""
        except (FileNotFoundError, NotADirectoryError):
            return None
        return Disk.from_stat(st, target, xattrs)

    def _shared(self, node: Node | None) -> Shared | None:
        if node is None:
            return None
        complete = node.data_id is None or node.data_id not in self.engine.downloader.partials
        return Shared(node.kind, node.mode, node.mtime_ns, content_key(node.kind, node.chunks, node.target),
                      node.version, complete, xattrs_key(node.xattrs) if self.xattrs else b"")

    async def _reconcile(self, path: str, item: _Pending) -> None:
        disk = self._disk(path)
        if disk is not None and self.engine.ignores.rules.ignored(path, disk.kind is Kind.DIR):
            return  # stays local, as in a mount
        if disk is not None and disk.kind is Kind.SYMLINK and not _holdable_target(disk.target):
            log.info("not synced: %r (its target is not UTF-8 or too long)", path)
            return
        node = self.store.lookup_path(path)
        seen = self.store.seen(path)
        action = decide(disk, seen, self._shared(node))
        if action is Action.PUSH and disk is None and item.moved_to and await self._rename(path, item.moved_to, seen, node):
            return
        if action is Action.PUSH:
            await self._push(path, disk, seen, node)
        elif action is Action.PULL:
            await self._pull(path, disk, seen, node)
        elif action is Action.RECORD:
            if node is None:
                self.store.forget_seen(path)
            else:
                self.store.put_seen(dataclasses.replace(seen, version=node.version))  # type: ignore[arg-type]

    def _record(self, path: str, node: Node, st: os.stat_result | None = None) -> None:
        st = st if st is not None else os.lstat(self._abs(path))
        disk = Disk.from_stat(st, node.target)
        assert disk is not None
        self.store.put_seen(Seen(path, node.kind, disk.ino, disk.size, disk.mtime_ns, disk.mode,
                                 content_key(node.kind, node.chunks, node.target), node.version,
                                 xattrs_key(node.xattrs) if self.xattrs else b""))

    # -- the directory changed: commit it to the share --------------------------------------

    async def _rename(self, old: str, new: str, seen: Seen | None, node: Node | None) -> bool:
        """A rename seen in the directory, done as a rename in the share (no bytes copied,
        none sent) when the moved thing is exactly what both sides agreed on."""
        disk = self._disk(new)
        if seen is None or node is None or not disk_unchanged(seen, disk) \
                or not share_unchanged(seen, self._shared(node)):
            return False
        target = self.store.lookup_path(new)
        if target is not None and (
            (target.kind is Kind.DIR) != (node.kind is Kind.DIR)
            or not share_unchanged(self.store.seen(new), self._shared(target))
        ):
            return False  # what it replaces changed in the share meanwhile: push, which conflicts
        try:
            parent = await self._share_dirs(new)
            self.files.rename(node.parent, node.name, parent.ino, new.rpartition("/")[2])
        except FsError as exc:
            log.info("rename of %s to %s done as delete and create: %s", old, new, exc)
            return False
        self.store.move_seen(old, new)
        return True

    async def _push(self, path: str, disk: Disk | None, seen: Seen | None, node: Node | None) -> None:
        base = seen.version if seen is not None else (self.store.tombstone(path) or {})
        if node is not None and (disk is None or node.kind is not disk.kind):
            if disk is not None and not share_unchanged(seen, self._shared(node)):
                self._set_aside(node)  # replaced here, changed there: both are kept
            elif not self._delete_in_share(node):
                raise FsError(errno.EEXIST, f"{path} changed in the share meanwhile")
            node = None
        if disk is None:
            self.store.forget_seen(path)
            return
        if disk.kind is Kind.DIR:
            if node is None:
                parent = await self._share_dirs(path)
                node = self.files.mkdir(parent.ino, path.rpartition("/")[2], disk.mode)
            elif node.mode != disk.mode:
                node = await self.files.setattr(node.ino, mode=disk.mode)
            here = user_xattrs(self._abs(path)) if self.xattrs else node.xattrs
            for name in sorted(here.keys() | node.xattrs.keys()):
                if here.get(name) != node.xattrs.get(name):
                    self.engine.xattrs.set(node.ino, name, here.get(name))
            node = self.files.inodes.node(node.ino)
            self._record(path, node)
            if seen is None:
                self._queue_children(path, node)  # made or moved in before we watched it
        elif disk.kind is Kind.SYMLINK:
            if node is not None and node.target != disk.target:
                self._delete_in_share(node)
                node = None
            if node is None:
                parent = await self._share_dirs(path)
                node = self.files.symlink(parent.ino, path.rpartition("/")[2], disk.target)
            self._record(path, node)
        else:
            await self._share_dirs(path)
            done = await self.engine.commits.import_file(path, self._abs(path), base, with_xattrs=self.xattrs,
                                                 on_commit=lambda n, st: self._record(path, n, st))
            if done is None:
                self._queue(path, writing=True)  # still changing: once it is quiet
                return
            log.debug("pushed %s (%d bytes)", path, done[0].size)
            if not share_unchanged(self.store.seen(path), self._shared(done[0])):
                # the share had these bytes already, under a newer version whose attributes
                # differ (changed there while this write waited for quiet): they come here
                self._queue(path)

    async def _share_dirs(self, path: str) -> Node:
        """The share's directory node for the parent of ``path``, committing the directories
        on the way that the share does not have yet (with their modes here)."""
        parent = self.store.lookup_path("")
        assert parent is not None
        prefix = ""
        for part in parent_of(path).split("/") if parent_of(path) else []:
            prefix = join(prefix, part)
            node = self.store.lookup_path(prefix)
            if node is None:
                mode = os.lstat(self._abs(prefix)).st_mode & 0o7777
                node = self.files.mkdir(parent.ino, part, mode)
                self._record(prefix, node)
            elif node.kind is not Kind.DIR:
                raise FsError(errno.ENOTDIR, f"{prefix} is a {node.kind.value} in the share")
            parent = node
        return parent

    def _set_aside(self, node: Node) -> None:
        """Rename the share's ``node`` to a conflict name next to it, as the tracker names
        the loser of a conflict: its path gets what the directory holds now."""
        for n in range(1000):
            aside = conflict_path(node.path, time.time_ns(), self.engine.peer_id, n)
            if self.store.lookup_path(aside) is None:
                break
        parent = self.store.lookup_path(parent_of(aside))
        assert parent is not None
        log.info("%s changed in the share while it was replaced here: keeping it as %s", node.path, aside)
        self.files.rename(node.parent, node.name, parent.ino, aside.rpartition("/")[2])
        self._queue(aside)  # a local rename tells the front end nothing: bring it here

    def _delete_in_share(self, node: Node) -> bool:
        """Delete ``node`` (and what lies below it) from the share; False if it was kept
        because something below it changed in the share since this directory saw it (an
        edit beats a delete: it is written back here instead)."""
        doomed = [*reversed(self.store.descendants(node.path)), node] if node.kind is Kind.DIR else [node]
        keep: set[str] = set()
        for n in doomed:
            changed = n is not node and not share_unchanged(self.store.seen(n.path), self._shared(n))
            if changed or n.path in keep:
                keep.add(parent_of(n.path))
                if changed:
                    self.store.forget_seen(n.path)
                    self._queue(n.path)
                continue
            if n.kind is Kind.DIR:
                self.files.rmdir(n.parent, n.name)
            else:
                self.files.unlink(n.parent, n.name)
            self.store.forget_seen(n.path)
        return node.path not in keep

    def _queue_children(self, path: str, node: Node) -> None:
        names: set[str] = set()
        try:
            with os.scandir(self._abs(path)) as it:
                names.update(e.name for e in it)
        except OSError:
            pass
        after = 0
        while batch := self.store.children(node.ino, after_ino=after):
            names.update(c.name for c in batch)
            after = batch[-1].ino
        for name in sorted(names):
            if (child := self._child(path, name)) is not None:
                self._queue(child)

    # -- the share changed: write it into the directory ----------------------------------------

    async def _pull(self, path: str, disk: Disk | None, seen: Seen | None, node: Node | None) -> None:
        target = self._abs(path)
        if node is None:
            if disk is not None and not self._remove_here(path, disk):
                raise FsError(errno.ENOTEMPTY, f"{path} was deleted in the share but still holds files here")
            self.store.forget_seen(path)
            return
        self._disk_dirs(path)
        if node.kind is Kind.DIR:
            if disk is not None and disk.kind is not Kind.DIR:
                os.unlink(target)
                disk = None
            if disk is None:
                os.mkdir(target, node.mode)
            os.chmod(target, node.mode)
            if self.xattrs and not _set_xattrs(target, node.xattrs):
                self._without_xattrs()
            self._record(path, node)
            if seen is None:
                self._queue_children(path, node)
            return
        if disk is not None and disk.kind is Kind.DIR:
            if not self._remove_here(path, disk):
                raise FsError(errno.ENOTEMPTY, f"{path} is a directory here that still holds files")
            disk = None
        if node.kind is Kind.SYMLINK:
            tmp = self._temp_name(path)
            os.symlink(node.target, tmp)
            self._replace(tmp, path, disk)
            self._record(path, node)
            return
        assert node.data_id is not None
        if node.data_id in self.engine.downloader.partials:
            return  # not all here (decide waits for that too): file_complete brings it back
        if disk is not None and seen is not None and seen.content == content_key(Kind.FILE, node.chunks):
            # the same bytes with other attributes (chmod, touch, a merged version)
            os.chmod(target, node.mode)
            if self.xattrs and not _set_xattrs(target, node.xattrs):
                self._without_xattrs()
            os.utime(target, ns=(node.mtime_ns, node.mtime_ns))
            self._record(path, node)
            return
        tmp = self._temp_name(path)
        try:
            held = await trio.to_thread.run_sync(_write_copy, self.store.data_path(node.data_id), tmp, node.mode,
                                                 node.mtime_ns, node.xattrs if self.xattrs else {})
            if not held:
                self._without_xattrs()
            fresh = self.store.lookup_path(path)
            if fresh is None or fresh.data_id != node.data_id:
                raise _Changed(path)  # replaced again while we copied
            self._replace(tmp, path, disk)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._record(path, node)
        log.debug("pulled %s (%d bytes)", path, node.size)

    def _without_xattrs(self) -> None:
        """The directory's filesystem refused an attribute the share holds: from now on
        attributes are neither compared nor written here, and never dropped from the share
        for it (a path recorded with them is pushed once more without them, which keeps the
        share's)."""
        self.xattrs = False
        self.store.set_meta(XATTRS_OFF, 1)
        self.engine.errors.note(f"{self.root} cannot hold every user.* attribute of the share; "
                               "extended attributes are not synced there")

    def _replace(self, tmp: str, path: str, expected: Disk | None) -> None:
        """Rename ``tmp`` over ``path`` unless the directory changed it since we decided."""
        if self._disk(path) != expected:
            os.unlink(tmp)
            raise _Changed(path)
        os.replace(tmp, self._abs(path))

    def _remove_here(self, path: str, disk: Disk) -> bool:
        """Remove ``path`` from the directory; False for a directory that is not empty yet.

        What it still holds and the share knows is removed first (queued before the next
        try). If it holds things the share does not know (new files, ignored ones, names
        the share cannot hold), it is kept and committed again, as a mount keeps such a
        directory: deleting them would lose them.
        """
        if disk.kind is not Kind.DIR:
            os.unlink(self._abs(path))
            return True
        try:
            os.rmdir(self._abs(path))
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            children = [self._child(path, name) for name in os.listdir(self._abs(path))]
            for child in children:
                if child is not None and self.store.seen(child) is not None:
                    self._queue(child)  # removed before the directory is tried again
            if any(c is None or self.store.seen(c) is None for c in children):
                self.store.forget_seen(path, subtree=False)  # so the directory is pushed back
                self._queue(path)
            return False
        return True

    def _disk_dirs(self, path: str) -> None:
        """Make the parent directories of ``path`` here, with the share's modes."""
        prefix = ""
        for part in parent_of(path).split("/") if parent_of(path) else []:
            prefix = join(prefix, part)
            if not os.path.isdir(self._abs(prefix)) or os.path.islink(self._abs(prefix)):
                node = self.store.lookup_path(prefix)
                os.mkdir(self._abs(prefix), node.mode if node is not None else 0o755)
                if node is not None:
                    self._record(prefix, node)

    def _temp_name(self, path: str) -> str:
        head, _, name = path.rpartition("/")
        return self._abs(join(head, f"{TEMP_PREFIX}{secrets.token_hex(4)}.{name[:200]}"))


class _Events(FileSystemEventHandler):
    """Runs in watchdog's thread: hands each event to the trio loop and returns at once."""

    def __init__(self, front: WatchedDir) -> None:
        self.front = front

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write") or self.front._token is None:
            return
        try:
            self.front._token.run_sync_soon(self.front.on_event, event.event_type, event.src_path,
                                            getattr(event, "dest_path", "") or "")
        except trio.RunFinishedError:
            pass


class _OverflowWatch(logging.Handler):
    """watchdog rebuilds its watches when the kernel's event queue overflows but tells its
    handlers nothing; its log record is the only sign, so it starts a rescan here."""

    def __init__(self, token: trio.lowlevel.TrioToken, rescan: Callable[[], None]) -> None:
        super().__init__(logging.WARNING)
        self.token = token
        self.rescan = rescan

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage():
            with contextlib.suppress(trio.RunFinishedError):
                self.token.run_sync_soon(self.rescan)


def _drop_stop_race(record: logging.LogRecord) -> bool:
    return "called when the thread is inactive" not in record.getMessage()


def _holdable_target(target: str) -> bool:
    try:
        return len(target.encode("utf-8")) <= MAX_TARGET_BYTES
    except UnicodeEncodeError:
        return False


def _holds_user_xattrs(root: Path) -> bool:
    """Whether files in ``root`` can carry ``user.*`` attributes (tmpfs before Linux 6.6,
    some network filesystems: no)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=root)
    except OSError:
        return False
    try:
        os.setxattr(fd, "user.syncfs-probe", b"1")
        return True
    except OSError:
        log.warning("%s cannot hold user.* extended attributes: they are not synced there", root)
        return False
    finally:
        os.close(fd)
        os.unlink(probe)


def _set_xattrs(target: str | int, xattrs: dict[str, bytes]) -> bool:
    """Make the ``user.*`` attributes of ``target`` (not ``user.syncfs.*``) exactly
    ``xattrs``; False if the filesystem refused one (too many, too large, not supported)."""
    here = user_xattrs(target)
    try:
        for name in here.keys() - xattrs.keys():
            os.removexattr(target, name)
        for name, value in xattrs.items():
            if here.get(name) != value:
                os.setxattr(target, name, value)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.EBADF):
            raise
        log.warning("cannot set extended attributes here: %s", exc)
        return False
    return True


def _walk(root: str) -> list[tuple[str, str]]:
    """Every (parent, name) below ``root`` (parent relative, parents first), removing
    temporary files that a crash left behind."""
    out: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        rel = "" if rel == "." else Path(rel).as_posix()
        for name in filenames + dirnames:
            if name.startswith(TEMP_PREFIX):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(dirpath, name))
                continue
            out.append((rel, name))
    return out


def _write_copy(source: os.PathLike, dest: str, mode: int, mtime_ns: int, xattrs: dict[str, bytes]) -> bool:
    """Write ``dest`` as a copy of ``source`` with the given mode, mtime and attributes;
    False if the filesystem refused an attribute (the rest is written all the same)."""
    fd = os.open(dest, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        src = os.open(source, os.O_RDONLY)
        try:
            copy_fd(src, fd)
        finally:
            os.close(src)
        os.fchmod(fd, mode)
        held = _set_xattrs(fd, xattrs)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.utime(dest, ns=(mtime_ns, mtime_ns))
    return held


