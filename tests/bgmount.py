"""A mount started as a user starts one: ``syncfs mount DIR ...`` in the background."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from pathlib import Path

from harness import force_unmount, syncfs_cli, wait_for

from syncfs.control import alive

ADDR = "127.0.0.40"  # this file's background peer; the cluster's peers use .12, .13, ...


class BackgroundMount:
    """A mount started the way a user starts one: ``syncfs mount DIR ...`` without
    --foreground, which returns once the detached mount process runs. Every process it
    started is killed by pid, and its mount point unmounted, on exit."""

    def __init__(self, workdir: Path, token: str, *, log_file: bool = True) -> None:
        self.mnt = workdir / "mnt"
        self.cache_dir = workdir / "cache"
        self.log_file = workdir / "bg.log"
        self.args = ["mount", str(self.mnt), "--tracker", token, "--listen", ADDR,
                     "--cache-dir", str(self.cache_dir)]
        if log_file:
            self.args += ["--log-file", str(self.log_file)]
        self.pids: list[int] = []
        self.mnt.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> BackgroundMount:
        return self

    def __exit__(self, *_: object) -> None:
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in self.pids:
            wait_for(lambda pid=pid: not alive(pid), timeout=10, what=f"pid {pid} to end")
        force_unmount(self.mnt)

    def note(self, done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
        """Remember the pid a successful mount command printed."""
        found = re.search(r"\(pid (\d+),", done.stdout)
        if found:
            self.pids.append(int(found.group(1)))
        return done

    def mount(self) -> subprocess.CompletedProcess[str]:
        return self.note(syncfs_cli(*self.args, timeout=60))

    def kill_9(self) -> int:
        """SIGKILL the running mount process, as a crash or the OOM killer would; return its pid."""
        pid = self.pids[-1]
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not alive(pid), timeout=10, what=f"pid {pid} to end")
        return pid
