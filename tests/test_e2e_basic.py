"""Issue 2 end to end: a tracker and three FUSE peers keep one tree identical."""

import os
import shutil
import subprocess
import threading

import pytest
from harness import tree_snapshot, wait_for, wait_same_tree

pytestmark = pytest.mark.timeout(180)


def run(*cmd: str, cwd: os.PathLike | None = None, **kw: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, cwd=cwd, check=True, capture_output=True, text=True, timeout=60, **kw
    )


@pytest.fixture
def three(cluster):
    return cluster.start_peers(3)


def test_file_ops_propagate_with_bytes_mode_and_mtime(three):
    p1, p2, p3 = three
    payload = os.urandom(300_000)
    (p1.path("a.bin")).write_bytes(payload)
    os.utime(p1.path("a.bin"), ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    tree = wait_same_tree(three)
    assert tree["a.bin"].size == len(payload)
    assert tree["a.bin"].mtime_ns == 1_600_000_000_123_456_789
    assert p3.path("a.bin").read_bytes() == payload

    # mkdir, nested files, chmod +x, symlink
    os.makedirs(p2.path("dir/sub"))
    p2.path("dir/sub/s.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(p2.path("dir/sub/s.sh"), 0o755)
    os.symlink("sub/s.sh", p2.path("dir/link"))
    tree = wait_same_tree(three)
    assert tree["dir/sub/s.sh"].mode == 0o755
    assert tree["dir/link"].target == "sub/s.sh"
    assert p1.path("dir/link").read_text() == "#!/bin/sh\necho hi\n"

    # truncate, rename of a file, rename of a directory with contents
    os.truncate(p3.path("a.bin"), 1000)
    os.rename(p3.path("dir/sub/s.sh"), p3.path("dir/sub/t.sh"))
    os.rename(p3.path("dir"), p3.path("moved"))
    tree = wait_same_tree(three)
    assert tree["a.bin"].size == 1000
    assert "moved/sub/t.sh" in tree and "dir" not in tree
    assert p1.path("a.bin").read_bytes() == payload[:1000]

    # unlink, rmdir
    os.unlink(p1.path("moved/sub/t.sh"))
    os.rmdir(p1.path("moved/sub"))
    os.unlink(p1.path("a.bin"))
    tree = wait_same_tree(three)
    assert sorted(tree) == ["moved", "moved/link"]


def test_rename_over_existing_file(three):
    p1, p2, p3 = three
    p1.path("target").write_text("old")
    wait_same_tree(three)
    p2.path("tmp").write_text("new content")
    os.rename(p2.path("tmp"), p2.path("target"))
    tree = wait_same_tree(three)
    assert sorted(tree) == ["target"]
    assert p3.path("target").read_text() == "new content"


def test_cp_a_of_500_files(three, tmp_path):
    p1, _, _ = three
    src = tmp_path / "src"
    for d in range(10):
        (src / f"d{d}").mkdir(parents=True)
        for f in range(50):
            (src / f"d{d}" / f"f{f}.txt").write_bytes(os.urandom(f * 37 + d))
    run("cp", "-a", str(src), str(p1.path("tree")))
    tree = wait_same_tree(three, timeout=60)
    assert sum(1 for n in tree.values() if n.kind == "file") == 500
    assert tree_snapshot(src) == {
        k[len("tree/") :]: v for k, v in tree.items() if k.startswith("tree/")
    }


def test_vim_atomic_save(three):
    p1, p2, p3 = three
    p1.path("notes.txt").write_text("first line\nsecond line\n")
    wait_same_tree(three)
    env = dict(os.environ, HOME=str(p2.path().parent))
    run(
        "vim",
        "-u",
        "NONE",
        "-es",
        "-c",
        "%s/first/FIRST/",
        "-c",
        "wq",
        str(p2.path("notes.txt")),
        env=env,
    )
    wait_for(
        lambda: p3.path("notes.txt").read_text() == "FIRST line\nsecond line\n",
        what="vim's save on p3",
    )
    wait_same_tree(three)


def test_git_commit_and_fsck_on_another_peer(three):
    p1, p2, p3 = three
    repo = p1.path("repo")
    repo.mkdir()
    git = [
        "git",
        "-c",
        "user.email=t@example.com",
        "-c",
        "user.name=T",
        "-c",
        "init.defaultBranch=main",
    ]
    run(*git, "init", "-q", cwd=repo)
    for i in range(20):
        (repo / f"file{i}.txt").write_text(f"content {i}\n" * (i + 1))
    run(*git, "add", ".", cwd=repo)
    run(*git, "commit", "-qm", "first", cwd=repo)
    (repo / "file0.txt").write_text("changed\n")
    run(*git, "commit", "-qam", "second", cwd=repo)
    wait_same_tree(three, timeout=60)
    run("git", "fsck", "--strict", cwd=p2.path("repo"))
    log = run("git", "log", "--format=%s", cwd=p3.path("repo")).stdout.split()
    assert log == ["second", "first"]


def test_late_peer_and_restarted_peer_catch_up(cluster):
    p1, p2 = cluster.start_peers(2)
    p1.path("before.txt").write_text("made before p3 existed")
    os.mkdir(p1.path("d"))
    wait_same_tree([p1, p2])
    p3 = cluster.add_peer()
    wait_same_tree([p1, p2, p3])

    p3.stop()
    p1.path("while-away.txt").write_text("made while p3 was stopped")
    os.unlink(p1.path("before.txt"))
    wait_same_tree([p1, p2])
    p3.start()
    tree = wait_same_tree([p1, p2, p3])
    assert sorted(tree) == ["d", "while-away.txt"]


def test_reader_sees_old_or_new_never_a_mix(three):
    p1, p2, _ = three
    old = b"A" * (8 << 20)
    new = b"B" * (8 << 20)
    p1.path("f").write_bytes(old)
    wait_for(
        lambda: p2.path("f").stat().st_size == len(old) and p2.path("f").read_bytes() == old,
        what="old on p2",
    )
    with open(p2.path("f"), "rb") as reader:
        first = reader.read(1 << 20)
        p1.path("f").write_bytes(new)
        wait_for(lambda: p2.path("f").read_bytes() == new, what="new on p2")
        rest = reader.read()
    seen = first + rest
    assert seen in (old, new), "a reader saw a mix of two versions"


def test_cat_right_after_stat_shows_new_size(three):
    p1, p2, _ = three
    p1.path("grow").write_text("x")
    wait_for(lambda: p2.path("grow").read_text() == "x", what="first version")
    for i in range(2, 30):
        content = "y" * i
        p1.path("grow").write_text(content)
        wait_for(lambda n=i: p2.path("grow").stat().st_size == n, what=f"size {i}")
        assert p2.path("grow").read_text() == content


def test_tracker_restart_peers_reconnect(cluster):
    cluster.expect_log(r"tracker 127\.0\.0\.11")  # warnings while it is away are expected
    p1, p2 = cluster.start_peers(2)
    p1.path("one").write_text("1")
    wait_same_tree([p1, p2])
    cluster.tracker.kill()
    p1.path("two").write_text("2")  # committed locally, queued for the tracker
    cluster.tracker.start()
    p2.path("three").write_text("3")
    tree = wait_same_tree([p1, p2], timeout=30)
    assert sorted(tree) == ["one", "three", "two"]


def test_concurrent_writers_on_many_files(three):
    p1, p2, p3 = three

    def writer(peer, tag):
        for i in range(30):
            peer.path(f"{tag}-{i}").write_bytes(os.urandom(1000 + i))

    threads = [
        threading.Thread(target=writer, args=(p, t)) for p, t in ((p1, "a"), (p2, "b"), (p3, "c"))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    tree = wait_same_tree(three, timeout=60)
    assert len(tree) == 90


def test_bad_mountpoints_fail_clearly(cluster, tmp_path):
    import sys

    p1 = cluster.add_peer()
    base = [
        sys.executable,
        "-m",
        "syncfs",
        "mount",
        "--tracker",
        cluster.tracker.token,
    ]
    missing = subprocess.run(
        [*base, str(tmp_path / "nope")], capture_output=True, text=True, timeout=30
    )
    assert missing.returncode != 0 and "does not exist" in missing.stderr
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    busy = subprocess.run([*base, str(full)], capture_output=True, text=True, timeout=30)
    assert busy.returncode != 0 and "not empty" in busy.stderr
    other = tmp_path / "other"
    other.mkdir()
    second = subprocess.run(
        [*base, str(other), "--cache-dir", str(p1.cache_dir)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode != 0 and "in use" in second.stderr
    assert not os.path.ismount(other)


def test_background_mount_and_fusermount_unmount(cluster, tmp_path):
    import sys

    mnt = tmp_path / "bg"
    mnt.mkdir()
    cmd = [
        sys.executable,
        "-m",
        "syncfs",
        "mount",
        str(mnt),
        "--tracker",
        cluster.tracker.token,
        "--listen",
        "127.0.0.20",
        "--cache-dir",
        str(tmp_path / "bgcache"),
        "--log-file",
        str(tmp_path / "bg.log"),
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert os.path.ismount(mnt)
        (mnt / "hello").write_text("hi")
        pid = int(done.stdout.split("pid ")[1].split(",")[0])
        subprocess.run(["fusermount3", "-u", str(mnt)], check=True, timeout=30)
        wait_for(lambda: not os.path.exists(f"/proc/{pid}"), what="the mount process to exit")
        assert not os.path.ismount(mnt)
    finally:
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)], timeout=30)
    shutil.rmtree(tmp_path / "bgcache", ignore_errors=True)


def test_remote_touch_shows_on_a_file_the_kernel_has_cached(three):
    # with the writeback cache the kernel keeps its own mtime of an inode it knows: a
    # remote mtime change must reach it all the same (it gets a new inode)
    p1, p2, _ = three
    p1.path("t").write_bytes(b"x" * 1000)
    wait_for(lambda: p2.path("t").exists() and p2.path("t").read_bytes() == b"x" * 1000, what="t on p2")
    when = 1_500_000_000_000_000_000
    with open(p2.path("t"), "rb") as held:
        os.utime(p1.path("t"), ns=(when, when))
        wait_for(lambda: p2.path("t").stat().st_mtime_ns == when, what="the new mtime on p2")
        assert held.read() == b"x" * 1000  # the old inode still reads the same bytes
    assert p2.path("t").read_bytes() == b"x" * 1000
    wait_same_tree(three)


def test_written_file_has_the_same_mtime_everywhere(three):
    # the kernel owns the mtime of a file being written (writeback cache); what it shows
    # on the writer is what the others get
    p1, p2, p3 = three
    with open(p1.path("w"), "wb") as f:
        for _ in range(50):
            f.write(os.urandom(100_000))
        f.flush()
        os.fsync(f.fileno())
        f.write(b"tail")
    os.truncate(p1.path("w"), 1_000_000)
    print("DBG", os.listdir(p1.path()), os.stat(p1.path("w")))
    tree = wait_same_tree(three)
    print("DBG", tree)
    assert tree["w"].size == 1_000_000
    assert tree["w"].mtime_ns == os.stat(p1.path("w")).st_mtime_ns
