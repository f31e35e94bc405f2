"""What a syncfs process leaves when it ends without unmounting (SIGKILL, a crash, the OOM
killer): a registry entry of a process that is gone and, for a mount, a dead mount point
whose every access fails with ENOTCONN ("Transport endpoint is not connected").

``syncfs status`` and ``stop`` recognise it and say what happened (with the last lines of
its log); ``stop`` and ``syncfs mount`` clean the dead mount point up.
"""

import contextlib
import errno
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import config
from .control import forget, gone, registered, syncfs_mount_points

STAT_TIMEOUT = 2.0  # a mount whose process lives but hangs answers nothing: do not wait on it
UNMOUNT_TIMEOUT = 10.0
LOG_LINES = 8


class CleanupFailed(Exception):
    """A dead mount point could not be unmounted; the message says what was tried."""


@dataclass(frozen=True)
class Leftover:
    """A syncfs process that is gone, at ``path``: its mount point (or watched directory)."""

    path: Path
    pid: int | None  # None: known only from /proc/self/mountinfo, not from the registry
    log_file: Path | None
    dead_mount: bool  # the mount point is still mounted, and dead
    entry: Path | None = None
    info: dict[str, Any] | None = None

    def describe(self) -> str:
        """What happened, in a few lines for a person, ending with the log's last lines."""
        who = f"its syncfs process (pid {self.pid})" if self.pid is not None else "its syncfs process"
        if self.dead_mount:
            text = (f"{self.path} is a dead mount: {who} ended without unmounting (killed or crashed), "
                    "so the mount point answers 'Transport endpoint is not connected'.")
        else:
            text = f"{self.path}: {who} ended without stopping cleanly (killed or crashed)."
        if self.log_file is None:
            return text + "\n  (no log file: it logged to its terminal)"
        tail = log_tail(self.log_file)
        if not tail:
            return text + f"\n  its log {self.log_file} is empty or gone"
        return text + f"\n  last lines of its log {self.log_file}:\n" + "\n".join(f"    {line}" for line in tail)


def not_connected(path: Path, timeout: float = STAT_TIMEOUT) -> bool:
    """True if ``path`` fails with ENOTCONN (or ECONNABORTED, after an abort).

    It asks with statvfs, which always goes to the mount's process (a stat may be answered
    from the kernel's attribute cache for a while after the process died), from a daemon
    thread: a mount whose process hangs keeps that thread, never the caller."""
    result: list[int] = []

    def probe() -> None:
        try:
            os.statvfs(path)
            result.append(0)
        except OSError as exc:
            result.append(exc.errno or -1)

    thread = threading.Thread(target=probe, name="dead-mount-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result) and result[0] in (errno.ENOTCONN, errno.ECONNABORTED)


def _holds(root: Path, target: Path) -> bool:
    return target == root or root in target.parents


def find(directory: Path | None) -> list[Leftover]:
    """What processes that are gone left at or above ``directory`` (the deepest first), or
    anywhere when ``directory`` is None. A path a running mount holds is never one."""
    target = directory.expanduser().absolute() if directory is not None else None
    live = {m["mountpoint"] for m in registered()}
    mounted = syncfs_mount_points() - live
    found: dict[str, Leftover] = {}
    for entry, info in gone():
        path = info.get("mountpoint")
        if not isinstance(path, str) or path in live or (target is not None and not _holds(Path(path), target)):
            continue
        dead = path in mounted and not_connected(Path(path))
        if not dead and path in mounted:
            continue  # mounted again by a process this registry does not know: not ours to judge
        log = info.get("log")
        pid = info.get("pid")
        found[path] = Leftover(Path(path), pid if isinstance(pid, int) else None,
                               Path(log) if isinstance(log, str) and log else None, dead, entry, info)
    for path in mounted - found.keys():
        if (target is None or _holds(Path(path), target)) and not_connected(Path(path)):
            log_file = config.default_log_file(Path(path))
            found[path] = Leftover(Path(path), None, log_file if log_file.exists() else None, True)
    return sorted(found.values(), key=lambda left: len(str(left.path)), reverse=True)


def named(directory: str | None) -> list[Leftover]:
    """What a command given ``directory`` (None: none) is about: the leftover holding it,
    or, without one, every leftover there is."""
    if directory is None:
        return find(None)
    return find(Path(directory))[:1]


def at(path: Path) -> Leftover | None:
    """The dead mount exactly at ``path``, if there is one."""
    target = path.expanduser().absolute()
    return next((left for left in find(target) if left.path == target and left.dead_mount), None)


def clean(left: Leftover) -> str:
    """Unmount a dead mount point (lazily: nothing can be using a dead mount) and forget
    the registry entry; returns the command that did it. Raises CleanupFailed."""
    how = ""
    if left.dead_mount:
        how = unmount(left.path)
    if left.entry is not None and left.info is not None:
        forget(left.entry, left.info)
    return how


def unmount(path: Path) -> str:
    """``fusermount3 -uz``, else ``fusermount -uz``, else ``umount -l``: the first that
    takes the syncfs mount at ``path`` away (stacked dead mounts come off one by one)."""
    tried: list[str] = []
    worked = ""
    for _ in range(5):
        if str(path) not in syncfs_mount_points():
            break
        for cmd in (["fusermount3", "-u", "-z"], ["fusermount", "-u", "-z"], ["umount", "-l"]):
            if shutil.which(cmd[0]) is None:
                continue
            line = " ".join(cmd)
            try:
                done = subprocess.run([*cmd, str(path)], stdin=subprocess.DEVNULL, capture_output=True,
                                      text=True, timeout=UNMOUNT_TIMEOUT)
            except (OSError, subprocess.TimeoutExpired) as exc:
                tried.append(f"{line}: {exc}")
                continue
            if done.returncode == 0:
                worked = line
                break
            tried.append(f"{line}: {done.stderr.strip() or f'exit {done.returncode}'}")
        else:
            break  # none of them worked
    if str(path) in syncfs_mount_points():
        raise CleanupFailed(f"could not unmount the dead mount {path} "
                            f"({'; '.join(tried) or 'no unmount tool found'})")
    return worked or "nothing to do"


def log_tail(path: Path, lines: int = LOG_LINES) -> list[str]:
    """The last ``lines`` lines of a log file (read from its end: logs grow large)."""
    with contextlib.suppress(OSError), open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 16384))
        text = f.read().decode(errors="replace")
        return [line for line in text.splitlines()[-lines:] if line.strip()]
    return []
