"""Ignored paths stay local: .syncfsignore rules and the defaults (vim swap files & co)."""

import os
import subprocess

import pytest
from harness import wait_for, wait_same_tree

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
    assert names(p2) == {".syncfsignore", "src.c", "after.txt"}
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
