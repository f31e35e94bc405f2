#!/usr/bin/env python3
"""Metadata benchmark of syncfs (issue 19): trees of small files through the mount and on
the other peer soon after, each figure a ratio against a floor measured in the same run.

    python bench/metadata.py [--quick] [--runs N] [--no-record] [--no-profile]

The tree is a tarball made here from this Python's standard library (no network):
everything under ``sysconfig.get_paths()["stdlib"]`` but site-packages, __pycache__ and
config-* (``--quick``: a few of its packages). Work, in a plain directory, through the
minimal pyfuse3 passthrough (bench/floors.py, the floor) and through a syncfs mount with a
second peer online: ``tar -xzf``, 500 files made by a shell loop of ``echo x > f$i``,
``ls -laR`` and ``du -s`` of the tree (each after the 1 s entry/attribute timeouts ran
out), ``rm -rf`` of it. Before each syncfs step both peers are settled (the second has
everything, the first nothing left to send), so the step measures the mount, not the
background sync of the step before.

End to end: from the start of ``tar -xzf`` on one peer until the other's mount lists the
whole tree with the right sizes (polled), mount → mount and watched directory
(``syncfs sync``) → mount, against unpacking into a plain directory and streaming it with
``tar`` over a loopback TCP socket into another (a pair of processes).

Then, unless ``--no-profile``, one more pass of each step with the peers restarted under
cProfile and the mount with ``SYNCFS_PROFILE`` (its per-handler timing), reported as notes
(bench/profiles.py).
Processes are started as the end-to-end tests start them (tests/harness.py), under one temp
dir, and always unmounted and killed; results are appended to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT, ROOT / "tests", ROOT / "bench"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))
from floors import MinimalFuse, end, first_line, start_script  # noqa: E402
from harness import Cluster, PeerProc, fuse_unavailable_reason, wait_for  # noqa: E402
from profiles import ProfiledPeer, ProfiledSync, handler_lines, shares  # noqa: E402
from transfer import FLOOR, Report, Row, append_results, load, machine, others_running, secs, status  # noqa: E402

from syncfs.profiling import ENV as PROFILE_ENV  # noqa: E402

BASELINE_HOST = "127.0.0.100"
QUICK_PACKAGES = ("asyncio", "email", "json", "xml", "importlib", "unittest")
SMALL_FILES = 500
CACHE_TIMEOUT = 1.0  # the entry/attribute timeout of syncfs and of the floor
SETTLE_TIMEOUT = 600.0
POLL = 0.1
STEPS = ("tar", "small", "ls", "du", "rm")
WHAT = {
    "tar": "`tar -xzf` of the tree",
    "small": f"{SMALL_FILES} files by `echo x > f$i`",
    "ls": "`ls -laR` of the tree",
    "du": "`du -s` of the tree",
    "rm": "`rm -rf` of the tree",
}
TARGETS = {"tar": "≤ 0.5", "small": "≤ 1.0", "ls": "≤ 0.2", "du": "≤ 0.2", "rm": "≤ 0.5"}
E2E_TARGET = "≤ 20"


# --------------------------------------------------------------------------- the tree


@dataclass
class Tree:
    tarball: Path
    expected: dict[str, tuple[str, int]]  # rel path -> (kind, size) below tree/
    files: int
    bytes: int
    source: Path


def make_tree(top: Path, quick: bool) -> Tree:
    """A tar.gz of this Python's standard library as ``tree/...``, and what it holds."""
    src = Path(sysconfig.get_paths()["stdlib"])

    def keep(rel: str) -> bool:
        first = rel.split("/", 1)[0]
        if first == "site-packages" or first.startswith("config-") or "__pycache__" in rel.split("/"):
            return False
        return not quick or first in QUICK_PACKAGES or ("/" not in rel and rel.endswith(".py"))

    expected: dict[str, tuple[str, int]] = {}
    tarball = top / "tree.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(src, arcname="tree", recursive=False)
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            base = os.path.relpath(dirpath, src)
            for name in [*dirnames, *sorted(filenames)]:
                rel = os.path.normpath(os.path.join(base, name))
                if not keep(rel):
                    continue
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                kind = "symlink" if os.path.islink(path) else "dir" if os.path.isdir(path) else "file"
                expected[rel] = (kind, st.st_size if kind == "file" else 0)
                tar.add(path, arcname=f"tree/{rel}", recursive=False)
            dirnames[:] = [d for d in dirnames if keep(os.path.normpath(os.path.join(base, d)))]
    files = sum(1 for k, _ in expected.values() if k == "file")
    return Tree(tarball, expected, files, sum(s for _, s in expected.values()), src)


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """rel path -> (kind, size) of everything below ``root`` (lstat, no reads)."""
    out: dict[str, tuple[str, int]] = {}

    def walk(d: Path, rel: str) -> None:
        with os.scandir(d) as it:
            for e in it:
                r = f"{rel}/{e.name}" if rel else e.name
                st = e.stat(follow_symlinks=False)
                if e.is_symlink():
                    out[r] = ("symlink", 0)
                elif e.is_dir(follow_symlinks=False):
                    out[r] = ("dir", 0)
                    walk(Path(e.path), r)
                else:
                    out[r] = ("file", st.st_size)

    try:
        walk(root, "")
    except OSError:
        pass
    return out


