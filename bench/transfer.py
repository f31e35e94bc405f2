#!/usr/bin/env python3
"""Transfer benchmark of syncfs: real tracker and FUSE peers on loopback, each figure as a
ratio against a baseline measured in the same run.

    python bench/transfer.py [--quick]

Starts the processes exactly as the end-to-end tests do (tests/harness.py), everything
under one temp dir, and always unmounts and kills what it started (also on Ctrl-C/SIGTERM).
Prints a table and appends a dated section to bench/RESULTS.md. Needs /dev/fuse; dropping
the page cache for the cold reads needs root. See bench/README.md for what each item means.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT, ROOT / "tests"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))
from floors import MinimalFuse, TlsFloor, end, first_line, start_script  # noqa: E402
from harness import Cluster, PeerProc, fuse_unavailable_reason, wait_for  # noqa: E402

from syncfs.control import ControlError  # noqa: E402

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
POLL = 0.01  # how often the benchmark asks a peer for its status
BLOCK = MiB  # dd-style block size for writes and reads
BASELINE_HOST = "127.0.0.100"  # the plain TCP copy's receiver (peers use .11, .12, ...)
RESULTS = ROOT / "bench" / "RESULTS.md"
MAX_CHUNK = 4 * MiB
DISK_NEEDED = 12 * GiB
SYNC_SIZE = 256 * MiB
SYNC_RUNS = 3


# --------------------------------------------------------------------------- results


@dataclass
class Row:
    item: str
    what: str
    syncfs: str
    baseline: str
    ratio: str
    target: str
    met: bool | None  # None: not measured (error), or a floor (target FLOOR)


FLOOR = "(floor)"  # the target column of a floor: a yardstick (bench/floors.py), no target


def mark(row: Row, missed: str) -> str:
    if row.target == FLOOR:
        return "floor"
    return {True: "met", False: missed, None: "not measured"}[row.met]


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    others_at_start: int = 0

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(f"  [{row.item}] {row.what}: {row.syncfs} vs {row.baseline} -> {row.ratio} "
              f"(target {row.target}: {mark(row, 'MISSED')})", flush=True)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def table(self) -> str:
        lines = ["| # | measure | syncfs | baseline | ratio | target | |",
                 "|---|---|---|---|---|---|---|"]
        for r in self.rows:
            lines.append(f"| {r.item} | {r.what} | {r.syncfs} | {r.baseline} | {r.ratio} | {r.target} "
                         f"| {mark(r, '**missed**')} |")
        return "\n".join(lines)


def secs(t: float) -> str:
    return f"{t * 1000:.1f} ms" if t < 1 else f"{t:.2f} s"


def mib(n: float) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n / KiB:.1f} KiB"


def rate(n: int, t: float) -> str:
    return f"{n / MiB / t:.0f} MiB/s"


# --------------------------------------------------------------------------- data and files


def random_blocks(seed: int, size: int, block: int = BLOCK) -> Iterator[bytes]:
    """Deterministic incompressible bytes, block by block (no two blocks alike)."""
    rng = random.Random(seed)
    left = size
    while left:
        n = min(block, left)
        yield rng.randbytes(n)
        left -= n


def hashing(blocks: Iterable[bytes], h: hashlib._Hash) -> Iterator[bytes]:
    for b in blocks:
        h.update(b)
        yield b


def write_file(path: Path, blocks: Iterable[bytes], *, fsync: bool = False) -> float:
    """Write ``blocks`` with one write(2) each, then fsync (optionally) and close; seconds."""
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for b in blocks:
            view = memoryview(b)
            while view:
                view = view[os.write(fd, view):]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - t0


def read_file(path: Path, h: hashlib._Hash | None = None) -> tuple[int, float]:
    """Read the whole file in BLOCK reads (hashing it if ``h``); (bytes, seconds)."""
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    total = 0
    t0 = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    try:
        while n := os.readv(fd, [view]):
            total += n
            if h is not None:
                h.update(view[:n])
    finally:
        os.close(fd)
    return total, time.perf_counter() - t0


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    read_file(path, h)
    return h.hexdigest()


def drop_caches() -> bool:
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3")
    except OSError:
        return False
    return True


# --------------------------------------------------------------------------- peers


def status(peer: PeerProc) -> dict | None:
    """The peer's status, or None while it does not answer."""
    try:
        return peer.status()
    except ControlError:
        return None


def wait_status(peer: PeerProc, pred: Callable[[dict], bool], what: str, timeout: float = 60.0) -> dict:
    return wait_for(lambda: (s := status(peer)) is not None and pred(s) and s,
                    timeout=timeout, interval=POLL, what=f"{peer.name}: {what}")


def stale_paths(s: dict) -> set[str]:
    return {e["path"] for e in s["stale"]}


