#!/usr/bin/env python3
"""How fast a closed file becomes readable on the other peers, against a plain TCP copy.

    python bench/latency.py [--runs N] [--watched]

Tracker + 3 peers as real processes (tests/harness.py). For a 1 KiB and a 1 MiB file:
time from close() on p1 until p2 and p3 both read the same bytes through their mounts,
polling every millisecond; the baseline is a plain loopback TCP copy of the same bytes to
a file, measured in the same run. Prints medians and ratios; appends them to RESULTS.md.

``--watched``: the first peer is a plain directory kept by ``syncfs sync`` (s1) and the
other two are mounts; timed both ways: closed in s1 until readable in both mounts, and
closed in a mount until readable in s1 (and the other mount).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT, ROOT / "tests", ROOT / "bench"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))
from harness import Cluster  # noqa: E402
from transfer import TcpBaseline  # noqa: E402


def arrival(peers, rel: str, data: bytes, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    waiting = list(peers)
    while waiting:
        peer = waiting[0]
        try:
            path = peer.path(rel)
            if path.stat().st_size == len(data) and path.read_bytes() == data:
                waiting.pop(0)
                continue
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{rel} did not reach {peer.name}")
        time.sleep(0.001)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--watched", action="store_true", help="the first peer is a plain directory (syncfs sync)")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="syncfs-latency-") as tmp:
        cluster = Cluster(Path(tmp))
        baseline = TcpBaseline(Path(tmp) / "tcp")
        try:
            cluster.tracker.start()
            first = cluster.add_peer(watched=args.watched)
            p2, p3 = cluster.start_peers(2)
            ways = [(first, [p2, p3])] + ([(p2, [first, p3])] if args.watched else [])
            for writer, readers in ways:
                names = f"{writer.name} -> {' and '.join(r.name for r in readers)}"
                for label, size in (("1 KiB", 1024), ("1 MiB", 1 << 20)):
                    times = []
                    for i in range(args.runs):
                        data = os.urandom(size)
                        rel = f"f-{writer.name}-{size}-{i}"
                        with open(writer.path(rel), "wb") as f:
                            f.write(data)
                            t0 = time.perf_counter()
                        arrival(readers, rel, data)
                        times.append(time.perf_counter() - t0)
                    base, _ = baseline.median(os.urandom(size), args.runs)
                    sync = statistics.median(times)
                    results.append((names, label, sync, base))
                    print(f"{label}: close in {writer.name} -> readable in {names.split(' -> ')[1]}: median "
                          f"{sync * 1000:.1f} ms (min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}); "
                          f"plain TCP copy {base * 1000:.2f} ms; ratio {sync / base:.0f}")
        finally:
            baseline.close()
            cluster.close()
    flag = " --watched" if args.watched else ""
    setup = "s1 a watched directory, p2 and p3 mounts" if args.watched else "p1, p2, p3 mounts"
    with open(ROOT / "bench" / "RESULTS.md", "a") as out:
        out.write(f"\n## latency — {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n\n"
                  f"Command: `.venv/bin/python bench/latency.py --runs {args.runs}{flag}` "
                  f"(tracker + 3 peers: {setup}; loopback, {os.cpu_count()} cores)\n\n"
                  "| closed → readable | file | median | plain TCP copy | ratio | DESIGN target |\n"
                  "|---|---|---|---|---|---|\n")
        for names, label, sync, base in results:
            out.write(f"| {names} | {label} | {sync * 1000:.1f} ms | {base * 1000:.2f} ms | {sync / base:.0f} | "
                      f"{'≤ 100 ms' if label == '1 KiB' else '—'} |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
