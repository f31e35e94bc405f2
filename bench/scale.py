#!/usr/bin/env python3
"""Does a change cost the same in a share of 100,000 files as in one of 1,000? (issue 4)

    python bench/scale.py [--sizes 1000,100000] [--runs 25] [--no-record]

For each size, a share of that many small files (1,000 per directory) is written straight
into the tracker's state (``TrackerState.apply_update``, in batches) and into both peers'
stores (``Store.insert_node`` + ``index_chunks``, one data file per file), without FUSE and
without the network: nodes carry the same versions and chunks as the tracker's entries and
``last_seq`` is the tracker's current sequence, so the peers start up in sync and fetch no
delta. Then each share gets its own tracker and two peers as real processes
(tests/harness.py), all shares at once, and one random file at a time is rewritten through
p1's mount; the time from close() on p1 until p2 reads the new bytes through its mount
(polled every millisecond) is the figure. Runs alternate between the shares (A B, B A, ...)
so that load from anything else on the machine falls on every size alike. The first change
in each share is a warm-up (it opens the chunk link p2 -> p1) and is not counted.

Prints medians, the ratio of the largest to the smallest share (target <= 1.5) and the
tracker's RSS (VmRSS / VmHWM from /proc); appends a section to bench/RESULTS.md. Everything
runs under one temp dir that is removed at the end; processes are stopped by pid and
mounts unmounted even on failure or Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT, ROOT / "tests", ROOT / "bench"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))
from harness import Cluster, PeerProc, fuse_unavailable_reason, wait_for  # noqa: E402
from transfer import git_head, load, machine, others_running, proc_status_kib, status  # noqa: E402

from syncfs import chunking  # noqa: E402
from syncfs.protocol.entries import Entry, Kind  # noqa: E402
from syncfs.store import ROOT_INO, Store  # noqa: E402
from tracker.server import DEFAULT_CHUNKING  # noqa: E402
from tracker.state import TrackerState  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
PER_DIR = 1000
BATCH = 5000  # entries per tracker transaction / store transaction
ARRIVAL_TIMEOUT = 30.0
POLL = 0.001


# --------------------------------------------------------------------------- the share


def rel_path(i: int) -> str:
    return f"d{i // PER_DIR:03d}/f{i:06d}.txt"


def content(i: int, generation: int = 0) -> bytes:
    """Small, distinct bytes for file ``i`` (20-120 bytes)."""
    line = f"file {i} generation {generation}\n".encode()
    return line * (1 + i % 4)


@dataclass
class Share:
    n: int
    tracker_seq: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def populate(n: int, tracker_dir: Path, stores: Sequence[Path], origin_store: Path) -> Share:
    """Write a share of ``n`` files into the tracker's state and every store.

    Every entry's origin (and version counter) is the peer of ``origin_store``, as if that
    peer had created the files and the other peers had synced them completely.
    """
    share = Share(n)
    t0 = time.perf_counter()
    # open every store first: each gets its peer id now, and the origin's id goes into versions
    opened = []
    for root in stores:
        s = Store(root)
        s.open()
        opened.append(s)
    try:
        origin = next(s for s, root in zip(opened, stores, strict=True) if root == origin_store).peer_id
        mtime = time.time_ns()
        version = {origin: 1}
        ndirs = (n + PER_DIR - 1) // PER_DIR
        dirs = [Entry(f"d{d:03d}", Kind.DIR, mode=0o755, mtime_ns=mtime, version=version) for d in range(ndirs)]

        def file_entry(i: int) -> Entry:
            data = content(i)
            return Entry(rel_path(i), Kind.FILE, size=len(data), mode=0o644, mtime_ns=mtime,
                         version=version, chunks=tuple(chunking.chunk_bytes(data, DEFAULT_CHUNKING)))

        # the tracker: one UPDATE-sized transaction per batch, exactly as the server applies them
        t = time.perf_counter()
        state = TrackerState(tracker_dir)
        try:
            state.apply_update(origin, dirs)
            for start in range(0, n, BATCH):
                rows = state.apply_update(origin, [file_entry(i) for i in range(start, min(n, start + BATCH))])
                assert len(rows) == min(BATCH, n - start), "the tracker refused part of the share"
            share.tracker_seq = state.current_seq
            assert len(state) == n + ndirs
        finally:
            state.close()
        share.seconds["tracker"] = time.perf_counter() - t

        # each store: the nodes a peer has after applying those rows and completing every file
        for s, root in zip(opened, stores, strict=True):
            t = time.perf_counter()
            root_node = s.get(ROOT_INO)
            parents = {}
            with s.transaction():
                for e in dirs:
                    parents[e.path] = s.insert_node(root_node, e.path, Kind.DIR, e.mode, mtime_ns=e.mtime_ns,
                                                    version=e.version)
            for start in range(0, n, BATCH):
                with s.transaction():
                    for i in range(start, min(n, start + BATCH)):
                        e = file_entry(i)
                        data_id = s.new_data_file()
                        fd = os.open(s.data_path(data_id), os.O_WRONLY)
                        try:
                            os.write(fd, content(i))
                        finally:
                            os.close(fd)
                        dirname, _, name = e.path.partition("/")
                        s.insert_node(parents[dirname], name, Kind.FILE, e.mode, mtime_ns=e.mtime_ns,
                                      version=e.version, data_id=data_id, size=e.size, chunks=e.chunks)
                        s.index_chunks(data_id, e.chunks)
            s.set_meta("last_seq", share.tracker_seq)
            share.seconds[root.parent.name] = time.perf_counter() - t
    finally:
        for s in opened:
            s.close()
    share.seconds["total"] = time.perf_counter() - t0
    return share


# --------------------------------------------------------------------------- timing


def arrival(peer: PeerProc, rel: str, data: bytes, timeout: float = ARRIVAL_TIMEOUT) -> None:
    """Return once ``peer`` reads exactly ``data`` at ``rel`` through its mount."""
    path = peer.path(rel)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if path.stat().st_size == len(data) and path.read_bytes() == data:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{rel} did not reach {peer.name} within {timeout:g}s")
        time.sleep(POLL)


def change_once(p1: PeerProc, p2: PeerProc, i: int, generation: int) -> float:
    data = content(i, generation) + os.urandom(16)
    with open(p1.path(rel_path(i)), "wb") as f:
        f.write(data)
    t0 = time.perf_counter()  # close() is where the peer commits
    arrival(p2, rel_path(i), data)
    return time.perf_counter() - t0


@dataclass
class Setup:
    """One share with its tracker and two peers, running."""

    n: int
    cluster: Cluster
    p1: PeerProc
    p2: PeerProc
    share: Share
    start_seconds: float
    picks: list[int]


@dataclass
class Result:
    n: int
    times: list[float]
    warmup: float
    share: Share
    start_seconds: float
    tracker_rss_kib: int
    tracker_hwm_kib: int
    peer_rss_kib: dict[str, int]
    tracker_db_bytes: int

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def wait_connected(p1: PeerProc, p2: PeerProc, seq: int) -> None:
    for me, other in ((p1, p2), (p2, p1)):
        wait_for(lambda me=me, other=other: (s := status(me)) is not None and s["tracker"]["connected"]
                 and s["tracker"]["last_seq"] >= seq and status(other) is not None
                 and status(other)["peer_id"] in s["peers_online"],
                 timeout=60, interval=0.01, what=f"{me.name} connected and caught up")


def set_up(top: Path, n: int, runs: int, seed: int, clusters: list[Cluster]) -> Setup:
    """Populate a share of ``n`` files and start its tracker and peers (added to ``clusters``
    first, so that the caller stops them whatever happens)."""
    cluster = Cluster(top / f"share-{n}")
    clusters.append(cluster)
    p1 = cluster.add_peer(start=False)
    p2 = cluster.add_peer(start=False)
    print(f"[{n} files] populating tracker state and 2 stores ...", flush=True)
    share = populate(n, cluster.tracker.state_dir, [p1.cache_dir, p2.cache_dir], p1.cache_dir)
    print(f"[{n} files] populated in {share.seconds['total']:.1f} s "
          f"(tracker {share.seconds['tracker']:.1f} s, p1 {share.seconds['p1']:.1f} s, "
          f"p2 {share.seconds['p2']:.1f} s); seq {share.tracker_seq}", flush=True)
    t = time.perf_counter()
    cluster.tracker.start()
    p1.start()
    p2.start()
    wait_connected(p1, p2, share.tracker_seq)
    start_seconds = time.perf_counter() - t

    # the populated share is what the peers see, and they fetch nothing to get there
    rng = random.Random(seed)
    for i in [0, n - 1, *rng.sample(range(n), 5)]:
        got = p2.path(rel_path(i)).read_bytes()
        assert got == content(i), f"p2 shows {rel_path(i)} as {got!r}"
    assert len(os.listdir(p2.path("d000"))) == min(n, PER_DIR)
    s2 = status(p2)
    assert s2 is not None and not s2["stale"] and s2["bytes_received"] == 0 and s2["outbox"] == 0, s2
    assert s2["tracker"]["last_seq"] == share.tracker_seq, s2["tracker"]
    return Setup(n, cluster, p1, p2, share, start_seconds, rng.sample(range(n), runs + 1))


def finish(setup: Setup, warmup: float, times: list[float]) -> Result:
    cluster, p1, p2 = setup.cluster, setup.p1, setup.p2
    tpid = cluster.tracker.pid
    result = Result(
        setup.n, times, warmup, setup.share, setup.start_seconds,
        proc_status_kib(tpid, "VmRSS"), proc_status_kib(tpid, "VmHWM"),
        {p.name: proc_status_kib(p.pid, "VmRSS") for p in (p1, p2)},
        sum(f.stat().st_size for f in cluster.tracker.state_dir.glob("tracker.db*")),
    )
    print(f"[{setup.n} files] close on p1 -> readable on p2: median {result.median * 1000:.1f} ms "
          f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}, {len(times)} runs; "
          f"warm-up {warmup * 1000:.1f} ms); tracker VmRSS {result.tracker_rss_kib / 1024:.1f} MiB, "
          f"VmHWM {result.tracker_hwm_kib / 1024:.1f} MiB", flush=True)
    problems = cluster.logs.unexpected()
    if problems:
        print(f"[{setup.n} files] warning: errors in process logs:\n" + "\n".join(problems), flush=True)
    return result


def measure(top: Path, sizes: Sequence[int], runs: int, seed: int) -> list[Result]:
    """Set every share up, then time changes in turn (share A, share B, share B, share A, ...)
    so that load from anything else on the machine falls on every size alike."""
    clusters: list[Cluster] = []
    try:
        setups = [set_up(top, n, runs, seed, clusters) for n in sizes]
        warmups = [change_once(s.p1, s.p2, s.picks[0], 1) for s in setups]
        times: list[list[float]] = [[] for _ in setups]
        for k in range(runs):
            order = range(len(setups)) if k % 2 == 0 else reversed(range(len(setups)))
            for j in order:
                s = setups[j]
                times[j].append(change_once(s.p1, s.p2, s.picks[k + 1], 1))
        return [finish(s, w, t) for s, w, t in zip(setups, warmups, times, strict=True)]
    finally:
        for cluster in clusters:
            cluster.close()


# --------------------------------------------------------------------------- report


def table(results: list[Result]) -> str:
    base = results[0]
    lines = ["| files in share | change → readable on p2 (median) | min / max | ratio to "
             f"{base.n:,} | tracker VmRSS / VmHWM | tracker.db | peer VmRSS p1 / p2 |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r.n:,} | {r.median * 1000:.1f} ms | {min(r.times) * 1000:.1f} / {max(r.times) * 1000:.1f} ms "
            f"| {r.median / base.median:.2f} | {r.tracker_rss_kib / 1024:.1f} / {r.tracker_hwm_kib / 1024:.1f} MiB "
            f"| {r.tracker_db_bytes / 2**20:.1f} MiB | {r.peer_rss_kib['p1'] / 1024:.1f} / "
            f"{r.peer_rss_kib['p2'] / 1024:.1f} MiB |")
    return "\n".join(lines)


def append_results(results: list[Result], command: str, elapsed: float, others: int) -> None:
    ratio = results[-1].median / results[0].median
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    notes = [
        f"- {r.n:,} files: populated in {r.share.seconds['total']:.1f} s (tracker "
        f"{r.share.seconds['tracker']:.1f} s, each store ~{r.share.seconds['p2']:.1f} s); tracker + 2 "
        f"peers up and caught up in {r.start_seconds:.1f} s; warm-up change {r.warmup * 1000:.1f} ms; "
        f"runs (ms): {', '.join(f'{t * 1000:.1f}' for t in r.times)}"
        for r in results
    ]
    section = [
        f"## scale — {now}",
        "",
        f"- command: `{command}`",
        f"- machine: {machine()}",
        f"- syncfs commit: {git_head()}; run took {elapsed:.0f} s",
        f"- load average (1/5/15 min) at the end: {load()}; other syncfs/tracker processes at the start: "
        f"{others}, at the end: {others_running()}",
        "",
        "Share populated without FUSE (tracker state via `TrackerState.apply_update` in batches of "
        f"{BATCH}, each peer's store via `Store.insert_node`/`index_chunks`, {PER_DIR} files per "
        "directory, 20-120 bytes each); then, for every size at once, a tracker + 2 FUSE peers as "
        "processes; one random file rewritten through p1's mount per run, timed from close() until "
        "p2 reads the new bytes through its mount (1 ms polling), runs alternating between the "
        "sizes so that background load hits them alike. Tracker RSS read from /proc after the runs.",
        "",
        table(results),
        "",
        f"Ratio {results[-1].n:,} / {results[0].n:,} files: **{ratio:.2f}** (target ≤ 1.5: "
        f"{'met' if ratio <= 1.5 else '**missed**'}).",
        "",
        "Notes:",
        "",
        *notes,
        "",
    ]
    with open(RESULTS, "a") as f:
        f.write("\n" + "\n".join(section))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,100000", help="share sizes, comma-separated, smallest first")
    parser.add_argument("--runs", type=int, default=25, help="timed changes per size (after one warm-up)")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if not sizes or any(s < args.runs + 8 for s in sizes):
        parser.error(f"every size must be at least runs + 8 = {args.runs + 8}")

    reason = fuse_unavailable_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)

    command = "python bench/scale.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:]) if a != "--no-record")
    others = others_running()
    top = Path(tempfile.mkdtemp(prefix="syncfs-bench-scale-"))
    print(f"{command}: {machine()}; temp dir {top}; load {load()}", flush=True)
    if others:
        print(f"warning: {others} other syncfs/tracker processes are running", flush=True)
    t0 = time.perf_counter()
    results: list[Result] = []
    try:
        results = measure(top, sizes, args.runs, args.seed)
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(top, ignore_errors=True)
    elapsed = time.perf_counter() - t0
    print("\n" + table(results))
    if len(results) > 1:
        ratio = results[-1].median / results[0].median
        print(f"\nratio {results[-1].n:,} / {results[0].n:,} files: {ratio:.2f} (target <= 1.5)")
    if not args.no_record:
        append_results(results, command, elapsed, others)
        print(f"appended to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