def wait_synced(peers: Sequence[PeerProc], rel: str, size: int,
                timeout: float) -> tuple[dict[str, float], dict[str, float]]:
    """When (perf_counter) each peer first listed ``rel``, and when it was complete.

    Complete: the mount lists ``rel`` with ``size`` bytes, and a status asked for after the
    first such stat does not list it as stale.
    """
    listed: dict[str, float] = {}  # perf_counter of the first stat that showed it
    done: dict[str, float] = {}
    deadline = time.perf_counter() + timeout
    while True:
        for p in peers:
            if p.name in done:
                continue
            if p.name not in listed:
                try:
                    if os.stat(p.path(rel)).st_size != size:
                        continue
                except OSError:
                    continue
                listed[p.name] = time.perf_counter()
            s = status(p)
            if s is not None and rel not in stale_paths(s):
                done[p.name] = time.perf_counter()
        if len(done) == len(peers):
            return listed, done
        if time.perf_counter() > deadline:
            missing = [p.name for p in peers if p.name not in done]
            raise AssertionError(f"{rel} not complete on {missing} after {timeout:g}s")
        time.sleep(POLL)


def wait_version(receiver: PeerProc, origin: PeerProc, rel: str, sha: str, timeout: float) -> None:
    """Wait until ``receiver`` has ``origin``'s current ``rel`` (same size/mtime, not stale, same sha256)."""
    want = os.stat(origin.path(rel))
    deadline = time.perf_counter() + timeout
    while True:
        try:
            st = os.stat(receiver.path(rel))
        except OSError:
            st = None
        matched = st is not None and (st.st_size, st.st_mtime_ns) == (want.st_size, want.st_mtime_ns)
        s = status(receiver)  # asked after the stat, so it knows of the version the stat saw
        if (matched and s is not None
                and rel not in stale_paths(s) and sha256_file(receiver.path(rel)) == sha):
            return
        if time.perf_counter() > deadline:
            now = os.stat(origin.path(rel))
            raise AssertionError(
                f"{receiver.name} did not get the new {rel} within {timeout:g}s: origin size/mtime "
                f"{want.st_size}/{want.st_mtime_ns} (now {now.st_size}/{now.st_mtime_ns}), receiver "
                f"{st and (st.st_size, st.st_mtime_ns)}, stale {s and s['stale']}, content matches on "
                f"origin {sha256_file(origin.path(rel)) == sha}, receiver {sha256_file(receiver.path(rel)) == sha}")
        time.sleep(POLL)


def cpu_seconds(pid: int | None) -> float:
    """user+system CPU seconds of a process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kib(pid: int | None, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


# --------------------------------------------------------------------------- TCP baseline

RECEIVER = r"""
import socket, sys
srv = socket.create_server((sys.argv[1], 0))
print(srv.getsockname()[1], flush=True)
buf = bytearray(1 << 20)
view = memoryview(buf)
while True:
    conn, _ = srv.accept()
    with conn:
        with open(sys.argv[2], "wb") as f:
            while n := conn.recv_into(view):
                f.write(view[:n])
        conn.sendall(b"k")
"""


class TcpBaseline:
    """A plain Python TCP receiver process that writes what it gets to a file, then acks."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.dest = workdir / "tcp-copy.bin"
        self.proc = start_script(RECEIVER, BASELINE_HOST, str(self.dest))
        line = first_line(self.proc)
        if not line:
            self.close()
            raise RuntimeError("the TCP baseline receiver did not start")
        self.port = int(line)

    def copy(self, data: bytes | memoryview) -> float:
        """Seconds from connect until the receiver has written and closed all of ``data``."""
        t0 = time.perf_counter()
        with socket.create_connection((BASELINE_HOST, self.port)) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            if s.recv(1) != b"k":
                raise RuntimeError("the TCP baseline receiver did not acknowledge")
        elapsed = time.perf_counter() - t0
        if self.dest.stat().st_size != len(data):
            raise RuntimeError("the TCP baseline copy has the wrong size")
        return elapsed

    def median(self, data: bytes | memoryview, runs: int) -> tuple[float, list[float]]:
        times = [self.copy(data) for _ in range(runs)]
        return statistics.median(times), times

    def close(self) -> None:
        end(self.proc)
        with contextlib.suppress(FileNotFoundError):
            self.dest.unlink()


# --------------------------------------------------------------------------- bench


