"""End-to-end harness: a real tracker and real FUSE peers as subprocesses on loopback.

Every process runs on its own loopback address (tracker 127.0.0.11, peer n on
127.0.0.{11+n}) with its own directories under the test's ``tmp_path``, logs to its own
file, and is stopped or killed by pid. Nothing here waits without a deadline, and
``Cluster.close`` always unmounts and kills everything it started, even after a failure.
The fixtures that use this live in ``conftest.py``.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple, TypeVar

import pytest

from syncfs.control import ControlError
from syncfs.control import request as control_request

ROOT = Path(__file__).resolve().parent.parent
SECRET = "syncfs-test-secret"
TRACKER_ADDR = "127.0.0.11"
TRACKER_INTERVAL = 0.5
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
KILL_TIMEOUT = 5.0
FUSERMOUNT_TIMEOUT = 10.0
READY_LINE = "syncfs tracker listening on "

T = TypeVar("T")


class HarnessError(AssertionError):
    """A process of the harness did not start, stop or behave as the test needs."""


# --------------------------------------------------------------------------- waiting


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 20.0,
    interval: float = 0.02,
    what: str = "condition",
) -> T:
    """Call ``predicate`` until it returns something truthy, and return that.

    An OSError or AssertionError raised by the predicate counts as "not yet" (files
    appear and vanish while peers sync); the last one is part of the timeout message.
    Raises AssertionError naming ``what`` when ``timeout`` seconds pass.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            result = predicate()
        except (OSError, AssertionError) as exc:
            last_exc = exc
        else:
            if result:
                return result
            last_exc = None
        if time.monotonic() >= deadline:
            detail = f" (last error: {type(last_exc).__name__}: {last_exc})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{detail}")
        time.sleep(interval)


# --------------------------------------------------------------------------- trees


class Node(NamedTuple):
    """What ``tree_snapshot`` records for one path; compares equal across peers."""

    kind: str  # "file", "dir", "symlink" or "other"
    mode: int  # permission bits (mode & 0o7777)
    size: int | None  # files and symlinks; None for directories
    mtime_ns: int | None  # files only
    sha256: str | None  # files only: hex digest of the content
    target: str | None  # symlinks only


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def tree_snapshot(root: str | os.PathLike[str]) -> dict[str, Node]:
    """Map each path below ``root`` (relative, '/'-separated) to its ``Node``.

    Never follows symlinks; reads every file's content (on a mount, that fetches it).
    The root itself is not included.
    """
    top = os.fspath(root)
    out: dict[str, Node] = {}

    def walk(dirpath: str, rel: str) -> None:
        with os.scandir(dirpath) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            relpath = f"{rel}/{entry.name}" if rel else entry.name
            st = entry.stat(follow_symlinks=False)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[relpath] = Node(
                    "symlink", mode, st.st_size, None, None, os.readlink(entry.path)
                )
            elif stat.S_ISDIR(st.st_mode):
                out[relpath] = Node("dir", mode, None, None, None, None)
                walk(entry.path, relpath)
            elif stat.S_ISREG(st.st_mode):
                try:
                    digest = _file_digest(entry.path)
                except OSError as exc:  # a read's EIO names no file: say which one timed out
                    raise OSError(exc.errno, f"{exc.strerror} reading {entry.path}") from exc
                out[relpath] = Node("file", mode, st.st_size, st.st_mtime_ns, digest, None)
            else:
                out[relpath] = Node("other", mode, None, None, None, None)

    walk(top, "")
    return out


def describe_tree_diff(a: dict[str, Node], b: dict[str, Node], limit: int = 10) -> str:
    """A short human-readable account of how two snapshots differ."""
    lines = []
    for path in sorted(a.keys() | b.keys()):
        if a.get(path) != b.get(path):
            lines.append(f"  {path}: {a.get(path)} != {b.get(path)}")
    more = f"\n  ... and {len(lines) - limit} more" if len(lines) > limit else ""
    return "\n".join(lines[:limit]) + more


def _root_of(peer: PeerProc | str | os.PathLike[str]) -> str:
    return os.fspath(peer.mnt) if isinstance(peer, PeerProc) else os.fspath(peer)


