"""The watched-directory front end (``syncfs sync DIR``) in one share with FUSE mounts."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from harness import Cluster, cli_status, syncfs_cli, wait_for, wait_same_tree

pytestmark = pytest.mark.timeout(120)


def test_plain_directory_and_mounts_stay_identical(cluster: Cluster) -> None:
    s = cluster.add_peer(watched=True)
    p1, p2 = cluster.start_peers(2)
    d = s.mnt
    # made in the plain directory
    (d / "docs").mkdir()
    (d / "docs" / "a.txt").write_text("from the plain directory\n")
    (d / "b.bin").write_bytes(os.urandom(3 << 20))
    os.symlink("docs/a.txt", d / "link")
    wait_same_tree([s, p1, p2])
    assert (p1.mnt / "docs" / "a.txt").read_text() == "from the plain directory\n"
    # edited, renamed, chmodded and deleted there
    with open(d / "docs" / "a.txt", "a") as f:
        f.write("second line\n")
    os.rename(d / "b.bin", d / "docs" / "moved.bin")
    os.chmod(d / "docs" / "moved.bin", 0o600)
    wait_same_tree([s, p1, p2])
    (d / "link").unlink()
    wait_same_tree([s, p1, p2])
    # and the other way: made, edited, renamed and deleted in a mount
    (p2.mnt / "from-mount").mkdir()
    (p2.mnt / "from-mount" / "c.txt").write_text("from a mount\n")
    tree = wait_same_tree([s, p1, p2])
    assert "from-mount/c.txt" in tree
    (p2.mnt / "from-mount" / "c.txt").write_text("edited in a mount\n")
    os.rename(p2.mnt / "docs", p2.mnt / "docs2")
    tree = wait_same_tree([s, p1, p2])
    assert (d / "docs2" / "moved.bin").exists() and not (d / "docs").exists()
    assert (d / "from-mount" / "c.txt").read_text() == "edited in a mount\n"
    subprocess.run(["rm", "-r", str(p1.mnt / "docs2")], check=True)
    tree = wait_same_tree([s, p1, p2])
    assert sorted(tree) == ["from-mount", "from-mount/c.txt"]


def _conflicts(tree: dict) -> list[str]:
    return sorted(p for p in tree if ".sync-conflict-" in p)


def test_editor_atomic_saves_in_the_plain_directory(cluster: Cluster) -> None:
    s = cluster.add_peer(watched=True)
    (p1,) = cluster.start_peers(1)
    (s.mnt / "notes.txt").write_text("one\ntwo\n")
    wait_same_tree([s, p1])
    # vim writes a backup/swap and renames; a script writes a temporary file and renames it over
    subprocess.run(["vim", "-es", "-u", "NONE", "-c", "%s/two/TWO/", "-c", "wq", str(s.mnt / "notes.txt")],
                   check=True, timeout=30)
    tmp = s.mnt / ".notes.txt.tmp"
    tmp.write_text("replaced\n")
    os.replace(tmp, s.mnt / "other.txt")
    tree = wait_same_tree([s, p1])
    assert (p1.mnt / "notes.txt").read_text() == "one\nTWO\n"
    assert (p1.mnt / "other.txt").read_text() == "replaced\n"
    assert sorted(tree) == ["notes.txt", "other.txt"]


def test_a_file_written_slowly_is_never_sent_half_written(cluster: Cluster) -> None:
    s = cluster.add_peer(watched=True)
    (p1,) = cluster.start_peers(1)
    final = b"".join(bytes([65 + i]) * 50_000 for i in range(8))
    seen: set[bytes] = set()
    with open(s.mnt / "slow.bin", "wb") as f:
        for i in range(8):
            f.write(final[i * 50_000:(i + 1) * 50_000])
            f.flush()
            # a slow writer: the next piece comes once a little time has passed
            deadline = time.monotonic() + 0.15
            while time.monotonic() < deadline:
                try:
                    seen.add((p1.mnt / "slow.bin").read_bytes())
                except FileNotFoundError:
                    pass
                time.sleep(0.01)
    wait_for(lambda: (p1.mnt / "slow.bin").read_bytes() == final, what="the finished file on p1")
    assert seen <= {final}, f"p1 saw a partial file of {sorted(len(b) for b in seen)} bytes"


def test_changes_made_while_stopped_are_found_at_start(cluster: Cluster) -> None:
    s = cluster.add_peer(watched=True)
    (p1,) = cluster.start_peers(1)
    for name in ("keep.txt", "edit.txt", "gone.txt", "old-name.txt", "both.txt"):
        (s.mnt / name).write_text(f"{name} v1\n")
    wait_same_tree([s, p1])
    s.stop()
    (s.mnt / "edit.txt").write_text("edited while stopped\n")
    (s.mnt / "gone.txt").unlink()
    os.rename(s.mnt / "old-name.txt", s.mnt / "new-name.txt")
    (s.mnt / "new.txt").write_text("made while stopped\n")
    (s.mnt / "both.txt").write_text("edited here while stopped\n")
    (p1.mnt / "remote.txt").write_text("made in the share meanwhile\n")
    (p1.mnt / "both.txt").write_text("edited in the share meanwhile\n")
    (p1.mnt / "keep.txt").write_text("keep.txt v2 from the share\n")
    s.start()
    tree = wait_same_tree([s, p1])
    assert (p1.mnt / "edit.txt").read_text() == "edited while stopped\n"
    assert (p1.mnt / "new.txt").read_text() == "made while stopped\n"
    assert (p1.mnt / "new-name.txt").read_text() == "old-name.txt v1\n"
    assert (s.mnt / "remote.txt").read_text() == "made in the share meanwhile\n"
    assert (s.mnt / "keep.txt").read_text() == "keep.txt v2 from the share\n"
    assert "gone.txt" not in tree and "old-name.txt" not in tree
    # both sides edited both.txt: one edit stays at the path, the other in a conflict copy
    (copy,) = _conflicts(tree)
    assert copy.startswith("both.sync-conflict-")
    texts = {(p1.mnt / "both.txt").read_text(), (p1.mnt / copy).read_text()}
    assert texts == {"edited here while stopped\n", "edited in the share meanwhile\n"}


def test_remote_files_are_not_echoed_back(cluster: Cluster) -> None:
    s = cluster.add_peer(watched=True)
    (p1,) = cluster.start_peers(1)
    (p1.mnt / "sub").mkdir()
    for i in range(20):
        (p1.mnt / "sub" / f"f{i}.txt").write_text(f"file {i}\n" * (i + 1))
    os.chmod(p1.mnt / "sub" / "f3.txt", 0o640)
    wait_same_tree([s, p1])
    s_id = s.status()["peer_id"]
    wait_for(lambda: s.settled() and p1.settled(), what="both peers settled")
    for i in (0, 3, 19):
        version = subprocess.run(["getfattr", "--only-values", "-n", "user.syncfs.version", str(p1.mnt / "sub" / f"f{i}.txt")],
                                 check=True, capture_output=True, text=True).stdout
        assert s_id not in version, f"the watched directory re-committed f{i}.txt: {version}"


def test_first_start_on_a_copy_of_the_share_adopts_it(cluster: Cluster) -> None:
    (p1,) = cluster.start_peers(1)
    payload = os.urandom(2 << 20)
    (p1.mnt / "big.bin").write_bytes(payload)
    (p1.mnt / "small.txt").write_text("same on both\n")
    wait_for(p1.settled, what="p1 settled")
    s = cluster.add_peer(watched=True, start=False)
    s.mnt.mkdir(parents=True)
    subprocess.run(["cp", "-a", f"{p1.mnt}/.", str(s.mnt)], check=True)
    s.start()
    tree = wait_same_tree([s, p1])
    assert not _conflicts(tree)
    wait_for(s.settled, what="s1 settled")
    assert s.status()["bytes_received"] < 64 << 10  # nothing it already had came over the network


def test_ignore_rules_and_status_in_a_plain_directory(cluster: Cluster) -> None:
    s = cluster.add_peer(watched=True)
    (p1,) = cluster.start_peers(1)
    (s.mnt / ".syncfsignore").write_text("build/\n*.log\n")
    wait_for(lambda: (p1.mnt / ".syncfsignore").exists(), what="the rules on p1")
    (s.mnt / "build").mkdir()
    (s.mnt / "build" / "out.o").write_bytes(b"\x7fELF")
    (s.mnt / "run.log").write_text("noise\n")
    (s.mnt / ".notes.txt.swp").write_text("vim swap\n")
    (s.mnt / "kept.txt~").write_text("a backup is data: it syncs\n")
    (s.mnt / "kept.txt").write_text("synced\n")
    wait_for(lambda: (p1.mnt / "kept.txt").exists(), what="kept.txt on p1")
    wait_for(lambda: (p1.mnt / "kept.txt~").exists(), what="kept.txt~ on p1")
    wait_for(s.settled, what="s1 settled")
    assert sorted(os.listdir(p1.mnt)) == [".syncfsignore", "kept.txt", "kept.txt~"]
    status = cli_status(s)
    assert status["mountpoint"] == str(s.mnt) and status["tracker"]["connected"]
    assert status["files"] == 3  # .syncfsignore, kept.txt and its backup: ignored paths are not in the store
    # ... but they are counted, from the directory itself
    assert status["ignored"]["by_rule"] == {"build/": 2, "*.log": 1, "*.swp": 1}
    # a rule taken out (here, on another peer) lets what it kept here sync
    (p1.mnt / ".syncfsignore").write_text("build/\n")
    wait_for(lambda: (p1.mnt / "run.log").read_text() == "noise\n", what="run.log on p1")
    wait_for(lambda: cli_status(s)["ignored"]["by_rule"] == {"build/": 2, "*.swp": 1}, what="the new count")


def _git(cwd, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd)}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout


def test_git_repository_shared_between_a_plain_directory_and_a_mount(cluster: Cluster) -> None:
    s = cluster.add_peer(watched=True)
    (p1,) = cluster.start_peers(1)
    repo_s, repo_p = s.mnt / "repo", p1.mnt / "repo"
    repo_s.mkdir()
    _git(repo_s, "init", "-q", "-b", "main")
    for i in range(10):
        (repo_s / f"m{i}.py").write_text(f"print({i})\n" * 50)
    _git(repo_s, "add", ".")
    _git(repo_s, "commit", "-q", "-m", "from the plain directory")
    wait_same_tree([s, p1], timeout=60)
    _git(repo_p, "fsck", "--strict")
    (repo_p / "m3.py").write_text("changed in the mount\n")
    _git(repo_p, "commit", "-q", "-am", "from the mount")
    wait_same_tree([s, p1], timeout=60)
    _git(repo_s, "fsck", "--strict")
    assert _git(repo_s, "log", "--format=%s").split("\n")[:2] == ["from the mount", "from the plain directory"]
    assert _git(repo_s, "status", "--porcelain") == ""


def test_syncfs_stop_ends_a_watched_directory_and_a_mount(cluster: Cluster) -> None:
    s = cluster.add_peer(watched=True)
    (p1,) = cluster.start_peers(1)
    for peer in (s, p1):
        done = syncfs_cli("stop", str(peer.mnt), timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"syncfs: {peer.mnt}: stopped"
        assert peer.proc is not None and peer.proc.wait(timeout=10) == 0
    assert not p1.mounted
    done = syncfs_cli("stop", str(s.mnt))
    assert done.returncode == 1 and "no running syncfs mount" in done.stderr


def _getfattr(path, name: str) -> str | None:
    done = subprocess.run(["getfattr", "--only-values", "-n", name, str(path)], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


def test_user_xattrs_sync_between_a_plain_directory_and_a_mount(cluster: Cluster) -> None:
    s = cluster.add_peer(watched=True)
    (p1,) = cluster.start_peers(1)
    (s.mnt / "a.txt").write_text("a\n")
    (p1.mnt / "b.txt").write_text("b\n")
    wait_same_tree([s, p1])
    subprocess.run(["setfattr", "-n", "user.comment", "-v", "from the plain directory", str(s.mnt / "a.txt")], check=True)
    subprocess.run(["setfattr", "-n", "user.comment", "-v", "from a mount", str(p1.mnt / "b.txt")], check=True)
    wait_for(lambda: _getfattr(p1.mnt / "a.txt", "user.comment") == "from the plain directory", what="a.txt's xattr on p1")
    wait_for(lambda: _getfattr(s.mnt / "b.txt", "user.comment") == "from a mount", what="b.txt's xattr in s1")
    # editing the file in the plain directory keeps it; removing it there removes it everywhere
    with open(s.mnt / "b.txt", "a") as f:
        f.write("more\n")
    wait_for(lambda: (p1.mnt / "b.txt").read_text() == "b\nmore\n", what="the edit on p1")
    assert _getfattr(p1.mnt / "b.txt", "user.comment") == "from a mount"
    subprocess.run(["setfattr", "-x", "user.comment", str(s.mnt / "a.txt")], check=True)
    wait_for(lambda: _getfattr(p1.mnt / "a.txt", "user.comment") is None, what="the removal on p1")


def test_names_the_share_cannot_hold_are_skipped_and_nothing_stops(cluster: Cluster) -> None:
    s = cluster.add_peer(watched=True)
    (p1,) = cluster.start_peers(1)
    os.close(os.open(os.path.join(os.fsencode(s.mnt), b"caf\xe9.txt"), os.O_CREAT | os.O_WRONLY, 0o644))
    os.symlink(b"\xff-target", os.path.join(os.fsencode(s.mnt), b"odd-link"))
    (s.mnt / "fine.txt").write_text("synced\n")
    wait_for(lambda: (p1.mnt / "fine.txt").exists(), what="fine.txt on p1")
    s.restart()  # the start-up scan meets them too
    (s.mnt / "after.txt").write_text("still synced\n")
    wait_for(lambda: (p1.mnt / "after.txt").exists(), what="after.txt on p1")
    assert s.running
    assert sorted(os.listdir(p1.mnt)) == ["after.txt", "fine.txt"]


def _paused(peer) -> None:
    done = syncfs_cli("pause", str(peer.mnt))
    assert done.returncode == 0, done.stderr


def _stale_on(peer, rel: str) -> bool:
    return any(f["path"] == rel for f in cli_status(peer)["stale"])


def test_a_rename_over_a_file_changed_in_the_share_keeps_both(cluster: Cluster) -> None:
    s = cluster.add_peer(watched=True)
    (p1,) = cluster.start_peers(1)
    (s.mnt / "a.txt").write_text("a from the plain directory\n")
    (s.mnt / "b.txt").write_text("b v1\n")
    wait_same_tree([s, p1])
    _paused(s)  # the next remote version of b.txt stays stale in s1's store
    (p1.mnt / "b.txt").write_text("b v2 from the mount\n")
    wait_for(lambda: _stale_on(s, "b.txt"), what="b.txt v2 listed on s1")
    os.rename(s.mnt / "a.txt", s.mnt / "b.txt")
    assert syncfs_cli("resume", str(s.mnt)).returncode == 0
    tree = wait_same_tree([s, p1], timeout=30)
    texts = sorted((p1.mnt / rel).read_text() for rel, node in tree.items() if node.kind == "file")
    assert texts == ["a from the plain directory\n", "b v2 from the mount\n"], tree.keys()


def test_a_file_replaced_by_a_directory_while_it_changed_in_the_share_keeps_both(cluster: Cluster) -> None:
    s = cluster.add_peer(watched=True)
    (p1,) = cluster.start_peers(1)
    (s.mnt / "f").write_text("v1\n")
    wait_same_tree([s, p1])
    _paused(s)
    (p1.mnt / "f").write_text("v2 from the mount\n")
    wait_for(lambda: _stale_on(s, "f"), what="f v2 listed on s1")
    (s.mnt / "f").unlink()
    (s.mnt / "f").mkdir()
    (s.mnt / "f" / "inside.txt").write_text("now a directory\n")
    assert syncfs_cli("resume", str(s.mnt)).returncode == 0
    tree = wait_same_tree([s, p1], timeout=30)
    assert tree["f"].kind == "dir" and (p1.mnt / "f" / "inside.txt").read_text() == "now a directory\n"
    (aside,) = [rel for rel in tree if rel.startswith("f.sync-conflict-")]
    assert (p1.mnt / aside).read_text() == "v2 from the mount\n"


def test_a_directory_deleted_elsewhere_keeps_what_only_this_directory_has(cluster: Cluster) -> None:
    s = cluster.add_peer(watched=True)
    (p1,) = cluster.start_peers(1)
    (s.mnt / "d").mkdir()
    (s.mnt / "d" / "a.txt").write_text("synced\n")
    wait_same_tree([s, p1])
    (s.mnt / "d" / ".a.txt.swp").write_text("vim's, never synced\n")
    subprocess.run(["rm", "-r", str(p1.mnt / "d")], check=True)
    wait_for(lambda: not (s.mnt / "d" / "a.txt").exists(), what="d/a.txt removed in s1")
    assert (s.mnt / "d" / ".a.txt.swp").exists()
    wait_for(lambda: (p1.mnt / "d").is_dir(), what="d committed again by s1")
    assert os.listdir(s.mnt / "d") == [".a.txt.swp"] and os.listdir(p1.mnt / "d") == []


def test_a_missing_or_non_directory_is_refused_clearly(cluster: Cluster, tmp_path) -> None:
    cluster.add_peer()
    token = cluster.tracker.token
    missing = syncfs_cli("sync", str(tmp_path / "nope"), "--tracker", token)
    assert missing.returncode != 0 and "does not exist: create it first" in missing.stderr
    assert not (tmp_path / "nope").exists()
    (tmp_path / "file").write_text("x")
    a_file = syncfs_cli("sync", str(tmp_path / "file"), "--tracker", token)
    assert a_file.returncode != 0 and "is not a directory" in a_file.stderr


def test_a_local_rewrite_of_the_bytes_the_share_has_under_newer_attributes_takes_them(cluster: Cluster) -> None:
    """The same bytes rewritten here while another peer touched the file: once the
    write is pushed (nothing new: the share has these bytes), the share's newer mtime
    comes here, instead of both sides thinking they agree (found by the randomized
    convergence test: one mtime differed for good)."""
    s = cluster.add_peer(watched=True)
    p2, p3 = cluster.start_peers(2)
    (s.mnt / "y").write_bytes(b"same bytes\n")
    wait_same_tree([s, p2, p3])
    later = time.time_ns() + 3600 * 10**9
    with open(s.mnt / "y", "r+b") as f:
        def rewrite() -> None:  # writes keep the watcher waiting for quiet before it pushes
            f.seek(0)
            f.write(b"same bytes\n")
            f.flush()

        rewrite()
        os.utime(p2.mnt / "y", ns=(later, later))  # meanwhile, in the share
        wait_for(lambda: rewrite() or p3.path("y").stat().st_mtime_ns == later, what="the touch on p3")
        seq = cli_status(p3)["tracker"]["last_seq"]
        wait_for(lambda: rewrite() or cli_status(s)["tracker"]["last_seq"] >= seq, what="the touch applied on s1")
    tree = wait_same_tree([s, p2, p3], timeout=30)
    assert sorted(tree) == ["y"] and tree["y"].mtime_ns == later, tree
