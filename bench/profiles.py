"""Where a peer process spends its time, for bench/metadata.py (issue 19).

Two sources, both opt-in:

- ``SYNCFS_PROFILE=FILE`` (syncfs/profiling.py): the mounting process times every FUSE
  handler and writes a JSON summary at exit; ``handler_lines`` turns it into table rows.
- ``PySpy``: py-spy sampling a running process (all its threads, native frames included,
  ``--nonblocking``) into collapsed stacks; ``categories`` sorts the samples by what the
  innermost recognisable frame is doing (SQLite, fsync, hashing, the FUSE channel, trio's
  loop, syncfs's own Python, ...). Samples are of busy threads only (py-spy drops idle
  ones), so the shares are shares of CPU time, and samples / rate estimates its seconds.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

RATE = 250  # samples a second

# innermost match wins: each frame from the leaf outwards is tried against these in order
CATEGORIES: list[tuple[str, re.Pattern[str]]] = [
    ("fsync", re.compile(r"\b(fsync|fdatasync|__libc_fsync|__fdatasync)\b")),
    ("SQLite", re.compile(r"sqlite3|pysqlite|/syncfs/store/|tracker/state\.py")),
    ("hashing+chunking", re.compile(r"blake3|fastcdc|syncfs/chunking\.py")),
    ("file I/O syscalls", re.compile(r"\b(__libc_pwrite|__libc_pread|pwrite64|pread64|__libc_open64|"
                                     r"__open64|openat64|unlink|rmdir|__mkdir|mkdir|rename|ftruncate|"
                                     r"__close|__fstatat64|statx|lstat|getdents64|os_(open|unlink|"
                                     r"mkdir|rmdir|rename|stat|lstat|pwrite|pread|close|scandir)"
                                     r"[a-z_]*)\b")),
    ("FUSE channel (libfuse/pyfuse3)", re.compile(r"\bfuse_|_pyfuse3|pyfuse3/")),
    ("TLS+msgpack+wire", re.compile(r"\bssl|SSL|msgpack|syncfs/wire\.py|syncfs/protocol/")),
    ("watchdog (inotify)", re.compile(r"watchdog|inotify")),
    ("trio event loop", re.compile(r"trio/_core/|trio/_threads|trio/_sync|\bepoll")),
    ("syncfs Python", re.compile(r"/syncfs/")),
]


def pyspy_binary() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


class PySpy:
    """``py-spy record`` of ``pid`` into ``out`` (collapsed stacks) until ``stop``."""

    def __init__(self, pid: int, out: Path, *, native: bool = True) -> None:
        binary = pyspy_binary()
        if binary is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy into the venv)")
        self.out = out
        cmd = [binary, "record", "-p", str(pid), "-r", str(RATE), "--nonblocking", "--threads",
               "-f", "raw", "-o", str(out)]
        if native:
            cmd.append("--native")
        self.log = out.with_suffix(".log")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def stop(self) -> Path:
        """Stop sampling; py-spy writes its file on SIGINT."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.out


def categories(raw: Path) -> tuple[Counter[str], Counter[str], int]:
    """(samples by category over all threads, samples by category in the event loop's
    thread, all samples) of a collapsed-stacks file."""
    every: Counter[str] = Counter()
    loop: Counter[str] = Counter()
    total = 0
    with contextlib.suppress(FileNotFoundError), open(raw) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = stack.split(";")
            what = "other"
            for frame in reversed(frames):
                found = next((name for name, pat in CATEGORIES if pat.search(frame)), None)
                if found:
                    what = found
                    break
            every[what] += n
            if "unrolled_run" in stack:  # trio's loop: the main thread (worker threads never run it)
                loop[what] += n
            total += n
    return every, loop, total


def shares(raw: Path) -> str:
    """One line: estimated CPU seconds and the share of each category, biggest first."""
    every, loop, total = categories(raw)
    if not total:
        return "no samples (py-spy could not attach, or the process was idle)"
    loop_total = sum(loop.values())
    parts = [f"{name} {100 * n / total:.0f}%" for name, n in every.most_common() if 100 * n / total >= 1]
    loop_parts = [f"{name} {100 * n / loop_total:.0f}%" for name, n in loop.most_common()
                  if loop_total and 100 * n / loop_total >= 2]
    return (f"~{total / RATE:.1f} CPU-s sampled: " + ", ".join(parts)
            + (f"; of it in the event loop's thread (~{loop_total / RATE:.1f} s): " + ", ".join(loop_parts)
               if loop_total else ""))


def handler_lines(summary: Path, top: int = 8) -> str:
    """The busiest FUSE handlers of a SYNCFS_PROFILE dump: count, mean, p99, total, errors."""
    try:
        handlers = json.loads(summary.read_text())["handlers"]
    except (OSError, ValueError, KeyError):
        return f"no handler profile ({summary.name} missing)"
    total = sum(h["total"] for h in handlers.values())
    parts = []
    for name, h in list(handlers.items())[:top]:
        err = f", {h['errors']:.0f} failed" if h["errors"] else ""
        parts.append(f"{name} {h['count']:.0f}× mean {h['mean'] * 1e3:.2f} ms p99 {h['p99'] * 1e3:.2f} ms "
                     f"= {h['total']:.2f} s{err}")
    return f"handlers busy {total:.2f} s in all: " + "; ".join(parts)
