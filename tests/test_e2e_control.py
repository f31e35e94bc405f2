"""Issue 7, first part: status (JSON and live progress), pause and resume of a running mount."""

import os
import subprocess
import sys

import pytest
from harness import cli_status, syncfs_cli, wait_for

pytestmark = pytest.mark.timeout(120)

MiB = 1 << 20


syncfs = syncfs_cli
status = cli_status


def entry(s: dict, path: str) -> dict | None:
    return next((f for f in s["stale"] if f["path"] == path), None)


def test_status_json_shows_a_download_growing_then_complete(cluster):
    p1 = cluster.add_peer()
    p2 = cluster.add_peer(extra_args=["--max-rate", "16M"])
    p1.path("big").write_bytes(os.urandom(64 * MiB))
    seen = []

    def progressed() -> bool:
        f = entry(status(p2), "big")
        if f is not None and f["state"] == "downloading":
            seen.append(f["bytes_present"])
        return len(set(seen)) >= 2

    try:
        wait_for(progressed, timeout=60, what="two byte counts of p2's download")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; counts seen: {seen}; last status: {status(p2)}") from None
    assert seen == sorted(seen), f"the byte count went down: {seen}"
    wait_for(lambda: entry(status(p2), "big") is None, timeout=60, what="the download to complete")
    final = status(p2)
    assert final["files"] == 1 and final["tracker"]["connected"]
    assert final["bytes_received"] >= 64 * MiB


def test_plain_status_renders_a_progress_bar_under_a_terminal(cluster):
    p1 = cluster.add_peer()
    p2 = cluster.add_peer(extra_args=["--max-rate", "16M"])
    p1.path("movie.bin").write_bytes(os.urandom(48 * MiB))
    wait_for(lambda: (f := entry(status(p2), "movie.bin")) and f["state"] == "downloading", what="the download")
    cmd = f"{sys.executable} -m syncfs status {p2.mnt}"
    done = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "120"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "movie.bin" in done.stdout and "━" in done.stdout
    assert "tracker" in done.stdout and "connected" in done.stdout


def test_pause_stops_transfers_and_resume_fetches_nothing_twice(cluster):
    p1 = cluster.add_peer()
    p2 = cluster.add_peer(extra_args=["--max-rate", "16M"])
    size = 48 * MiB
    data = os.urandom(size)
    p1.path("big").write_bytes(data)
    wait_for(lambda: status(p2)["bytes_received"] > 4 * MiB, what="p2 to be partway")
    assert syncfs("pause", str(p2.mnt)).returncode == 0
    assert status(p2)["paused"] == "soft"
    frozen = wait_for(lambda: (a := status(p2)["bytes_received"]) == status(p2)["bytes_received"] and a,
                      what="the byte counter to stop")
    # local changes on the paused peer still reach the others
    p2.path("note.txt").write_text("written while paused")
    wait_for(lambda: p1.path("note.txt").read_text() == "written while paused", what="the note on p1")
    assert status(p2)["bytes_received"] == frozen
    assert frozen < size
    p2.stop()  # pause survives a restart; the counters restart with the process
    p2.start()
    assert status(p2)["paused"] == "soft"
    wait_for(lambda: status(p2)["tracker"]["connected"], what="p2 to reconnect")
    assert status(p2)["bytes_received"] == 0
    assert syncfs("resume", str(p2.mnt)).returncode == 0
    wait_for(lambda: entry(status(p2), "big") is None, timeout=60, what="the download to complete")
    assert p2.path("big").read_bytes() == data
    assert frozen + status(p2)["bytes_received"] <= size + 4 * MiB  # nothing fetched twice


def test_status_without_a_mount_fails_clearly(tmp_path):
    done = syncfs("status", str(tmp_path))
    assert done.returncode != 0 and "no running syncfs mount" in done.stderr


def test_bad_control_requests_get_a_clear_error_and_change_nothing(cluster):
    import socket as socketlib

    from syncfs.control import SOCKET_NAME, ControlError, request

    p1 = cluster.add_peer()
    with pytest.raises(ControlError, match="unknown control command"):
        request(p1.cache_dir, {"t": "format-the-disk"})
    with socketlib.socket(socketlib.AF_UNIX) as s:  # not even a frame
        s.settimeout(10)
        s.connect(str(p1.cache_dir / SOCKET_NAME))
        s.sendall(b"\xff\xff\xff\xff garbage")
        answer = s.recv(4096)
        assert b"error" in answer and b"exceeds the limit" in answer
    assert (p1.cache_dir / SOCKET_NAME).stat().st_mode & 0o777 == 0o600
    s = status(p1)
    assert s["paused"] == "" and s["tracker"]["connected"]
