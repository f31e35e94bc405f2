"""The plain directory's side of a watched directory: reading and writing it, and the
watchdog glue that brings its events to the trio loop.

Nothing here knows the share; these are the file-system steps the front end
(``syncfs/watched.py``) and its push and pull sides are made of.
"""

import contextlib
import errno
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import trio
from watchdog.events import FileSystemEvent, FileSystemEventHandler

from .datafiles import copy_fd, user_xattrs
from .protocol.entries import MAX_TARGET_BYTES

log = logging.getLogger(__name__)

TEMP_PREFIX = ".syncfs-tmp."  # also ignored by default everywhere (syncfs/ignore.py)


class Events(FileSystemEventHandler):
    """Runs in watchdog's thread: hands each event to ``on_event(kind, src, dest)`` on the
    trio loop and returns at once."""

    def __init__(self, token: trio.lowlevel.TrioToken,
                 on_event: Callable[[str, str | bytes, str | bytes], None]) -> None:
        self.token = token
        self.on_event = on_event

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        try:
            self.token.run_sync_soon(self.on_event, event.event_type, event.src_path,
                                     getattr(event, "dest_path", "") or "")
        except trio.RunFinishedError:
            pass


class OverflowWatch(logging.Handler):
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


def drop_stop_race(record: logging.LogRecord) -> bool:
    """A logging filter for watchdog's ERROR when its reader thread wakes once more during
    ``stop()``: nothing is wrong then."""
    return "called when the thread is inactive" not in record.getMessage()


def holdable_target(target: str) -> bool:
    """Whether the share can hold a symlink to ``target`` (UTF-8, within limits)."""
    try:
        return len(target.encode("utf-8")) <= MAX_TARGET_BYTES
    except UnicodeEncodeError:
        return False


def holds_user_xattrs(root: Path) -> bool:
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


def set_xattrs(target: str | int, xattrs: dict[str, bytes]) -> bool:
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


def walk(root: str) -> list[tuple[str, str]]:
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


def write_copy(source: os.PathLike[str], dest: str, mode: int, mtime_ns: int, xattrs: dict[str, bytes]) -> bool:
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
        held = set_xattrs(fd, xattrs)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.utime(dest, ns=(mtime_ns, mtime_ns))
    return held
