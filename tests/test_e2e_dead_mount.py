"""Issue 13, finding 2: a mount whose process was killed (kill -9) leaves a dead mount point
(every access fails with ENOTCONN). The same ``syncfs mount`` command cleans it and
mounts again; ``syncfs status`` and ``stop`` say what happened, with its log's last lines,
and ``stop`` cleans it; ``./mount.sh`` mounts on it too."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
from bgmount import BackgroundMount
from harness import ROOT, is_mounted, syncfs_cli, wait_for

pytestmark = pytest.mark.timeout(120)


def dead(path: Path) -> bool:
    try:
        os.statvfs(path)  # always asks the mount's process (a stat may be answered from the kernel's cache)
    except OSError as exc:
        return exc.errno in (errno.ENOTCONN, errno.ECONNABORTED)  # the latter while its process ends
    return False


def stat_fails(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ENOTCONN
    return False


def started(bg: BackgroundMount) -> None:
    done = bg.mount()
    assert done.returncode == 0, done.stdout + done.stderr
    wait_for(lambda: is_mounted(bg.mnt), what="the background mount")


def test_the_same_mount_command_after_kill_9_cleans_up_and_mounts(cluster, tmp_path):
    p1 = cluster.add_peer()
    with BackgroundMount(tmp_path / "bg", cluster.tracker.token) as bg:
        started(bg)
        (bg.mnt / "before.txt").write_text("written before the crash")
        wait_for(lambda: p1.path("before.txt").read_text() == "written before the crash", what="before.txt on p1")
        bg.kill_9()
        assert dead(bg.mnt), "kill -9 should leave a dead mount point"

        done = bg.mount()
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        assert "dead mount" in done.stderr and "cleaned it up" in done.stderr, done.stderr
        assert "mounted" in done.stdout
        # the share works: both ways
        assert (bg.mnt / "before.txt").read_text() == "written before the crash"
        p1.path("after.txt").write_text("written after the remount")
        wait_for(lambda: (bg.mnt / "after.txt").read_text() == "written after the remount", what="after.txt")
        (bg.mnt / "back.txt").write_text("from the remounted peer")
        wait_for(lambda: p1.path("back.txt").read_text() == "from the remounted peer", what="back.txt on p1")
        assert syncfs_cli("stop", str(bg.mnt)).returncode == 0
        assert not is_mounted(bg.mnt)


def test_status_and_stop_say_what_happened_to_a_dead_mount_and_stop_cleans_it(cluster, tmp_path):
    with BackgroundMount(tmp_path / "bg", cluster.tracker.token) as bg:
        started(bg)
        pid = bg.kill_9()

        st = syncfs_cli("status", str(bg.mnt))
        assert st.returncode == 1
        assert "dead mount" in st.stderr and f"pid {pid}" in st.stderr, st.stderr
        assert str(bg.log_file) in st.stderr  # the log named, and its last lines shown
        assert f"mounted {bg.mnt}" in st.stderr, st.stderr
        assert "syncfs stop" in st.stderr
        # a path inside the dead mount, and no path at all, lead to it too
        inside = syncfs_cli("status", str(bg.mnt / "sub" / "file"))
        assert inside.returncode == 1 and "dead mount" in inside.stderr
        anywhere = syncfs_cli("status")
        assert anywhere.returncode == 1 and "dead mount" in anywhere.stderr and str(bg.mnt) in anywhere.stderr

        stop = syncfs_cli("stop", str(bg.mnt))
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert "dead mount" in stop.stdout and "unmounted" in stop.stdout, stop.stdout
        assert f"mounted {bg.mnt}" in stop.stdout  # its log's last lines
        assert not is_mounted(bg.mnt) and bg.mnt.is_dir() and not any(bg.mnt.iterdir())
        after = syncfs_cli("status", str(bg.mnt))
        assert after.returncode == 1 and "no running syncfs mount" in after.stderr, after.stderr


def test_a_dead_mount_the_registry_does_not_know_is_recognised_from_mountinfo(cluster, tmp_path):
    # the default log file (no --log-file) is found by its mount point
    with BackgroundMount(tmp_path / "bg", cluster.tracker.token, log_file=False) as bg:
        started(bg)
        bg.kill_9()
        registry = Path(os.environ["XDG_STATE_HOME"]) / "syncfs" / "mounts"
        for entry in registry.glob("*.json"):
            if str(bg.mnt) in entry.read_text():
                entry.unlink()
        st = syncfs_cli("status", str(bg.mnt))
        assert st.returncode == 1 and "dead mount" in st.stderr, st.stderr
        assert f"mounted {bg.mnt}" in st.stderr, st.stderr
        stop = syncfs_cli("stop", str(bg.mnt))
        assert stop.returncode == 0 and "unmounted" in stop.stdout, stop.stdout + stop.stderr
        assert not is_mounted(bg.mnt)


def test_mount_sh_mounts_on_a_dead_mount_point(cluster, tmp_path):
    if not (ROOT / ".venv" / "bin" / "syncfs").exists():
        pytest.skip("mount.sh runs .venv/bin/syncfs: run scripts/setup.sh first")
    with BackgroundMount(tmp_path / "bg", cluster.tracker.token) as bg:
        started(bg)
        bg.kill_9()
        # what a user meets a little later: even a stat fails (the kernel's cache expired)
        wait_for(lambda: stat_fails(bg.mnt), what="a stat of the dead mount point to fail")
        done = bg.note(subprocess.run([str(ROOT / "mount.sh"), *bg.args[1:]], capture_output=True, text=True,
                                      timeout=120, env={**os.environ, "SYNCFS_BIN_DIR": ""}))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "cannot stat" not in done.stderr and "cleaned it up" in done.stderr, done.stderr
        assert is_mounted(bg.mnt) and not dead(bg.mnt)
