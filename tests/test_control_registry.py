"""The registry of running mounts (how `syncfs status DIR` finds a mount) lists live
processes only, and removes what dead ones left behind."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from syncfs import control


def entry_of(tmp_path: Path, name: str, **info) -> Path:
    reg = tmp_path / "syncfs" / "mounts"
    reg.mkdir(parents=True, exist_ok=True)
    path = reg / f"{name}.json"
    path.write_text(json.dumps({"mountpoint": f"/m/{name}", "store": f"/s/{name}", **info}))
    return path


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_registered_mount_is_listed_until_it_unregisters(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    entry = control.register(tmp_path / "mnt", tmp_path / "store")
    assert [m["mountpoint"] for m in control.registered()] == [str(tmp_path / "mnt")]
    control.unregister(entry)
    assert control.registered() == [] and not entry.exists()


def test_unregister_leaves_an_entry_another_mount_wrote_since(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    entry = control.register(tmp_path / "mnt", tmp_path / "store")
    entry.write_text(json.dumps({"mountpoint": "x", "store": "y", "pid": os.getpid() + 1}))
    control.unregister(entry)
    assert entry.exists()


def test_entries_of_dead_processes_are_removed_once_old(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    old = entry_of(tmp_path, "old", pid=dead_pid())
    past = time.time() - 2 * control.STALE_ENTRY_AGE
    os.utime(old, (past, past))
    young = entry_of(tmp_path, "young", pid=dead_pid())  # perhaps a mount writing it now
    assert control.registered() == []
    assert not old.exists() and young.exists()


def test_a_reused_pid_does_not_make_an_entry_alive(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    entry_of(tmp_path, "reused", pid=os.getpid(), started="1")  # this pid, another start time
    assert control.registered() == []


def test_an_entry_of_an_older_build_counts_only_for_a_syncfs_process(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    other = subprocess.Popen(["cat"], stdin=subprocess.PIPE)  # lives until killed
    try:
        entry_of(tmp_path, "legacy", pid=other.pid)  # no start time: written by an older build
        assert control.registered() == []
    finally:
        other.kill()
        other.wait()


def test_old_leftover_temporary_files_are_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    tmp = entry_of(tmp_path, "x").with_suffix(".123.tmp")
    tmp.write_text("{")
    past = time.time() - 2 * control.STALE_ENTRY_AGE
    os.utime(tmp, (past, past))
    control.registered()
    assert not tmp.exists()


def test_a_mount_that_replaced_a_live_ones_entry_gives_it_back(tmp_path, monkeypatch):
    """Two mounts of one directory: when the second stops, the first is found again."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    first = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()  # syncfs"],
                             stdin=subprocess.PIPE)
    try:
        entry = control.register(tmp_path / "mnt", tmp_path / "store")
        theirs = {"mountpoint": str(tmp_path / "mnt"), "store": "/first", "pid": first.pid,
                  "started": control.process_start_time(first.pid)}
        entry.write_text(json.dumps(theirs))  # as if the first mount had registered
        entry = control.register(tmp_path / "mnt", tmp_path / "store")  # the second
        assert [m["store"] for m in control.registered()] == [str(tmp_path / "store")]
        control.unregister(entry)
        assert [m["store"] for m in control.registered()] == ["/first"]
    finally:
        first.kill()
        first.wait()
