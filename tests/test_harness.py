"""Self-tests of the end-to-end harness: waiting, tree snapshots, log checks, processes.

The process tests run the real tracker and a stand-in FUSE peer (a trivial pyfuse3 file
system that takes the same command line), so the harness's start/stop/kill/unmount logic
is checked independently of the real peer.
"""

import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest
import trio
from harness import (
    SECRET,
    LogCheck,
    ManagedProc,
    Node,
    PeerProc,
    TrackerProc,
    can_connect,
    is_mounted,
    log_problems,
    require_fuse,
    tree_snapshot,
    wait_for,
    wait_same_tree,
)
from netkit import identity, join, tracker_fingerprint

from syncfs.handshake import HandshakeFailed

# ----------------------------------------------------------------------------- wait_for


def test_wait_for_returns_the_truthy_value() -> None:
    calls = []

    def pred() -> list[int]:
        calls.append(1)
        return calls if len(calls) >= 3 else []

    assert wait_for(pred, timeout=5, interval=0.001) == [1, 1, 1]


def test_wait_for_times_out_with_a_description() -> None:
    start = time.monotonic()
    with pytest.raises(AssertionError, match=r"timed out after 0.1s waiting for the moon"):
        wait_for(lambda: False, timeout=0.1, what="the moon")
    assert time.monotonic() - start < 2


def test_wait_for_treats_oserror_as_not_yet(tmp_path: Path) -> None:
    target = tmp_path / "later"
    with pytest.raises(AssertionError, match="FileNotFoundError"):
        wait_for(target.read_text, timeout=0.05, what="the file")
    target.write_text("x")
    assert wait_for(target.read_text, timeout=1) == "x"


def test_wait_for_lets_other_errors_through() -> None:
    with pytest.raises(ZeroDivisionError):
        wait_for(lambda: 1 / 0, timeout=1)


# ----------------------------------------------------------------------------- trees


def make_tree(root: Path) -> None:
    (root / "d" / "e").mkdir(parents=True)
    (root / "d" / "f.txt").write_bytes(b"hello")
    os.chmod(root / "d" / "f.txt", 0o640)
    os.symlink("d/f.txt", root / "link")
    os.symlink("nowhere", root / "d" / "dangling")
    os.utime(root / "d" / "f.txt", ns=(1_000_000_000, 1_234_567_890_123))


def test_tree_snapshot(tmp_path: Path) -> None:
    make_tree(tmp_path)
    snap = tree_snapshot(tmp_path)
    assert set(snap) == {"d", "d/e", "d/f.txt", "link", "d/dangling"}
    f = snap["d/f.txt"]
    assert f.kind == "file" and f.mode == 0o640 and f.size == 5
    assert f.mtime_ns == 1_234_567_890_123
    assert f.sha256 == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert snap["link"] == Node("symlink", 0o777, 7, None, None, "d/f.txt")
    assert snap["d/dangling"].target == "nowhere"
    assert snap["d"].kind == "dir" and snap["d"].size is None