def wait_same_tree(
    peers: Sequence[PeerProc | str | os.PathLike[str]], timeout: float = 20.0
) -> dict[str, Node]:
    """Wait until every peer's mount (or directory) has the same tree; return it."""
    roots = [_root_of(p) for p in peers]
    if not roots:
        raise ValueError("wait_same_tree needs at least one tree")
    last: list[dict[str, Node]] = []

    def same() -> list[dict[str, Node]] | None:
        last[:] = [tree_snapshot(r) for r in roots]
        # a one-element list: truthy even when the common tree is empty
        return [last[0]] if all(s == last[0] for s in last[1:]) else None

    try:
        result = wait_for(same, timeout=timeout, interval=0.05, what=f"the same tree in {roots}")
    except AssertionError as exc:
        if len(last) == len(roots):
            diffs = [
                f"{roots[0]} vs {roots[i]}:\n{describe_tree_diff(last[0], last[i])}"
                for i in range(1, len(roots))
                if last[i] != last[0]
            ]
            raise AssertionError(f"{exc}\n" + "\n".join(diffs)) from None
        raise
    return result[0]


def crash_now(cluster: Cluster, peers: Sequence[PeerProc], rng: random.Random, *,
              tracker: float, peer: float) -> bool:
    """For a randomized workload: with probability ``tracker`` SIGKILL and restart the
    tracker, else with ``peer`` a peer drawn from ``peers`` (often mid-transfer). True if
    it did either; one draw from ``rng``, and one more for the peer."""
    roll = rng.random()
    if roll < tracker:
        cluster.tracker.kill()
        cluster.tracker.start()
        return True
    if roll < tracker + peer:
        victim = rng.choice(peers)
        victim.kill()
        victim.start()
        return True
    return False


# --------------------------------------------------------------------------- mounts


def _unescape_mount_field(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_info(path: str | os.PathLike[str]) -> tuple[int, int, str] | None:
    """(major, minor, fstype) of the mount at ``path`` per /proc/self/mountinfo, or None.

    Unlike os.path.ismount this also sees a dead FUSE mount (whose stat fails ENOTCONN).
    """
    want = os.path.abspath(os.fspath(path))
    found = None
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                sep = fields.index("-")
                if _unescape_mount_field(fields[4]) == want:
                    major, minor = fields[2].split(":")
                    found = (int(major), int(minor), fields[sep + 1])  # the last one wins
    except (OSError, ValueError, IndexError):
        return None
    return found


def is_mounted(path: str | os.PathLike[str]) -> bool:
    return mount_info(path) is not None


def answers(path: str | os.PathLike[str], timeout: float) -> bool:
    """True if ``os.path.ismount(path)`` comes back True within ``timeout`` seconds.

    The check runs in a daemon thread: a FUSE daemon that never answers leaves that
    thread blocked (until the mount goes away), never the caller.
    """
    result: list[bool] = []
    probe = threading.Thread(
        target=lambda: result.append(os.path.ismount(path)), name="mount-probe", daemon=True
    )
    probe.start()
    probe.join(max(0.0, timeout))
    return bool(result and result[0])


def fusermount(path: str | os.PathLike[str], lazy: bool = False) -> bool:
    """``fusermount3 -u [-z] path``; True if it succeeded. Never raises, never hangs."""
    cmd = ["fusermount3", "-u", "-q"] + (["-z"] if lazy else []) + [os.fspath(path)]
    try:
        result = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=FUSERMOUNT_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def abort_fuse_connection(path: str | os.PathLike[str]) -> None:
    """Abort the kernel's FUSE connection of the mount at ``path`` (unsticks a hung daemon)."""
    info = mount_info(path)
    if info is None or not info[2].startswith("fuse"):
        return
    major, minor, _ = info
    with contextlib.suppress(OSError):
        Path(f"/sys/fs/fuse/connections/{(major << 20) | minor}/abort").write_text("1")


def force_unmount(path: str | os.PathLike[str]) -> None:
    """Get rid of whatever is mounted at ``path``, live or dead, without waiting on it."""
    for _ in range(5):  # stacked mounts come off one at a time
        if not is_mounted(path):
            return
        if not fusermount(path, lazy=True):
            abort_fuse_connection(path)
            fusermount(path, lazy=True)


def fuse_unavailable_reason() -> str | None:
    """Why this machine cannot mount FUSE file systems, or None if it can."""
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed (apt-get install fuse3; see scripts/setup.sh)"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist (no FUSE in this kernel or container)"
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR))
    except OSError as exc:
        return f"/dev/fuse cannot be opened: {exc.strerror}"
    return None