class Bench:
    def __init__(self, top: Path, quick: bool, report: Report, runs: int = 5, tail_size: int = 64 * MiB) -> None:
        self.top = top
        self.quick = quick
        self.runs = runs
        self.tail_size = tail_size
        self.report = report
        self.clusters: list[Cluster] = []
        self.baselines: list[TcpBaseline | TlsFloor | MinimalFuse] = []

    # resources, always released by close_all() ---------------------------------------

    def cluster(self, name: str) -> Cluster:
        c = Cluster(self.top / name)
        self.clusters.append(c)
        c.tracker.start()
        return c

    def finish_cluster(self, c: Cluster) -> None:
        c.close()
        self.clusters.remove(c)
        problems = c.logs.unexpected()
        if problems:
            first = problems[0].splitlines()
            self.report.note(f"{c.tmp_path.name}: {len(problems)} error record(s) in process logs, first: "
                             f"`{' / '.join(x.strip() for x in first[-2:])[:300]}`")
        shutil.rmtree(c.tmp_path, ignore_errors=True)

    def baseline(self, name: str) -> TcpBaseline:
        b = TcpBaseline(self.top / name)
        self.baselines.append(b)
        return b

    def tls_floor(self, name: str, chunk: bytes = b"") -> TlsFloor:
        f = TlsFloor(self.top / name, BASELINE_HOST, chunk)
        self.baselines.append(f)
        return f

    def fuse_floor(self, name: str) -> MinimalFuse:
        f = MinimalFuse(self.top / name)
        self.baselines.append(f)
        return f

    def finish_baseline(self, b: TcpBaseline | TlsFloor | MinimalFuse) -> None:
        b.close()
        self.baselines.remove(b)

    def close_all(self) -> None:
        for b in list(self.baselines):
            with contextlib.suppress(Exception):
                b.close()
        for c in list(self.clusters):
            with contextlib.suppress(BaseException):
                c.close()
            shutil.rmtree(c.tmp_path, ignore_errors=True)
        self.baselines.clear()
        self.clusters.clear()

    def run(self, name: str, items: Sequence[tuple[str, str, str]], fn: Callable[[], None]) -> None:
        """Run one section; on failure record its items as not measured and go on."""
        print(f"\n== {name}", flush=True)
        before = len(self.report.rows)
        t0 = time.perf_counter()
        try:
            fn()
        except Exception as exc:
            traceback.print_exc()
            done = {r.item for r in self.report.rows[before:]}
            for item, what, target in items:
                if item not in done:
                    self.report.add(Row(item, what, "error", "", "", target, None))
            self.report.note(f"{name} failed: {type(exc).__name__}: {str(exc)[:300]}")
            self.close_all()
        print(f"   ({name} took {time.perf_counter() - t0:.0f} s)", flush=True)

    # 1 + 2: sync to one and to three receivers ---------------------------------------

    def sync_once(self, origin: PeerProc, receivers: Sequence[PeerProc], name: str, seed: int) -> dict:
        """Write a fresh 256 MiB file on ``origin``; time close() until all receivers have it."""
        size = SYNC_SIZE
        data = b"".join(random_blocks(seed, size))
        sha = hashlib.sha256(data).hexdigest()
        peers = [origin, *receivers]
        s0 = {p.name: p.status() for p in peers}
        cpu0 = {p.name: cpu_seconds(p.pid) for p in peers}
        fd = os.open(origin.path(name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        t_w = time.perf_counter()
        for off in range(0, size, BLOCK):
            os.write(fd, memoryview(data)[off:off + BLOCK])
        t0 = time.perf_counter()
        os.close(fd)
        listed, done = wait_synced(receivers, name, size, timeout=300)
        cpu = {p.name: cpu_seconds(p.pid) - cpu0[p.name] for p in peers}
        s1 = {p.name: p.status() for p in peers}
        for p in receivers:
            if sha256_file(p.path(name)) != sha:
                raise AssertionError(f"{name} on {p.name} has the wrong content")
        os.unlink(origin.path(name))
        for p in receivers:
            wait_for(lambda p=p: not p.path(name).exists(), timeout=30, interval=POLL,
                     what=f"the delete of {name} on {p.name}")
        return {
            "time": max(done.values()) - t0,
            "write": t0 - t_w,
            "listed": {n: t - t0 for n, t in listed.items()},
            "done": {n: t - t0 for n, t in done.items()},
            "cpu": cpu,
            "sent": s1[origin.name]["bytes_sent"] - s0[origin.name]["bytes_sent"],
            "got": {p.name: s1[p.name]["bytes_received"] - s0[p.name]["bytes_received"] for p in receivers},
        }

    def sync_fanout(self) -> None:
        size = SYNC_SIZE
        c = self.cluster("sync")
        p1, p2 = c.start_peers(2)
        ones = [self.sync_once(p1, [p2], f"one-{i}.bin", 10 + i) for i in range(SYNC_RUNS)]
        t_one = statistics.median(r["time"] for r in ones)

        b = self.baseline("tcp")
        same_bytes = b"".join(random_blocks(1, size))
        t_tcp, runs = b.median(same_bytes, 5)
        self.finish_baseline(b)
        f = self.tls_floor("tls")
        tls_runs = [f.copy(same_bytes) for _ in range(5)]
        t_tls = statistics.median(tls_runs)
        self.finish_baseline(f)
        del same_bytes
        self.report.add(Row(
            "1", f"256 MiB file, 1 receiver: close() to complete (median of {SYNC_RUNS})", secs(t_one),
            f"{secs(t_tcp)} (TCP copy, median of 5)", f"{t_one / t_tcp:.2f}", "≤ 1.5", t_one / t_tcp <= 1.5))
        self.report.add(Row(
            "1f", "floor of 1: the same bytes over TLS 1.3, each MiB hashed (blake3) by sender and receiver, "
            "no syncfs code (median of 5)", secs(t_tls), f"{secs(t_tcp)} (TCP copy, item 1)",
            f"{t_tls / t_tcp:.2f}", FLOOR, None))
        self.report.note(f"1f: TLS copies {', '.join(secs(t) for t in tls_runs)}; syncfs (item 1) takes "
                         f"{t_one / t_tls:.2f}× this floor")
        r = sorted(ones, key=lambda r: r["time"])[len(ones) // 2]
        self.report.note(
            f"1: runs {', '.join(secs(r['time']) for r in ones)}; TCP copies {', '.join(secs(t) for t in runs)}. "
            f"Median run: writing the file into p1's mount took {secs(r['write'])} ({rate(size, r['write'])}); "
            f"p2 listed it {secs(r['listed']['p2'])} after close() (chunking + tracker round trip) and had it "
            f"complete at {secs(r['done']['p2'])}, receiving {mib(r['got']['p2'])}; CPU used meanwhile: "
            f"p1 {r['cpu']['p1']:.2f} s, p2 {r['cpu']['p2']:.2f} s. the status is asked for every "
            f"{POLL * 1000:g} ms, so completion is seen up to that late")

        p3, p4 = c.add_peer(), c.add_peer()
        receivers = [p2, p3, p4]
        for p in (p1, *receivers):
            wait_status(p, lambda s: len(s["peers_online"]) == 3 and not s["stale"] and not s["outbox"],
                        "4 peers online, idle")
        threes = [self.sync_once(p1, receivers, f"three-{i}.bin", 20 + i) for i in range(SYNC_RUNS)]
        t_three = statistics.median(r["time"] for r in threes)
        self.report.add(Row(
            "2", f"same, 3 receivers (all complete; median of {SYNC_RUNS}) vs 1 receiver", secs(t_three),
            f"{secs(t_one)} (item 1)", f"{t_three / t_one:.2f}", "≤ 1.3", t_three / t_one <= 1.3))
        r = sorted(threes, key=lambda r: r["time"])[len(threes) // 2]
        self.report.note(
            f"2: runs {', '.join(secs(r['time']) for r in threes)}. Median run, per receiver listed/complete "
            "after close(): " + ", ".join(f"{n} {secs(r['listed'][n])}/{secs(t)}" for n, t in sorted(r["done"].items()))
            + f"; the origin p1 sent {r['sent'] / size:.2f}× the file; received "
            + ", ".join(f"{n} {mib(v)}" for n, v in sorted(r["got"].items()))
            + "; CPU used meanwhile: " + ", ".join(f"{n} {v:.2f} s" for n, v in sorted(r["cpu"].items())))
        self.finish_cluster(c)

    # 3 + 6: sequential write/read through the mount; on-demand tail read ---------------

    def io_and_on_demand(self) -> None:
        size = 256 * MiB if self.quick else GiB
        label = mib(size).replace(".0", "")
        rng = random.Random(3)
        blocks = [rng.randbytes(BLOCK) for _ in range(size // BLOCK)]
        h = hashlib.sha256()
        for blk in blocks:
            h.update(blk)
        sha = h.hexdigest()

        disk = self.top / "disk.bin"
        t_disk_w = write_file(disk, blocks, fsync=True)
        dropped = drop_caches()
        n, t_disk_r = read_file(disk)
        assert n == size
        disk.unlink()

        c = self.cluster("io")
        p1 = c.add_peer()
        p2 = c.add_peer(extra_args=["--on-demand"])
        t_mnt_w = write_file(p1.path("big.bin"), blocks, fsync=True)
        t_closed = time.perf_counter()
        tail = blocks[-1][-4 * KiB:]
        del blocks
        wait_for(lambda: p2.path("big.bin").stat().st_size == size, timeout=120, interval=POLL,
                 what="big.bin listed on p2")
        self.report.note(f"3: p2 listed big.bin {secs(time.perf_counter() - t_closed)} after close() on p1 "
                         f"(p1 chunks and hashes the file after close)")
        wait_status(p1, lambda s: not s["outbox"], "outbox empty", timeout=120)

        # 6: a 4 KiB read at the end of the file on the on-demand peer
        got0 = p2.status()["bytes_received"]
        t0 = time.perf_counter()
        fd = os.open(p2.path("big.bin"), os.O_RDONLY)
        try:
            got = os.pread(fd, 4 * KiB, size - 4 * KiB)
        finally:
            os.close(fd)
        t_tail = time.perf_counter() - t0
        if got != tail:
            raise AssertionError("the on-demand tail read returned the wrong bytes")
        moved = p2.status()["bytes_received"] - got0
        # for comparison: a second on-demand read, now that p2 is connected to p1
        got1 = p2.status()["bytes_received"]
        t0 = time.perf_counter()
        fd = os.open(p2.path("big.bin"), os.O_RDONLY)
        try:
            os.pread(fd, 4 * KiB, size // 2)
        finally:
            os.close(fd)
        t_mid = time.perf_counter() - t0
        moved_mid = p2.status()["bytes_received"] - got1
        self.report.note(f"6: a second 4 KiB on-demand read (middle of the file, p2 already connected to p1) "
                         f"took {secs(t_mid)} and moved {mib(moved_mid)} (includes read-ahead of the next chunks)")
        b = self.baseline("tcp-chunk")
        t_chunk, runs = b.median(os.urandom(MiB), 5)
        self.finish_baseline(b)
        ok = moved <= 2 * MAX_CHUNK
        self.report.add(Row("6a", f"4 KiB read at the end of a {label} file (--on-demand): bytes moved",
                            mib(moved), f"{mib(MAX_CHUNK)} (max chunk)", f"{moved / MAX_CHUNK:.2f} max chunks",
                            "≤ 2 chunks", ok))
        self.report.add(Row("6b", "same: time of the read (open+pread+close)", secs(t_tail),
                            f"{secs(t_chunk)} (TCP copy of 1 MiB, median of 5)", f"{t_tail / t_chunk:.2f}",
                            "≤ 3", t_tail / t_chunk <= 3))

        # 3: cold read through a fresh mount
        p1.stop()
        p1.start()
        wait_status(p1, lambda s: s["tracker"]["connected"], "connected again")
        dropped = drop_caches() and dropped
        n, t_mnt_r = read_file(p1.path("big.bin"))
        assert n == size
        if sha256_file(p1.path("big.bin")) != sha:
            raise AssertionError("big.bin read back through p1's mount has the wrong content")
        self.report.add(Row("3a", f"sequential write of {label} (1 MiB blocks, fsync+close), throughput",
                            rate(size, t_mnt_w), f"{rate(size, t_disk_w)} (disk)", f"{t_disk_w / t_mnt_w:.2f}",
                            "≥ 0.9", t_disk_w / t_mnt_w >= 0.9))
        self.report.add(Row("3b", f"cold sequential read of {label} (remounted, caches dropped), throughput",
                            rate(size, t_mnt_r), f"{rate(size, t_disk_r)} (disk)", f"{t_disk_r / t_mnt_r:.2f}",
                            "≥ 0.6", t_disk_r / t_mnt_r >= 0.6))
        if not dropped:
            self.report.note("3: could not write /proc/sys/vm/drop_caches (not root?): the reads were not cold")
        self.finish_cluster(c)

    # 6b alone, repeated: first on-demand read of a fresh file after a restart of the reader

    def tail_reads(self) -> None:
        """Item 6b only, ``runs`` times: restart the --on-demand reader (its chunk links are
        gone), write a new file on the origin, wait until the reader lists it, then time a
        4 KiB read at its end. Smaller files than item 6 (the time does not depend on the
        size: only the last chunk moves)."""
        size = self.tail_size
        label = mib(size).replace(".0", "")
        c = self.cluster("tail")
        p1 = c.add_peer()
        p2 = c.add_peer(extra_args=["--on-demand"])
        times, moved = [], []
        for run in range(self.runs):
            p2.stop()
            p2.start()
            wait_status(p2, lambda s: s["tracker"]["connected"] and len(s["peers_online"]) == 1, "connected again")
            name = f"tail-{run}.bin"
            blocks = self.tail_file(size, 30 + 1000 * run)
            write_file(p1.path(name), blocks)
            tail = blocks[-1][-4 * KiB:]
            wait_for(lambda name=name: p2.path(name).exists() and p2.path(name).stat().st_size == size, timeout=120,
                     interval=POLL, what=f"{name} listed on p2")
            wait_status(p1, lambda s: not s["outbox"], "outbox empty", timeout=120)
            got0 = p2.status()["bytes_received"]
            t0 = time.perf_counter()
            fd = os.open(p2.path(name), os.O_RDONLY)
            try:
                got = os.pread(fd, 4 * KiB, size - 4 * KiB)
            finally:
                os.close(fd)
            times.append(time.perf_counter() - t0)
            if got != tail:
                raise AssertionError("the on-demand tail read returned the wrong bytes")
            moved.append(p2.status()["bytes_received"] - got0)
        b = self.baseline("tcp-chunk")
        t_chunk, runs = b.median(os.urandom(MiB), 5)
        self.finish_baseline(b)
        f = self.tls_floor("tls-chunk", os.urandom(768 * KiB))  # the middle of the last chunks' sizes
        fetches = f.fetches(self.runs)
        self.finish_baseline(f)
        t_tail = statistics.median(times)
        self.report.add(Row("6b", f"4 KiB read at the end of a fresh {label} file (--on-demand, reader just "
                            f"restarted; median of {self.runs})", secs(t_tail),
                            f"{secs(t_chunk)} (TCP copy of 1 MiB, median of 5)", f"{t_tail / t_chunk:.2f}",
                            "≤ 3", t_tail / t_chunk <= 3))
        t_fetch = statistics.median(fetches)
        self.report.add(Row("6bf", "floor of 6b: one 768 KiB chunk asked for and answered over an open TLS 1.3 "
                            "link, read and hashed by the holder, hashed and written by the asker, no FUSE "
                            f"(median of {self.runs})", secs(t_fetch), f"{secs(t_chunk)} (TCP copy of 1 MiB)",
                            f"{t_fetch / t_chunk:.2f}", FLOOR, None))
        self.report.note(f"6b: reads {', '.join(secs(t) for t in times)}; moved {', '.join(mib(m) for m in moved)}; "
                         f"TCP copies {', '.join(secs(t) for t in runs)}; floor fetches "
                         f"{', '.join(secs(t) for t in fetches)}")
        self.finish_cluster(c)

    # 3 alone, repeated: each run measures the disk right before the mount

    def rw_repeated(self) -> None:
        """Items 3a/3b only, ``runs`` times, each run pairing a disk write+cold read with a
        mount write+cold read of the same blocks (the disk's speed on this VM swings 2-4x
        between minutes, so only paired ratios mean something); medians of the ratios."""
        size = 256 * MiB if self.quick else GiB
        label = mib(size).replace(".0", "")
        rng = random.Random(3)
        blocks = [rng.randbytes(BLOCK) for _ in range(size // BLOCK)]
        c = self.cluster("rw")
        p1 = c.add_peer()
        floor = self.fuse_floor("fuse-floor")
        writes, reads, dropped = [], [], True
        floor_writes, floor_reads = [], []
        for run in range(self.runs):
            disk = self.top / "disk.bin"
            t_dw = write_file(disk, blocks, fsync=True)
            dropped = drop_caches() and dropped
            t_dr = read_file(disk)[1]
            disk.unlink()
            t_fw = write_file(floor.path("rw.bin"), blocks, fsync=True)
            dropped = drop_caches() and dropped
            t_fr = read_file(floor.path("rw.bin"))[1]
            os.unlink(floor.path("rw.bin"))
            floor_writes.append((t_dw / t_fw, size / t_dw, size / t_fw))
            floor_reads.append((t_dr / t_fr, size / t_dr, size / t_fr))
            name = f"rw-{run}.bin"
            t_mw = write_file(p1.path(name), blocks, fsync=True)
            wait_status(p1, lambda s: not s["outbox"], "outbox empty", timeout=120)  # committed
            dropped = drop_caches() and dropped
            n, t_mr = read_file(p1.path(name))
            assert n == size
            os.unlink(p1.path(name))
            writes.append((t_dw / t_mw, size / t_dw, size / t_mw))
            reads.append((t_dr / t_mr, size / t_dr, size / t_mr))
        self.finish_baseline(floor)
        for item, what, runs, target, floors in (("3a", "sequential write", writes, 0.9, floor_writes),
                                                 ("3b", "cold sequential read", reads, 0.6, floor_reads)):
            ratio = statistics.median(r[0] for r in runs)
            self.report.add(Row(item, f"{what} of {label} (1 MiB blocks{', fsync+close' if item == '3a' else ''}), "
                                f"paired with the disk, median ratio of {self.runs}",
                                f"{statistics.median(r[2] for r in runs) / MiB:.0f} MiB/s",
                                f"{statistics.median(r[1] for r in runs) / MiB:.0f} MiB/s (disk)", f"{ratio:.2f}",
                                f"≥ {target}", ratio >= target))
            floor_ratio = statistics.median(r[0] for r in floors)
            self.report.add(Row(f"{item}f", f"floor of {item}: the same through a minimal pyfuse3 passthrough "
                                "(bench/floors.py), paired with the disk",
                                f"{statistics.median(r[2] for r in floors) / MiB:.0f} MiB/s",
                                f"{statistics.median(r[1] for r in floors) / MiB:.0f} MiB/s (disk)",
                                f"{floor_ratio:.2f}", FLOOR, None))
            self.report.note(f"{item}: runs (ratio, disk MiB/s, mount MiB/s): "
                             + "; ".join(f"{r[0]:.2f}, {r[1] / MiB:.0f}, {r[2] / MiB:.0f}" for r in runs)
                             + "; minimal passthrough runs (ratio, its MiB/s): "
                             + "; ".join(f"{r[0]:.2f}, {r[2] / MiB:.0f}" for r in floors))
        if not dropped:
            self.report.note("3: could not write /proc/sys/vm/drop_caches (not root?): the reads were not cold")
        self.finish_cluster(c)

    @staticmethod
    def tail_file(size: int, seed: int) -> list[bytes]:
        """Blocks of a random file whose last chunk is 0.5–1 MiB (so that runs compare alike
        with each other and with the 1 MiB TCP copy)."""
        from syncfs import chunking
        while True:
            blocks = list(random_blocks(seed, size))
            last = chunking.chunk_bytes(b"".join(blocks[-8:]))[-1].length  # 8 MiB > 2 max chunks
            if MiB // 2 <= last <= MiB:
                return blocks
            seed += 1

    # 4: peak RSS of the receiver -------------------------------------------------------

    def receiver_rss(self) -> None:
        size = 512 * MiB if self.quick else 2 * GiB
        label = mib(size).replace(".0", "")
        c = self.cluster("rss")
        p1, p2 = c.start_peers(2)
        p2.status()
        idle = proc_status_kib(p2.pid, "VmRSS") * KiB
        h = hashlib.sha256()
        t_w = write_file(p1.path("huge.bin"), hashing(random_blocks(4, size), h))
        t0 = time.perf_counter()
        t_sync = wait_synced([p2], "huge.bin", size, timeout=600)[1]["p2"] - t0
        hwm = proc_status_kib(p2.pid, "VmHWM") * KiB
        hwm_origin = proc_status_kib(p1.pid, "VmHWM") * KiB
        if sha256_file(p2.path("huge.bin")) != h.hexdigest():
            raise AssertionError("huge.bin on p2 has the wrong content")
        self.report.add(Row("4", f"peak RSS (VmHWM) of the receiver syncing a {label} file", mib(hwm),
                            f"{label} (file size)", f"{hwm / size:.3f}", "< 200 MiB", hwm < 200 * MiB))
        self.report.note(f"4: receiver RSS when idle before the sync {mib(idle)}; origin p1 VmHWM {mib(hwm_origin)}; "
                         f"writing it (while generating the data) took {secs(t_w)}, the sync {secs(t_sync)} ({rate(size, t_sync)})")
        self.finish_cluster(c)

    # 5: bytes moved by small edits -----------------------------------------------------

    def delta_edits(self) -> None:
        size = 256 * MiB
        c = self.cluster("delta")
        p1, p2 = c.start_peers(2)
        data = bytearray(b"".join(random_blocks(5, size)))
        write_file(p1.path("edit.bin"), [data])
        wait_synced([p2], "edit.bin", size, timeout=300)

        def measure(edit: Callable[[], None], item: str, what: str) -> None:
            s0 = p2.status()
            edit()
            wait_version(p2, p1, "edit.bin", hashlib.sha256(data).hexdigest(), timeout=300)
            s1 = p2.status()
            moved = s1["bytes_received"] - s0["bytes_received"]
            reused = s1["bytes_reused_locally"] - s0["bytes_reused_locally"]
            self.report.add(Row(item, what, mib(moved), "256 MiB (file size)", f"{moved / size:.2%}",
                                "≤ 3%", moved / size <= 0.03))
            self.report.note(f"{item}: p2 reused {mib(reused)} from its own copy")

        def overwrite() -> None:
            patch = random.Random(6).randbytes(MiB)
            data[size // 2:size // 2 + MiB] = patch
            with open(p1.path("edit.bin"), "r+b", buffering=0) as f:
                f.seek(size // 2)
                f.write(patch)

        def insert() -> None:
            data[0:0] = random.Random(7).randbytes(100)
            write_file(p1.path("edit.bin"), [data])

        measure(overwrite, "5a", "1 MiB overwritten in the middle of a 256 MiB file: bytes moved")
        measure(insert, "5b", "100 bytes inserted at the start of it: bytes moved")
        self.finish_cluster(c)


# --------------------------------------------------------------------------- main


def machine() -> str:
    uname = os.uname()
    return (f"nproc {os.cpu_count()}, kernel {uname.release} ({uname.machine}), "
            f"Python {sys.version.split()[0]}, {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / GiB:.0f} GiB RAM")


def git_head() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        head = out.stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "syncfs", "tracker"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head + (" (with uncommitted changes under syncfs/ or tracker/)" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def others_running() -> int:
    """How many syncfs/tracker processes not started by this run are alive (they share the CPUs)."""
    n = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"-m" in cmd and (b"syncfs" in cmd or b"tracker" in cmd) and b"syncfs-bench-" not in b" ".join(cmd):
            n += 1
    return n


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def append_results(report: Report, command: str, elapsed: float) -> None:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = [
        f"## {now}",
        "",
        f"- command: `{command}`",
        f"- machine: {machine()}",
        f"- syncfs commit: {git_head()}; run took {elapsed:.0f} s",
        f"- load average (1/5/15 min) at the end: {load()}; other syncfs/tracker processes at the start: "
        f"{report.others_at_start}, at the end: {others_running()}",
        "",
        report.table(),
        "",
    ]
    if report.notes:
        section += ["Notes:", ""] + [f"- {n}" for n in report.notes] + [""]
    if not RESULTS.exists():
        RESULTS.write_text("# syncfs transfer benchmark results\n\n"
                           "Sections are appended by `bench/transfer.py`; see bench/README.md.\n\n")
    with open(RESULTS, "a") as f:
        f.write("\n".join(section) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="256 MiB for item 3, 512 MiB for item 4")
    parser.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    parser.add_argument("--only", default="sync,io,rss,delta",
                        help="comma-separated sections to run: sync (items 1, 2), io (3, 6), rss (4), "
                             "delta (5), tail (6b alone, --runs times), rw (3a/3b alone, --runs paired "
                             "runs); default: sync,io,rss,delta")
    parser.add_argument("--runs", type=int, default=5, help="runs of the tail and rw sections (default 5)")
    parser.add_argument("--tail-mib", type=int, default=64, help="file size of the tail section (default 64)")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    unknown = only - {"sync", "io", "rss", "delta", "tail", "rw"}
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")

    reason = fuse_unavailable_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    top = Path(tempfile.mkdtemp(prefix="syncfs-bench-"))
    free = shutil.disk_usage(top).free
    if free < DISK_NEEDED:
        print(f"cannot run: {top} has {free / GiB:.1f} GiB free, need {DISK_NEEDED / GiB:.0f}", file=sys.stderr)
        shutil.rmtree(top, ignore_errors=True)
        return 2

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)

    report = Report()
    bench = Bench(top, args.quick, report, runs=args.runs, tail_size=args.tail_mib * MiB)
    command = "python bench/transfer.py" + (" --quick" if args.quick else "")
    if args.only != parser.get_default("only"):
        command += f" --only {args.only}"
        if "tail" in only:
            command += f" --tail-mib {args.tail_mib}"
        if only & {"tail", "rw"}:
            command += f" --runs {args.runs}"
    report.others_at_start = others_running()
    print(f"{command}: {machine()}; temp dir {top}; load {load()}", flush=True)
    if report.others_at_start:
        print(f"warning: {report.others_at_start} other syncfs/tracker processes are running", flush=True)
    t0 = time.perf_counter()
    try:
        if "sync" in only:
            bench.run("sync to 1 and 3 receivers", [
                ("1", "256 MiB file, 1 receiver", "≤ 1.5"), ("2", "3 receivers vs 1", "≤ 1.3")],
                bench.sync_fanout)
        if "io" in only:
            bench.run("sequential I/O and on-demand read", [
                ("6a", "on-demand 4 KiB tail read: bytes", "≤ 2 chunks"),
                ("6b", "on-demand 4 KiB tail read: time", "≤ 3"),
                ("3a", "sequential write", "≥ 0.9"), ("3b", "cold sequential read", "≥ 0.6")],
                bench.io_and_on_demand)
        if "tail" in only:
            bench.run("on-demand tail read, repeated", [("6b", "on-demand 4 KiB tail read: time", "≤ 3")],
                      bench.tail_reads)
        if "rw" in only:
            bench.run("sequential I/O, paired runs", [("3a", "sequential write", "≥ 0.9"),
                                                      ("3b", "cold sequential read", "≥ 0.6")], bench.rw_repeated)
        if "rss" in only:
            bench.run("receiver peak RSS", [("4", "receiver peak RSS", "< 200 MiB")], bench.receiver_rss)
        if "delta" in only:
            bench.run("delta edits", [("5a", "1 MiB overwrite", "≤ 3%"), ("5b", "100-byte insert", "≤ 3%")],
                      bench.delta_edits)
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        bench.close_all()
        shutil.rmtree(top, ignore_errors=True)
    elapsed = time.perf_counter() - t0
    order = ["1", "2", "3a", "3b", "4", "5a", "5b", "6a", "6b"]
    report.rows.sort(key=lambda r: order.index(r.item) if r.item in order else len(order))
    print("\n" + report.table())
    if not args.no_record:
        append_results(report, command, elapsed)
        print(f"\nappended to {RESULTS.relative_to(ROOT)}")
    return 0 if all(r.met is not None for r in report.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