def test_tree_snapshot_does_not_follow_symlinks(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_text("1")
    os.symlink(".", tmp_path / "a" / "loop")
    os.symlink(str(tmp_path / "a"), tmp_path / "b")
    assert set(tree_snapshot(tmp_path)) == {"a", "a/x", "a/loop", "b"}


def test_wait_same_tree(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    assert wait_same_tree([a, b], timeout=1) == {}
    make_tree(a)
    make_tree(b)
    assert wait_same_tree([a, b], timeout=1) == tree_snapshot(a)
    (b / "d" / "f.txt").write_bytes(b"HELLO")
    os.utime(b / "d" / "f.txt", ns=(1_000_000_000, 1_234_567_890_123))
    with pytest.raises(AssertionError, match=r"d/f.txt"):
        wait_same_tree([a, b], timeout=0.2)


# ----------------------------------------------------------------------------- logs

SAMPLE_LOG = """\
2025-01-01 10:00:00,000 INFO tracker.server: peer p1 joined; no error here
2025-01-01 10:00:00,001 WARNING tracker.server: ERRORS are not a level
2025-01-01 10:00:01,000 ERROR syncfs.engine: fetch failed
Traceback (most recent call last):
  File "x.py", line 1, in <module>
    boom()
ValueError: bad thing

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "x.py", line 3, in <module>
KeyError: 'k'
2025-01-01 10:00:02,000 INFO syncfs.engine: carried on
2025-01-01 10:00:03,000 CRITICAL syncfs.mount: gone
Traceback (most recent call last):
  File "y.py", line 1, in <module>
OSError: [Errno 5] EIO
"""


def test_log_problems_groups_records_with_their_tracebacks() -> None:
    problems = log_problems(SAMPLE_LOG)
    assert len(problems) == 2
    assert problems[0].startswith("2025-01-01 10:00:01,000 ERROR syncfs.engine: fetch failed")
    assert problems[0].endswith("KeyError: 'k'")
    assert "CRITICAL syncfs.mount: gone\nTraceback" in problems[1]
    assert problems[1].endswith("OSError: [Errno 5] EIO")
    bare = "Traceback (most recent call last):\n  File 'x'\nE: e"
    assert log_problems(bare + "\nINFO ok\n") == [bare]


class FakeProc(ManagedProc):
    def __init__(self, workdir: Path, text: str) -> None:
        super().__init__("fake", workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_file.write_text(text)


def test_log_check_fails_unless_expected(tmp_path: Path) -> None:
    logs = LogCheck()
    proc = FakeProc(tmp_path, SAMPLE_LOG)
    logs.procs.append(proc)
    with pytest.raises(AssertionError, match="fetch failed"):
        logs.check()
    logs.expect_log("fetch failed")
    with pytest.raises(AssertionError, match="gone") as info:
        logs.check()
    assert "fetch failed" not in str(info.value)
    logs.expect_log(r"Errno 5", FakeProc(tmp_path / "other", ""))
    with pytest.raises(AssertionError, match="gone"):
        logs.check()
    logs.expect_log(r"Errno 5", proc)
    logs.check()


def test_log_check_reads_the_console_too(tmp_path: Path) -> None:
    proc = FakeProc(tmp_path, "")
    proc.console_file.write_text('Traceback (most recent call last):\n  File "z"\nSystemExit: 3\n')
    logs = LogCheck()
    logs.procs.append(proc)
    with pytest.raises(AssertionError, match="SystemExit"):
        logs.check()
    logs.allow_all = True
    logs.check()


# ----------------------------------------------------------------------------- tracker


def handshake_challenge(host: str, port: int, secret: str, state_dir: Path) -> bool:
    """Join the tracker over TLS; True if it accepts a peer that knows ``secret``."""

    async def attempt() -> bool:
        with trio.fail_after(10):
            try:
                link, _ = await join(host, port, tracker_fingerprint(state_dir), secret.encode(),
                                     identity("probe"))
            except HandshakeFailed:
                return False
            await link.aclose()
            return True

    return trio.run(attempt)


def test_tracker_fixture_listens_and_knows_the_secret(tracker: TrackerProc) -> None:
    assert tracker.running and tracker.address == f"127.0.0.11:{tracker.port}"
    assert handshake_challenge(tracker.host, tracker.port, SECRET, tracker.state_dir)
    assert not handshake_challenge(tracker.host, tracker.port, "another secret", tracker.state_dir)
    tracker.expect_log("failed authentication")


def test_tracker_survives_kill_and_restarts_on_the_same_port(tracker: TrackerProc) -> None:
    port, pid = tracker.port, tracker.pid
    tracker.kill()
    assert not tracker.running and tracker.returncode == -signal.SIGKILL
    assert not can_connect(tracker.host, port)
    tracker.start()
    assert tracker.pid != pid and tracker.port == port
    assert handshake_challenge(tracker.host, port, SECRET, tracker.state_dir)
    tracker.restart()
    assert tracker.running and can_connect(tracker.host, port)
    assert (tracker.state_dir).is_dir()


def test_tracker_start_failure_shows_the_log(tmp_path: Path) -> None:
    proc = TrackerProc(tmp_path, extra_args=["--interval", "-1"])
    with pytest.raises(AssertionError, match=r"exited with status 2[\s\S]*--interval"):
        proc.start(timeout=10)
    assert not proc.running


# ----------------------------------------------------------------------------- peers

# A stand-in for `python -m syncfs mount MNT ... --log-file LOG`: an empty read-only
# file system. It logs like the real one so that the log check sees its records.
FAKE_MOUNT = textwrap.dedent(
    """
    import logging, os, sys
    import pyfuse3, trio

    mnt = sys.argv[sys.argv.index("mount") + 1]
    logging.basicConfig(filename=sys.argv[sys.argv.index("--log-file") + 1],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    log = logging.getLogger("fakemount")

    class Ops(pyfuse3.Operations):
        async def getattr(self, inode, ctx=None):
            if inode != pyfuse3.ROOT_INODE:
                raise pyfuse3.FUSEError(2)
            a = pyfuse3.EntryAttributes()
            a.st_ino, a.st_mode, a.st_nlink = inode, 0o40755, 2
            return a
        async def lookup(self, parent, name, ctx=None):
            if os.environ.get("FAKE_MOUNT_HANG") and name == b"hang":
                await trio.sleep_forever()
            raise pyfuse3.FUSEError(2)
        async def opendir(self, inode, ctx):
            return inode
        async def readdir(self, fh, off, token):
            return

    if os.environ.get("FAKE_MOUNT_FAIL"):
        raise RuntimeError("cannot mount")
    pyfuse3.init(Ops(), mnt, ["fsname=fakemount"])
    log.info("mounted %s", mnt)
    if os.environ.get("FAKE_MOUNT_ERROR"):
        log.error("something broke")
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=False)
    log.info("unmounted")
    """
)


class FakePeer(PeerProc):
    def command(self) -> list[str]:
        argv = super().command()
        assert argv[:4] == [sys.executable, "-m", "syncfs", "mount"]
        return [sys.executable, str(self.workdir.parent / "fakemount.py"), *argv[3:]]


@pytest.fixture
def fake_peer(tmp_path: Path, tracker: TrackerProc) -> object:
    require_fuse()
    (tmp_path / "fakemount.py").write_text(FAKE_MOUNT)
    peer = FakePeer(1, tmp_path / "p1", tracker)
    try:
        yield peer
    finally:
        peer.kill()
    assert not is_mounted(peer.mnt)


def test_peer_start_stop_restart(fake_peer: FakePeer) -> None:
    peer = fake_peer
    assert peer.addr == "127.0.0.12"
    peer.start()
    assert peer.mounted and is_mounted(peer.mnt)
    assert "--listen 127.0.0.12" in " ".join(peer.command())
    peer.stop()
    assert not peer.running and peer.returncode == 0
    assert not is_mounted(peer.mnt)
    assert "unmounted" in peer.log_text()
    peer.start()
    assert peer.mounted
    peer.restart()
    assert peer.mounted and peer.starts == 3


def test_peer_kill_cleans_the_dead_mount(fake_peer: FakePeer) -> None:
    peer = fake_peer
    peer.start()
    peer.proc.send_signal(signal.SIGKILL)  # a crash: the mount is left dead
    wait_for(lambda: peer.returncode is not None, timeout=5, what="the peer to die")
    assert is_mounted(peer.mnt) and not peer.mounted
    peer.kill()
    assert not is_mounted(peer.mnt)
    peer.start()  # and it mounts again at the same place
    assert peer.mounted


def test_peer_stop_escalates_when_the_file_system_hangs(
    fake_peer: FakePeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_MOUNT_HANG", "1")
    peer = fake_peer
    peer.start()
    # a lookup that never answers, from a child we can abandon
    import subprocess

    child = subprocess.Popen(["stat", str(peer.mnt / "hang")], stdout=subprocess.DEVNULL)
    try:
        start = time.monotonic()
        peer.stop(timeout=1)
        assert time.monotonic() - start < 15
        assert not peer.running and not is_mounted(peer.mnt)
    finally:
        child.kill()
        child.wait(timeout=10)


def test_peer_that_cannot_mount_fails_fast_with_its_log(
    fake_peer: FakePeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_MOUNT_FAIL", "1")
    start = time.monotonic()
    with pytest.raises(AssertionError, match=r"exited with status 1[\s\S]*cannot mount"):
        fake_peer.start(timeout=10)
    assert time.monotonic() - start < 5
