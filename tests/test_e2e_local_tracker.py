"""The tracker as its user sees it: the token ``--print-invite`` prints, and the local
tracker that ``syncfs mount`` without ``--tracker`` starts (on its port, with something
else on that port, and gone once its last mount is)."""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import SECRET, TrackerProc, fusermount, is_mounted, require_fuse, syncfs_cli, wait_for

from syncfs.invite import parse

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A user of their own: config, data (the local tracker's state) and state directories."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.delenv("SYNCFS_LOCAL_TRACKER_PORT", raising=False)
    return tmp_path


def _local_state(home: Path) -> Path:
    return home / "xdg-data" / "syncfs" / "tracker"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@contextlib.contextmanager
def local_mounts(home: Path) -> Iterator[list[Path]]:
    """Mount points to use; afterwards every one is unmounted and every process that a test
    started (mounts, the local tracker) is gone."""
    mounts: list[Path] = []
    try:
        yield mounts
    finally:
        for mnt in mounts:
            if is_mounted(mnt):
                fusermount(mnt) or fusermount(mnt, lazy=True)
        pid_file = _local_state(home) / "tracker.pid"
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def _mount(mounts: list[Path], home: Path, name: str, *args: str):
    mnt = home / name
    mnt.mkdir()
    mounts.append(mnt)
    done = syncfs_cli("mount", str(mnt), "--cache-dir", str(home / f"{name}-cache"), *args, timeout=60)
    found = re.search(r"\(pid (\d+),", done.stdout)
    return done, mnt, int(found.group(1)) if found else None


# --------------------------------------------------------------------------- --print-invite


def test_print_invite_prints_the_token_the_tracker_advertises(tmp_path):
    """With --advertise and a port of its own (0: any), the token is the tracker's, not
    localhost:7370's."""
    for name, host_args in (("advertised", ["--advertise", "tracker.example.test"]), ("any-port", [])):
        tracker = TrackerProc(tmp_path / name, port=0 if not host_args else None, extra_args=host_args)
        try:
            tracker.start()
            invite_file = tracker.state_dir / "invite"
            wait_for(invite_file.exists, what="the tracker's invite file")
            bound = parse(invite_file.read_text())
            printed = syncfs_cli("tracker", "--print-invite", "--state-dir", str(tracker.state_dir))
            assert printed.returncode == 0, printed.stderr
            token = parse(printed.stdout)
            want_host = "tracker.example.test" if host_args else tracker.host
            assert (token.host, token.secret, token.fingerprint) == (want_host, SECRET, tracker.tracker_id)
            assert token.port == bound.port and token.port not in (0, 7370)
            if host_args:
                assert token.port == tracker.port
            # what is given on the command line changes that part of it
            moved = parse(syncfs_cli("tracker", "--print-invite", "--state-dir", str(tracker.state_dir),
                                     "--port", "7999").stdout)
            assert (moved.host, moved.port) == (want_host, 7999)
        finally:
            tracker.stop()


def test_tracker_stop_stops_the_tracker_of_a_state_dir(tmp_path):
    tracker = TrackerProc(tmp_path / "t")
    try:
        tracker.start()
        wait_for(lambda: (tracker.state_dir / "tracker.pid").exists(), what="the pid file")
        done = syncfs_cli("tracker", "--stop", "--state-dir", str(tracker.state_dir))
        assert done.returncode == 0, done.stderr
        assert "stopped" in done.stdout
        assert tracker.proc is not None and tracker.proc.wait(timeout=5) == 0
        assert not (tracker.state_dir / "tracker.pid").exists()
        again = syncfs_cli("tracker", "--stop", "--state-dir", str(tracker.state_dir))
        assert again.returncode == 1 and "no tracker runs" in again.stderr
    finally:
        tracker.kill()


# --------------------------------------------------------------------------- the local tracker


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_a_foreign_listener_on_the_local_tracker_port_is_reported_at_once(home, monkeypatch):
    require_fuse()
    port = _free_port()
    monkeypatch.setenv("SYNCFS_LOCAL_TRACKER_PORT", str(port))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with local_mounts(home) as mounts:
            start = time.monotonic()
            done, mnt, pid = _mount(mounts, home, "m")
            took = time.monotonic() - start
            assert done.returncode != 0 and pid is None, done.stdout
            assert f"127.0.0.1:{port} is held by another program" in done.stderr, done.stderr
            assert "--local-tracker-port" in done.stderr
            assert took < 8, f"took {took:.1f} s"
            assert not is_mounted(mnt)
            assert not (_local_state(home) / "tracker.pid").exists()
    finally:
        server.shutdown()
        server.server_close()


def test_local_tracker_port_moves_it(home):
    """--local-tracker-port, and local_tracker_port in the configuration file."""
    require_fuse()
    port = _free_port()
    state = _local_state(home)
    with local_mounts(home) as mounts:
        done, first, _ = _mount(mounts, home, "first", "--local-tracker-port", str(port))
        assert done.returncode == 0, done.stderr
        invite = parse((state / "invite").read_text())
        assert (invite.host, invite.port) == ("127.0.0.1", port)
        tracker_pid = int((state / "tracker.pid").read_text())
        config = home / "xdg-config" / "syncfs" / "config.toml"
        config.parent.mkdir(parents=True)
        config.write_text(f"local_tracker_port = {port}\n")
        done, second, _ = _mount(mounts, home, "second", "--listen", "127.0.0.41")
        assert done.returncode == 0, done.stderr
        (first / "note").write_text("both")
        wait_for(lambda: (second / "note").read_text() == "both", what="the note on the second mount")
        assert int((state / "tracker.pid").read_text()) == tracker_pid  # the same tracker
        # one local tracker per user: not a second one on another port, over the same state
        done, third, _ = _mount(mounts, home, "third", "--local-tracker-port", str(_free_port()))
        assert done.returncode != 0 and f"already runs on port {port}" in done.stderr, done.stderr
        assert not is_mounted(third)


def test_the_local_tracker_ends_after_its_last_mount(home, monkeypatch):
    require_fuse()
    monkeypatch.setenv("SYNCFS_LOCAL_TRACKER_PORT", str(_free_port()))
    state = _local_state(home)
    with local_mounts(home) as mounts:
        started = [_mount(mounts, home, "first"), _mount(mounts, home, "second", "--listen", "127.0.0.41")]
        for done, _, _ in started:
            assert done.returncode == 0, done.stderr
        tracker_pid = int((state / "tracker.pid").read_text())
        for _, mnt, pid in started:
            assert fusermount(mnt)
            wait_for(lambda pid=pid: not _alive(pid), timeout=15, what="the mount process to exit")
        # no mount left: the tracker the first one started goes too
        wait_for(lambda: not _alive(tracker_pid), timeout=30, what="the local tracker to exit")
        assert not (state / "tracker.pid").exists()
