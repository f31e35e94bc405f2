"""Where a peer process spends its time, for bench/metadata.py (issue 19).

Two sources, both opt-in:

- ``SYNCFS_PROFILE=FILE`` (syncfs/profiling.py): the mounting process times every FUSE
  handler and writes a JSON summary at exit; ``handler_lines`` turns it into one line.
- cProfile: the peer started as ``python -m cProfile -o FILE -m syncfs ...``
  (``ProfiledPeer``, ``ProfiledSync``); ``shares`` sorts the own time of its main thread
  (the trio loop: FUSE handlers, SQLite, the tracker link, the chunk server, remote apply,
  the watched directory's worker) by what each function is: SQLite calls, fsync,
  hashing, the FUSE channel, waiting in epoll, trio's own code, syncfs's Python. Worker
  threads (chunking and hashing after a close, fsync of data files) are not in it; cProfile
  slows the Python it sees about twofold, so the shares count, not the sums. (py-spy 0.4.3
  could not read this Python's processes on this machine: "Failed to find python version
  from target process".)
"""

from __future__ import annotations

import json
import pstats
import re
from collections import Counter
from pathlib import Path

from harness import PeerProc, SyncProc

# each function ("file:line(function)" as pstats names it) gets the first that matches
CATEGORIES: list[tuple[str, re.Pattern[str]]] = [
    ("waiting in epoll (idle)", re.compile(r"method 'poll' of 'select\.epoll'")),
    ("fsync", re.compile(r"\b(fsync|fdatasync)\b")),
    ("SQLite", re.compile(r"sqlite3")),
    ("hashing+chunking", re.compile(r"blake3|fastcdc|chunking\.py")),
    ("FUSE channel (pyfuse3)", re.compile(r"pyfuse3|fuse")),
    ("file syscalls (os.*)", re.compile(r"built-in method posix\.|scandir")),
    ("TLS+msgpack+sockets", re.compile(r"ssl|SSL|msgpack|socket|syncfs/wire\.py|syncfs/protocol/")),
    ("trio (scheduler, channels, threads)", re.compile(r"/trio/")),
    ("syncfs Python", re.compile(r"/syncfs/|/tracker/")),
]


class _Profiled:
    """A harness process started under cProfile while ``cprofile`` names a file."""

    cprofile: Path | None = None

    def command(self) -> list[str]:
        cmd: list[str] = super().command()  # type: ignore[misc]
        if self.cprofile is None:
            return cmd
        return [cmd[0], "-m", "cProfile", "-o", str(self.cprofile), *cmd[1:]]


class ProfiledPeer(_Profiled, PeerProc):
    pass


class ProfiledSync(_Profiled, SyncProc):
    pass


def categories(path: Path) -> tuple[Counter[str], list[tuple[float, str]]]:
    """(own time by category, functions by own time, most first) of a cProfile dump."""
    by: Counter[str] = Counter()
    funcs = []
    for (file, line, func), (_cc, _nc, tottime, _ct, _callers) in pstats.Stats(str(path)).stats.items():  # type: ignore[attr-defined]
        name = f"{file}:{line}({func})"
        what = next((cat for cat, pat in CATEGORIES if pat.search(name)), "other (stdlib, builtins)")
        by[what] += tottime
        funcs.append((tottime, func if file == "~" else f"{Path(file).name}:{line}({func})"))
    funcs.sort(reverse=True)
    return by, funcs


def shares(path: Path) -> str:
    """One line: the main thread's own time by category, and the busiest functions."""
    try:
        by, top = categories(path)
    except (OSError, EOFError, ValueError, TypeError) as exc:
        return f"no cProfile dump ({path.name}: {exc})"
    idle = by.pop("waiting in epoll (idle)", 0.0)
    busy = sum(by.values()) or 1e-9
    parts = [f"{k} {100 * v / busy:.0f}%" for k, v in by.most_common() if 100 * v / busy >= 1]
    return (f"main thread busy {busy:.2f} s, idle in epoll {idle:.2f} s; busy: " + ", ".join(parts)
            + "; most own time: " + ", ".join(f"{f} {t:.2f} s" for t, f in top[:6] if "epoll" not in f))


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