def wait_tree(root: Path, want: dict[str, tuple[str, int]], timeout: float) -> float:
    """perf_counter when ``root`` first held exactly ``want``; AssertionError after ``timeout``."""
    deadline = time.perf_counter() + timeout
    while True:
        got = snapshot(root)
        if got == want:
            return time.perf_counter()
        if time.perf_counter() > deadline:
            missing = len(set(want) - set(got))
            raise AssertionError(f"{root}: {len(got)} of {len(want)} entries after {timeout:g}s "
                                 f"({missing} missing)")
        time.sleep(POLL)


# --------------------------------------------------------------------------- the work


def timed(cmd: Sequence[str] | str, cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, shell=isinstance(cmd, str), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t0


def step(name: str, base: Path, tree: Tree) -> float:
    """Run step ``name`` in ``base`` (which holds ``tree/`` for ls, du, rm); seconds."""
    if name == "tar":
        return timed(["tar", "-xzf", str(tree.tarball)], base)
    if name == "small":
        (base / "small").mkdir()
        return timed(f"for i in $(seq {SMALL_FILES}); do echo x > f$i; done", base / "small")
    time.sleep(CACHE_TIMEOUT + 0.1)  # what the kernel cached of the step before has run out
    if name == "ls":
        return timed(["ls", "-laR", "tree"], base)
    if name == "du":
        return timed(["du", "-s", "tree"], base)
    took = timed(["rm", "-rf", "tree"], base)
    shutil.rmtree(base / "small", ignore_errors=True)
    return took


# the plain end-to-end baseline: tar's stream over loopback TCP into another directory
UNTAR = r"""
import socket, subprocess, sys
srv = socket.create_server((sys.argv[1], 0))
print(srv.getsockname()[1], flush=True)
while True:
    conn, _ = srv.accept()
    with conn:
        subprocess.run(["tar", "-xf", "-", "-C", sys.argv[2]], stdin=conn.fileno(), check=True)
        conn.sendall(b"k")
"""


class TarOverTcp:
    def __init__(self, workdir: Path) -> None:
        self.src, self.dst = workdir / "src", workdir / "dst"
        self.src.mkdir(parents=True)
        self.dst.mkdir()
        self.proc = start_script(UNTAR, BASELINE_HOST, str(self.dst))
        line = first_line(self.proc)
        if not line:
            end(self.proc)
            raise RuntimeError("the tar receiver did not start")
        self.port = int(line)

    def once(self, tree: Tree) -> float:
        """Unpack into src, stream src/tree to dst; seconds until dst has it all."""
        t0 = time.perf_counter()
        subprocess.run(["tar", "-xzf", str(tree.tarball)], cwd=self.src, check=True)
        with socket.create_connection((BASELINE_HOST, self.port)) as s:
            subprocess.run(["tar", "-cf", "-", "tree"], cwd=self.src, stdout=s.fileno(), check=True)
            s.shutdown(socket.SHUT_WR)
            if s.recv(1) != b"k":
                raise RuntimeError("the tar receiver did not acknowledge")
        took = time.perf_counter() - t0
        if snapshot(self.dst / "tree") != tree.expected:
            raise RuntimeError("the tar-over-TCP copy differs from the tree")
        for d in (self.src, self.dst):
            shutil.rmtree(d / "tree")
        return took

    def close(self) -> None:
        end(self.proc)


# --------------------------------------------------------------------------- bench


def settled(origin: PeerProc, receiver: PeerProc) -> bool:
    a, b = status(origin), status(receiver)
    return a is not None and b is not None and a["outbox"] == 0 and not b["stale"] and b["outbox"] == 0


@dataclass
class Bench:
    top: Path
    tree: Tree
    runs: int
    report: Report
    profile: bool
    times: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # target -> step -> seconds
    clusters: list[Cluster] = field(default_factory=list)
    floors: list[MinimalFuse] = field(default_factory=list)

    def add(self, target: str, name: str, seconds: float) -> None:
        self.times.setdefault(target, {}).setdefault(name, []).append(seconds)
        print(f"    {target:8} {name:6} {secs(seconds)}", flush=True)

    def cluster(self, name: str, *, watched_origin: bool) -> Cluster:
        """A tracker, the origin (a mount, or a watched directory) and a second mount, as
        ``Cluster.add_peer`` makes them but able to run under cProfile."""
        c = Cluster(self.top / name)
        self.clusters.append(c)
        c.tracker.start()
        for cls, prefix in ((ProfiledSync, "s") if watched_origin else (ProfiledPeer, "p"), (ProfiledPeer, "p")):
            index = len(c.peers) + 1
            peer = cls(index, c.tmp_path / f"{prefix}{index}", c.tracker)
            c.peers.append(peer)
            c.logs.procs.append(peer)
            peer.start()
        return c

    def close_all(self) -> None:
        for f in self.floors:
            f.close()
        for c in self.clusters:
            c.close()
            problems = c.logs.unexpected()
            if problems:
                self.report.note(f"{c.tmp_path.name}: {len(problems)} error record(s) in logs, first: "
                                 f"`{problems[0].splitlines()[0][:200]}`")
        self.floors.clear()
        self.clusters.clear()

    @staticmethod
    def restart(peers: Sequence[PeerProc], cprofile: Sequence[Path | None], handlers: Path | None = None) -> None:
        """Stop ``peers`` (which writes the profiles of their last run), start them again
        under cProfile into ``cprofile``; the first with SYNCFS_PROFILE=``handlers``."""
        for p in peers:
            p.stop()
        for i, (p, out) in enumerate(zip(peers, cprofile, strict=True)):
            assert isinstance(p, (ProfiledPeer, ProfiledSync))
            p.cprofile = out
            if handlers is not None and i == 0:
                os.environ[PROFILE_ENV] = str(handlers)
            try:
                p.start()
            finally:
                os.environ.pop(PROFILE_ENV, None)

    # the work in three places -------------------------------------------------------------

    def work(self) -> None:
        plain = self.top / "plain"
        floor = MinimalFuse(self.top / "floor")
        self.floors.append(floor)
        c = self.cluster("work", watched_origin=False)
        p1, p2 = c.peers
        bases = {"plain": plain, "floor": floor.mnt, "syncfs": p1.mnt}
        plain.mkdir()
        for run in range(self.runs):
            print(f"  run {run + 1}/{self.runs}", flush=True)
            for target, base in bases.items():
                for name in STEPS:
                    if target == "syncfs":
                        self.settle(p1, p2, name)
                    took = step(name, base, self.tree)
                    t_end = time.perf_counter()
                    self.add(target, name, took)
                    if target == "syncfs" and name == "tar":
                        # end to end, mount -> mount: the unpack, then until p2 lists it all
                        done = wait_tree(p2.path("tree"), self.tree.expected, SETTLE_TIMEOUT)
                        self.add("m2m", "e2e", took + done - t_end)
        self.settle(p1, p2, "end")
        if self.profile:
            self.profile_work(c)

    def settle(self, p1: PeerProc, p2: PeerProc, before: str) -> None:
        t0 = time.perf_counter()
        wait_for(lambda: settled(p1, p2), timeout=SETTLE_TIMEOUT, interval=POLL, what=f"settled before {before}")
        took = time.perf_counter() - t0
        self.times.setdefault("settle", {}).setdefault(before, []).append(took)

    def profile_work(self, c: Cluster) -> None:
        """Each step once more with p1 restarted under SYNCFS_PROFILE, py-spy on p1 and p2."""
        p1, p2 = c.peers
        prof = self.top / "profiles"
        prof.mkdir(exist_ok=True)
        for name in STEPS:
            out = [prof / f"{name}-p1.prof", prof / f"{name}-p2.prof"]
            self.restart([p1, p2], out, prof / f"{name}-p1.json")
            self.settle(p1, p2, f"profiled {name}")
            took = step(name, p1.mnt, self.tree)
            t_local = time.perf_counter()
            if name in ("tar", "small", "rm"):
                self.settle(p1, p2, f"profiled {name} (applied on p2)")
            after = time.perf_counter() - t_local
            self.restart([p1, p2], [None, None])
            self.report.note(f"profiled {name} ({secs(took)} under cProfile; p2 settled {secs(after)} after it). "
                             f"SYNCFS_PROFILE on p1: {handler_lines(prof / f'{name}-p1.json')}. "
                             f"cProfile p1 (the mount doing it): {shares(out[0])}. "
                             f"cProfile p2 (applying what p1 sent): {shares(out[1])}")

    # end to end ---------------------------------------------------------------------------

    def end_to_end(self) -> None:
        base = TarOverTcp(self.top / "tcp")
        try:
            for _ in range(self.runs):
                self.add("plain", "e2e", base.once(self.tree))
        finally:
            base.close()
        c = self.cluster("watched", watched_origin=True)
        s1, p2 = c.peers
        out = [self.top / "w-s1.prof", self.top / "w-p2.prof"]
        for run in range(self.runs + (1 if self.profile else 0)):
            profiled = run == self.runs
            if profiled:
                self.restart([s1, p2], out)
            self.settle(s1, p2, "watched e2e")
            t0 = time.perf_counter()
            took = step("tar", s1.mnt, self.tree)
            done = wait_tree(p2.path("tree"), self.tree.expected, SETTLE_TIMEOUT)
            if profiled:
                self.settle(s1, p2, "profiled watched e2e (complete on p2)")
                self.restart([s1, p2], [None, None])
                self.report.note(f"profiled watched → mount (unpack {secs(took)}, p2 listed all {secs(done - t0)} "
                                 f"after the start, under cProfile). cProfile s1 (the watched directory sending): "
                                 f"{shares(out[0])}. cProfile p2 (applying): {shares(out[1])}")
            else:
                self.add("w2m", "e2e", done - t0)
                self.add("w2m", "unpack", took)
            shutil.rmtree(s1.mnt / "tree")
            wait_for(lambda: not p2.path("tree").exists(), timeout=SETTLE_TIMEOUT, interval=POLL,
                         what="the tree gone from p2")

    # results ------------------------------------------------------------------------------

    def rows(self) -> None:
        med = {t: {n: statistics.median(v) for n, v in steps.items()} for t, steps in self.times.items()}
        runs = self.runs
        for i, name in enumerate(STEPS, 1):
            s, f, p = (med.get(t, {}).get(name) for t in ("syncfs", "floor", "plain"))
            if s is None or f is None or p is None:
                continue
            ratio = s / f
            target = TARGETS[name]
            self.report.add(Row(f"m{i}", f"{WHAT[name]}, second peer online (median of {runs})", secs(s),
                                f"{secs(f)} (passthrough floor); plain dir {secs(p)}", f"{ratio:.2f}",
                                target, ratio <= float(target.split()[-1])))
        for i, name in enumerate(STEPS, 1):
            f, p = med.get("floor", {}).get(name), med.get("plain", {}).get(name)
            if f is not None and p is not None:
                self.report.add(Row(f"m{i}f", f"floor of m{i}: the minimal pyfuse3 passthrough", secs(f),
                                    f"{secs(p)} (plain dir)", f"{f / p:.1f}", FLOOR, None))
        base = med.get("plain", {}).get("e2e")
        for item, key, what in (("e1", "m2m", "mount → mount"), ("e2", "w2m", "watched directory → mount")):
            v = med.get(key, {}).get("e2e")
            if v is None or base is None:
                continue
            self.report.add(Row(item, f"end to end, {what}: start of `tar -xzf` until the other mount lists "
                                      f"every entry with its size (median of {runs})", secs(v),
                                f"{secs(base)} (unpack + tar over loopback TCP)", f"{v / base:.1f}",
                                E2E_TARGET, v / base <= 20))
        for target, steps in self.times.items():
            self.report.note(f"{target}: " + "; ".join(f"{n} " + ", ".join(secs(x) for x in v)
                                                       for n, v in steps.items()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"a smaller tree ({', '.join(QUICK_PACKAGES)})")
    parser.add_argument("--runs", type=int, default=3, help="runs of each measure (default 3; medians)")
    parser.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    parser.add_argument("--no-profile", action="store_true", help="skip the profiled pass")
    args = parser.parse_args(argv)
    reason = fuse_unavailable_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    top = Path(tempfile.mkdtemp(prefix="syncfs-bench-"))

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    report = Report()
    report.others_at_start = others_running()
    command = "python bench/metadata.py" + (" --quick" if args.quick else "") + \
        (f" --runs {args.runs}" if args.runs != 3 else "") + (" --no-profile" if args.no_profile else "")
    t0 = time.perf_counter()
    bench: Bench | None = None
    try:
        tree = make_tree(top, args.quick)
        report.note(f"tree: {tree.source} less site-packages, __pycache__, config-*: {len(tree.expected)} "
                    f"entries ({tree.files} files, {len(tree.expected) - tree.files} directories/links), "
                    f"{tree.bytes / 2**20:.1f} MiB; tarball {tree.tarball.stat().st_size / 2**20:.1f} MiB")
        print(f"{command}: {machine()}; temp dir {top}; load {load()}", flush=True)
        bench = Bench(top, tree, args.runs, report, profile=not args.no_profile)
        for name, fn in (("work", bench.work), ("end to end", bench.end_to_end)):
            print(f"\n== {name}", flush=True)
            try:
                fn()
            except Exception as exc:  # record what was measured, go on
                report.note(f"{name} failed: {type(exc).__name__}: {str(exc)[:300]}")
                bench.close_all()
        bench.close_all()
        bench.rows()
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        if bench is not None:
            bench.close_all()
        shutil.rmtree(top, ignore_errors=True)
    print("\n" + report.table())
    if not args.no_record:
        append_results(report, command, time.perf_counter() - t0)
        print(f"\nappended to {(ROOT / 'bench' / 'RESULTS.md').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