def require_fuse() -> None:
    """Skip the test when FUSE is unavailable; under CI (CI=true) fail instead."""
    reason = fuse_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"FUSE is required under CI: {reason}", pytrace=False)
    pytest.skip(f"end-to-end test needs FUSE: {reason}")


# --------------------------------------------------------------------------- the command line


def syncfs_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run ``syncfs ARGS...`` (this checkout's) and return what it did, text captured."""
    return subprocess.run([sys.executable, "-m", "syncfs", *args], capture_output=True, text=True, timeout=timeout)


def cli_status(peer: PeerProc) -> dict:
    """``syncfs status DIR --json`` of a running peer, which must succeed."""
    done = syncfs_cli("status", str(peer.mnt), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# --------------------------------------------------------------------------- processes


def free_port(host: str = TRACKER_ADDR) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def can_connect(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


_LIVE: set[ManagedProc] = set()


@atexit.register
def _kill_leftovers() -> None:
    # last resort if a fixture's teardown itself was interrupted
    for proc in list(_LIVE):
        with contextlib.suppress(Exception):
            proc.kill()


class ManagedProc:
    """One subprocess with its own log file and console file, stopped by pid.

    The process runs in a session of its own, so a signal to its process group also
    reaches any children it started, and nothing reaches it from the terminal.
    """

    name: str

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.workdir = workdir
        self.log_file = workdir / f"{name}.log"
        self.console_file = workdir / f"{name}.console"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.expected_log: list[re.Pattern[str]] = []

    def expect_log(self, pattern: str) -> None:
        """Let this process's log errors/tracebacks matching ``pattern`` (re.search) pass."""
        self.expected_log.append(re.compile(pattern, re.M))

    def command(self) -> list[str]:
        raise NotImplementedError

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        pid = self.proc.pid if self.proc else None
        return f"<{type(self).__name__} {self.name} pid={pid} {state}>"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _spawn(self) -> None:
        if self.running:
            raise HarnessError(f"{self.name} is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONFAULTHANDLER"] = "1"
        self.starts += 1
        with open(self.console_file, "ab") as console:
            console.write(f"--- start {self.starts}: {' '.join(self.command())}\n".encode())
            console.flush()
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _LIVE.add(self)

    def _signal(self, sig: int) -> None:
        """Send ``sig`` to the process group of our child, if our child is still unreaped."""
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)

    def _wait(self, timeout: float) -> bool:
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def _reap(self) -> None:
        """SIGKILL what is left of the process (and its group) and wait for it, bounded."""
        if self.proc is None:
            _LIVE.discard(self)
            return
        if self.proc.poll() is None:
            self._signal(signal.SIGKILL)
            self._wait(KILL_TIMEOUT)
        # children of a process that already exited: its pgid is still ours
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is not None:
            _LIVE.discard(self)

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def log_text(self) -> str:
        """The process's log file followed by its console output (stdout and stderr)."""
        parts = []
        for path in (self.log_file, self.console_file):
            try:
                text = path.read_text(errors="replace")
            except FileNotFoundError:
                continue
            parts.append(f"==> {path.name} <==\n{text}")
        return "\n".join(parts)

    def _fail_start(self, why: str) -> HarnessError:
        tail = self.log_text()[-6000:]
        return HarnessError(f"{self.name} {why}\n{tail}")

    def start(self) -> None:
        raise NotImplementedError

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError

    def restart(self) -> None:
        self.stop()
        self.start()


class TrackerProc(ManagedProc):
    """The tracker on 127.0.0.11 at a fixed port and state dir, both kept across restarts."""

    def __init__(
        self,
        workdir: Path,
        *,
        host: str = TRACKER_ADDR,
        port: int | None = None,
        secret: str = SECRET,
        interval: float = TRACKER_INTERVAL,
        extra_args: Sequence[str] = (),
    ) -> None:
        super().__init__("tracker", workdir)
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.secret = secret
        self.interval = interval
        self.state_dir = workdir / "state"
        self.extra_args = list(extra_args)
        # set for a stand-in tracker of a test; otherwise read from the tracker's certificate
        self.fingerprint: str | None = None

    @property
    def address(self) -> str:
        """HOST:PORT of the tracker."""
        return f"{self.host}:{self.port}"

    @property
    def token(self) -> str:
        """The join token peers' --tracker takes: this host and port, the fingerprint of the
        tracker's certificate (made on its first start) and the secret."""
        from syncfs.invite import Invite

        return str(Invite(self.host, self.port, self.tracker_id, self.secret))

    @property
    def tracker_id(self) -> str:
        """The fingerprint of the tracker's certificate (``fingerprint`` if set)."""
        if self.fingerprint is not None:
            return self.fingerprint
        pem = (self.state_dir / "identity" / "cert.pem").read_text()
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "tracker",
            "--host", self.host,
            "--port", str(self.port),
            "--state-dir", str(self.state_dir),
            "--secret", self.secret,
            "--interval", str(self.interval),
            "--log-file", str(self.log_file),
            *self.extra_args,
        ]  # fmt: skip

    def _announced(self, offset: int) -> bool:
        try:
            with open(self.console_file, "rb") as f:
                f.seek(offset)
                return READY_LINE.encode() in f.read()
        except FileNotFoundError:
            return False

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start and wait until it listens (its ready line, or a TCP connect succeeds)."""
        offset = self.console_file.stat().st_size if self.console_file.exists() else 0
        self._spawn()
        deadline = time.monotonic() + timeout
        while True:
            if self._announced(offset) or can_connect(self.host, self.port):
                return
            if not self.running:
                raise self._fail_start(f"exited with status {self.returncode} while starting")
            if time.monotonic() >= deadline:
                self._reap()
                raise self._fail_start(f"not listening on {self.address} after {timeout:g}s")
            time.sleep(0.02)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM and wait for a graceful exit; SIGKILL after ``timeout``."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            self._wait(timeout)
        self._reap()

    def kill(self) -> None:
        """SIGKILL, as a crash would end it."""
        self._reap()


class PeerProc(ManagedProc):
    """Peer ``index`` (1, 2, ...): ``syncfs mount`` on 127.0.0.{11+index}, in the foreground."""

    def __init__(
        self,
        index: int,
        workdir: Path,
        tracker: TrackerProc,
        *,
        secret: str = SECRET,
        extra_args: Sequence[str] = (),
    ) -> None:
        if not 1 <= index <= 243:
            raise ValueError(f"peer index {index} out of range")
        super().__init__(f"p{index}", workdir)
        self.index = index
        self.addr = f"127.0.0.{11 + index}"
        self.tracker = tracker
        self.secret = secret
        self.mnt = workdir / "mnt"
        self.cache_dir = workdir / "cache"
        self.extra_args = list(extra_args)

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "syncfs", "mount", str(self.mnt),
            "--tracker", self.tracker.token,
            "--listen", self.addr,
            "--cache-dir", str(self.cache_dir),
            "--foreground",
            "--log-file", str(self.log_file),
            *self.extra_args,
        ]  # fmt: skip

    def path(self, rel: str = "") -> Path:
        """A path inside this peer's mount."""
        return self.mnt / rel if rel else self.mnt

    def status(self) -> dict:
        """What the running peer is doing now, asked over its control socket (brief: without
        the figures that scan the whole tree, so it may be asked many times a second).
        Raises ControlError when the peer does not answer."""
        return control_request(self.cache_dir, {"t": "status", "brief": True})

    def settled(self) -> bool:
        """Nothing stale, nothing waiting for the tracker."""
        s = self.status()
        return not s["stale"] and s["outbox"] == 0

    @property
    def mounted(self) -> bool:
        """Running and mounted (a killed peer's dead mount does not count).

        Reads only /proc, never the mount itself, so it cannot hang on a stuck peer.
        """
        return self.running and is_mounted(self.mnt)

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Mount and wait until the mount answers; fail fast with the log if it exits."""
        if is_mounted(self.mnt):
            force_unmount(self.mnt)  # a leftover dead mount of an earlier run
        self.mnt.mkdir(parents=True, exist_ok=True)
        self._spawn()
        deadline = time.monotonic() + timeout
        while True:
            if self.mounted and answers(self.mnt, deadline - time.monotonic()):
                if self.running:
                    return
            if not self.running:
                force_unmount(self.mnt)
                raise self._fail_start(f"exited with status {self.returncode} before mounting")
            if time.monotonic() >= deadline:
                self.kill()
                raise self._fail_start(f"did not mount {self.mnt} within {timeout:g}s")
            time.sleep(0.02)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Unmount (``fusermount3 -u``) and wait for the process to exit.

        If the mount is busy, SIGTERM; after ``timeout``, lazy unmount and SIGKILL.
        """
        self._begin_stop()
        self._finish_stop(time.monotonic() + timeout)

    def _begin_stop(self) -> None:
        if self.running:
            if not (is_mounted(self.mnt) and fusermount(self.mnt)):
                self._signal(signal.SIGTERM)

    def _finish_stop(self, deadline: float) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._wait(max(0.0, deadline - time.monotonic()))
        if self.proc is not None and self.proc.poll() is None:
            force_unmount(self.mnt)
        self._reap()
        force_unmount(self.mnt)

    def kill(self) -> None:
        """SIGKILL by pid, then lazily unmount the dead mount it leaves behind."""
        self._reap()
        force_unmount(self.mnt)


class SyncProc(PeerProc):
    """A watched-directory peer: ``syncfs sync DIR`` on 127.0.0.{11+index}, in the foreground.

    ``mnt`` is its plain directory, so tree helpers treat it like a mount.
    """

    def __init__(self, index: int, workdir: Path, tracker: TrackerProc, **kwargs: object) -> None:
        super().__init__(index, workdir, tracker, **kwargs)  # type: ignore[arg-type]
        self.name = f"s{index}"
        self.log_file = workdir / f"{self.name}.log"
        self.console_file = workdir / f"{self.name}.console"
        self.mnt = workdir / "dir"

    def command(self) -> list[str]:
        cmd = super().command()
        cmd[3] = "sync"
        return cmd

    @property
    def mounted(self) -> bool:
        return self.running

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start watching and wait until the peer answers a status request."""
        self.mnt.mkdir(parents=True, exist_ok=True)
        self._spawn()
        deadline = time.monotonic() + timeout
        while not self._answers():
            if not self.running:
                raise self._fail_start(f"exited with status {self.returncode} before it was ready")
            if time.monotonic() >= deadline:
                self.kill()
                raise self._fail_start(f"was not ready within {timeout:g}s")
            time.sleep(0.02)

    def _answers(self) -> bool:
        try:
            self.status()
        except ControlError:
            return False  # not listening yet, or the socket of an earlier run
        return True

    def _begin_stop(self) -> None:
        self._signal(signal.SIGTERM)

    def _finish_stop(self, deadline: float) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._wait(max(0.0, deadline - time.monotonic()))
        self._reap()

    def kill(self) -> None:
        self._reap()


# --------------------------------------------------------------------------- log checks

_ERROR_LEVEL = re.compile(r"(?:^|[\s\[|])(ERROR|CRITICAL|FATAL)(?:[\s\]:|]|$)")
_TRACEBACK = "Traceback (most recent call last)"
_CHAIN = ("During handling of the above exception", "The above exception was the direct cause")


def log_problems(text: str) -> list[str]:
    """The ERROR/CRITICAL records and tracebacks in a log, each with its continuation lines."""
    lines = text.splitlines()
    problems = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if _TRACEBACK not in line and not _ERROR_LEVEL.search(line):
            i += 1
            continue
        block = [line]
        i += 1
        in_traceback = _TRACEBACK in line
        while i < len(lines):
            nxt = lines[i]
            if _TRACEBACK in nxt or nxt.startswith(_CHAIN):
                in_traceback = True
            elif nxt.startswith((" ", "\t")) or not nxt.strip():
                pass
            elif in_traceback:
                block.append(nxt)  # the exception line closes a traceback
                i += 1
                in_traceback = False
                if i + 1 < len(lines) and not lines[i].strip() and lines[i + 1].startswith(_CHAIN):
                    continue
                break
            else:
                break
            block.append(nxt)
            i += 1
        problems.append("\n".join(block).rstrip())
    return problems


class LogCheck:
    """Collects the processes of one test and the log errors the test expects."""

    def __init__(self) -> None:
        self.procs: list[ManagedProc] = []
        self.allowed: list[re.Pattern[str]] = []
        self.allow_all = False

    def expect_log(self, pattern: str, proc: ManagedProc | None = None) -> None:
        """Allow error records/tracebacks matching ``pattern`` (re.search), of ``proc`` or any."""
        if proc is not None:
            proc.expect_log(pattern)
        else:
            self.allowed.append(re.compile(pattern, re.M))

    def unexpected(self) -> list[str]:
        if self.allow_all:
            return []
        found = []
        for proc in self.procs:
            for problem in log_problems(proc.log_text()):
                if not any(pat.search(problem) for pat in [*self.allowed, *proc.expected_log]):
                    found.append(f"[{proc.name}] {problem}")
        return found

    def check(self) -> None:
        """Raise AssertionError listing every unexpected error record or traceback."""
        found = self.unexpected()
        if found:
            raise AssertionError(
                "unexpected errors in process logs (allow them with cluster.expect_log(...) "
                "or @pytest.mark.allow_log_errors):\n" + "\n".join(found)
            )


# --------------------------------------------------------------------------- cluster


class Cluster:
    """A tracker and any number of peers for one test, with their logs checked at the end."""

    def __init__(self, tmp_path: Path, *, interval: float = TRACKER_INTERVAL) -> None:
        self.tmp_path = tmp_path
        self.logs = LogCheck()
        self.tracker = TrackerProc(tmp_path / "tracker", interval=interval)
        self.logs.procs.append(self.tracker)
        self.peers: list[PeerProc] = []

    def expect_log(self, pattern: str, proc: ManagedProc | None = None) -> None:
        """Let log errors matching ``pattern`` (of ``proc``, or of any process) pass."""
        self.logs.expect_log(pattern, proc)

    def add_peer(self, *, start: bool = True, extra_args: Sequence[str] = (), watched: bool = False) -> PeerProc:
        """Create the next peer (p1 on 127.0.0.12, p2 on .13, ...), started unless told not;
        ``watched``: a plain directory kept by ``syncfs sync`` (named s1, s2, ...) instead of a mount."""
        index = len(self.peers) + 1
        cls, prefix = (SyncProc, "s") if watched else (PeerProc, "p")
        peer = cls(index, self.tmp_path / f"{prefix}{index}", self.tracker, extra_args=extra_args)
        self.peers.append(peer)
        self.logs.procs.append(peer)
        if start:
            peer.start()
        return peer

    def start_peers(self, n: int, *, extra_args: Sequence[str] = ()) -> list[PeerProc]:
        """Add and start ``n`` more peers; returns them."""
        return [self.add_peer(extra_args=extra_args) for _ in range(n)]

    def __iter__(self) -> Iterator[PeerProc]:
        return iter(self.peers)

    def procs(self) -> list[ManagedProc]:
        return [*self.peers, self.tracker]

    def close(self, timeout: float = STOP_TIMEOUT) -> None:
        """Unmount and stop everything (gracefully within ``timeout``, then by force).

        Bounded, and complete even if interrupted: the forced part runs in ``finally``.
        """
        try:
            for peer in self.peers:
                peer._begin_stop()
            deadline = time.monotonic() + timeout
            for peer in self.peers:
                peer._finish_stop(deadline)
            self.tracker.stop(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            for proc in self.procs():
                with contextlib.suppress(Exception):
                    proc.kill()


__all__ = [
    "Cluster",
    "HarnessError",
    "LogCheck",
    "ManagedProc",
    "Node",
    "PeerProc",
    "SECRET",
    "SyncProc",
    "TRACKER_ADDR",
    "TrackerProc",
    "can_connect",
    "cli_status",
    "describe_tree_diff",
    "force_unmount",
    "free_port",
    "fuse_unavailable_reason",
    "is_mounted",
    "log_problems",
    "require_fuse",
    "syncfs_cli",
    "tree_snapshot",
    "wait_for",
    "wait_same_tree",
]
