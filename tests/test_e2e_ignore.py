"""Ignored paths stay local: .syncfsignore rules and the defaults (vim swap files & co),
and say so: ``user.syncfs.state`` is ``ignored`` and ``syncfs status`` counts them by rule.
Backups (``name~``) are the user's data and sync."""

import os
import subprocess

import pytest
from harness import cli_status, syncfs_cli, wait_for, wait_same_tree

pytestmark = pytest.mark.timeout(120)


def names(peer) -> set[str]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(peer.mnt):
        rel = os.path.relpath(dirpath, peer.mnt)
        for n in dirnames + filenames:
            out.add(n if rel == "." else f"{rel}/{n}")
    return out


def test_syncfsignore_keeps_paths_local(cluster):
    p1, p2 = cluster.start_peers(2)
    p1.path(".syncfsignore").write_text("build/\n*.log\n")
    wait_for(lambda: p2.path(".syncfsignore").read_text() == "build/\n*.log\n", what="the rules on p2")
    os.makedirs(p1.path("build/obj"))
    p1.path("build/obj/a.o").write_bytes(b"\x7fELF")
    p1.path("debug.log").write_text("noise")
    p1.path("src.c").write_text("int main;")
    p1.path("x.txt~").write_text("backup")
    wait_for(lambda: p2.path("src.c").exists(), what="src.c on p2")
    # a change after the ignored ones has arrived, so they would have too
    p1.path("after.txt").write_text("later")
    wait_for(lambda: p2.path("after.txt").exists(), what="after.txt on p2")
    assert names(p2) == {".syncfsignore", "src.c", "after.txt", "x.txt~"}
    # ignored on both sides: p2's own build/ stays its own too
    os.makedirs(p2.path("build"))
    p2.path("build/mine").write_text("p2's")
    p2.path("p2.txt").write_text("sync me")
    wait_for(lambda: p1.path("p2.txt").exists(), what="p2.txt on p1")
    assert not p1.path("build/mine").exists()
    assert p1.path("build/obj/a.o").exists()


def test_vim_swap_file_never_reaches_another_peer(cluster, tmp_path):
    p1, p2 = cluster.start_peers(2)
    p1.path("notes.txt").write_text("one\n")
    wait_same_tree([p1, p2])
    session = f"syncfs-vim-{os.getpid()}"
    env = dict(os.environ, HOME=str(tmp_path))
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24",
                    f"vim -u NONE -N {p1.path('notes.txt')}"], check=True, env=env, timeout=30)
    try:
        wait_for(lambda: p1.path(".notes.txt.swp").exists(), what="vim's swap file on p1")
        p1.path("marker").write_text("after the swap file")
        wait_for(lambda: p2.path("marker").exists(), what="the marker on p2")
        assert not any(n.endswith(".swp") for n in names(p2))
        subprocess.run(["tmux", "send-keys", "-t", session, "otwo", "Escape", ":wq", "Enter"], check=True, timeout=30)
        wait_for(lambda: p2.path("notes.txt").read_text() == "one\ntwo\n", what="vim's save on p2")
        wait_for(lambda: not p1.path(".notes.txt.swp").exists(), what="vim to remove its swap file")
        assert not any(n.endswith(".swp") for n in names(p2))
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], timeout=30, capture_output=True)


def test_rules_hold_at_once_and_on_on_demand_peers(cluster):
    p1 = cluster.add_peer()
    p2 = cluster.add_peer(extra_args=["--on-demand"])
    p1.path(".syncfsignore").write_text("build/\n")
    os.makedirs(p1.path("build"))  # right after the rules were saved: already ignored
    p1.path("build/a.o").write_text("x")
    p1.path("kept.txt").write_text("y")
    wait_for(lambda: p2.path("kept.txt").exists(), what="kept.txt on p2")
    assert not p2.path("build").exists()
    # the on-demand peer fetched the rules by itself, and applies them to its own files
    wait_for(lambda: os.getxattr(p2.path(".syncfsignore"), "user.syncfs.state") == b"synced",
             what="the rules fetched on p2 without being read")
    os.makedirs(p2.path("build"))
    p2.path("build/b.o").write_text("z")
    p2.path("from-p2.txt").write_text("w")
    wait_for(lambda: p1.path("from-p2.txt").exists(), what="from-p2.txt on p1")
    assert not p1.path("build/b.o").exists()


def state(path) -> bytes:
    return os.getxattr(path, "user.syncfs.state")


def test_backups_sync_and_ignored_paths_say_so(cluster):
    p1, p2 = cluster.start_peers(2)
    p1.path(".syncfsignore").write_text("cache/\n")
    wait_for(lambda: p2.path(".syncfsignore").exists(), what="the rules on p2")
    os.makedirs(p1.path("tests/fixtures"))
    p1.path("tests/fixtures/backup~").write_text("a test fixture, not an editor's litter\n")
    p1.path(".x.swp").write_text("vim's swap file")
    p1.path("tests/.y.swp").write_text("another")
    p1.path(".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    os.symlink(".x.swp", p1.path("link.swp"))  # Linux shows no user.* attributes of a link: status counts it
    os.makedirs(p1.path("cache/objects"))
    p1.path("cache/objects/blob").write_text("local only")
    p1.path("after.txt").write_text("written last")
    wait_for(lambda: p2.path("after.txt").exists(), what="after.txt on p2")
    wait_for(lambda: p2.path("tests/fixtures/backup~").read_text() == "a test fixture, not an editor's litter\n",
             what="backup~ on p2")
    wait_for(lambda: state(p2.path("tests/fixtures/backup~")) == b"synced", what="backup~ synced on p2")
    assert state(p1.path("tests/fixtures/backup~")) == b"synced"
    assert names(p2) == {".syncfsignore", "tests", "tests/fixtures", "tests/fixtures/backup~", "after.txt"}
    # what stayed on p1 says why, files and directories alike
    for rel in (".x.swp", "tests/.y.swp", ".DS_Store", "cache", "cache/objects", "cache/objects/blob"):
        assert state(p1.path(rel)) == b"ignored", rel
    assert state(p1.path("tests")) == b"synced"
    ignored = cli_status(p1)["ignored"]
    assert ignored["count"] == 7
    assert ignored["by_rule"] == {"*.swp": 3, ".DS_Store": 1, "cache/": 3}
    assert ".x.swp" in ignored["paths"] and "cache/objects/blob" in ignored["paths"]
    assert cli_status(p2)["ignored"] == {"count": 0, "by_rule": {}, "paths": []}
    shown = syncfs_cli("status", str(p1.mnt))
    assert shown.returncode == 0
    assert "ignored 7 kept on this peer only: 3 by '*.swp', 3 by 'cache/', 1 by '.DS_Store'" in " ".join(shown.stdout.split())
    # a rule that goes away lets what it kept here sync, unchanged; one that comes holds at once
    p1.path(".syncfsignore").write_text("*.tmp\n")
    wait_for(lambda: p2.path("cache/objects/blob").read_text() == "local only", what="the blob on p2")
    wait_for(lambda: state(p1.path("cache/objects/blob")) == b"synced", what="the blob synced on p1")
    wait_for(lambda: p2.path(".syncfsignore").read_text() == "*.tmp\n", what="the new rules on p2")
    p2.path("draft.tmp").write_text("p2's own")
    assert state(p2.path("draft.tmp")) == b"ignored"
    assert cli_status(p2)["ignored"]["by_rule"] == {"*.tmp": 1}
