"""Issue 7, pinning: ``syncfs pin|unpin``, ``user.syncfs.pinned`` and ``--cache-size``.

Freed space is measured as the blocks the store's data files occupy (they are sparse), so a
file that only kept its apparent size does not pass for freed.
"""

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness import cli_status, syncfs_cli, wait_for

pytestmark = pytest.mark.timeout(150)

MiB = 1 << 20


syncfs = syncfs_cli
status = cli_status


def state(path: Path) -> str:
    return os.getxattr(path, "user.syncfs.state").decode()


def allocated(peer) -> int:
    """Bytes the peer's data files occupy on disk (allocated blocks, not apparent size)."""
    data = peer.cache_dir / "data"
    return sum(os.stat(data / name).st_blocks * 512 for name in os.listdir(data))


def listed(peer, *paths: str) -> bool:
    """Every path is visible on ``peer`` (stale or not)."""
    return all(peer.path(p).exists() for p in paths)


def test_setfattr_pinned_downloads_and_pin_dir_recurses(cluster):
    p1 = cluster.add_peer()
    p2 = cluster.add_peer(extra_args=["--on-demand"])
    data = os.urandom(3 * MiB)
    p1.path("a.bin").write_bytes(data)
    os.makedirs(p1.path("dir/sub"))
    p1.path("dir/x.txt").write_text("x")
    p1.path("dir/sub/y.bin").write_bytes(os.urandom(MiB))
    wait_for(lambda: listed(p2, "a.bin", "dir/x.txt", "dir/sub/y.bin"), what="the tree on p2")
    assert state(p2.path("a.bin")) == "stale" and os.getxattr(p2.path("a.bin"), "user.syncfs.pinned") == b"0"
    assert status(p2)["bytes_received"] == 0
    subprocess.run(["setfattr", "-n", "user.syncfs.pinned", "-v", "1", str(p2.path("a.bin"))], check=True, timeout=30)
    wait_for(lambda: state(p2.path("a.bin")) == "pinned", what="a.bin pinned and complete on p2")
    assert status(p2)["bytes_received"] >= len(data)
    assert os.getxattr(p2.path("a.bin"), "user.syncfs.pinned") == b"1"
    assert state(p2.path("dir/x.txt")) == "stale"  # pinning one file fetched only that one
    # a directory pins everything below it, and what arrives there later
    done = syncfs("pin", str(p2.path("dir")))
    assert done.returncode == 0, done.stderr
    assert "pinned dir (2 file(s), 2 being fetched)" in done.stdout
    wait_for(lambda: state(p2.path("dir/x.txt")) == state(p2.path("dir/sub/y.bin")) == "pinned",
             what="dir pinned recursively")
    p1.path("dir/sub/later.txt").write_text("later")
    wait_for(lambda: listed(p2, "dir/sub/later.txt") and state(p2.path("dir/sub/later.txt")) == "pinned",
             what="a new file in a pinned directory to be fetched")
    assert status(p2)["pinned"] == ["a.bin", "dir"]
    # pins survive a restart, and pinned files are still local after it
    p2.stop()
    p2.start()
    assert state(p2.path("a.bin")) == "pinned" and state(p2.path("dir/sub/y.bin")) == "pinned"
    assert p2.path("a.bin").read_bytes() == data
    assert status(p2)["bytes_received"] == 0  # read from the local copy


def test_unpin_frees_space_while_another_peer_holds_the_file(cluster):
    p1 = cluster.add_peer()
    p2 = cluster.add_peer(extra_args=["--on-demand"])
    data = os.urandom(8 * MiB)
    p1.path("big.bin").write_bytes(data)
    wait_for(lambda: listed(p2, "big.bin"), what="big.bin on p2")
    assert syncfs("pin", str(p2.path("big.bin"))).returncode == 0
    wait_for(lambda: state(p2.path("big.bin")) == "pinned", what="big.bin pinned on p2")
    before = allocated(p2)
    assert before >= len(data)
    done = syncfs("unpin", str(p2.path("big.bin")))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "freed    big.bin" in done.stdout, done.stdout
    assert allocated(p2) <= before - len(data) + 64 * 1024
    assert state(p2.path("big.bin")) == "stale"
    assert os.getxattr(p2.path("big.bin"), "user.syncfs.pinned") == b"0"
    # p1 still holds it: nothing was lost, and p2 fetches it again when it is read
    received = status(p2)["bytes_received"]
    assert p2.path("big.bin").read_bytes() == data
    assert status(p2)["bytes_received"] >= received + len(data)
    assert p1.path("big.bin").read_bytes() == data


def test_unpin_is_refused_for_the_last_copy_and_frees_nothing(cluster):
    p1 = cluster.add_peer(extra_args=["--on-demand"])
    p2 = cluster.add_peer(extra_args=["--on-demand"])
    # written on p2 and never fetched by p1 (on demand): p2 is its only holder
    mine = os.urandom(2 * MiB)
    p2.path("mine.bin").write_bytes(mine)
    wait_for(lambda: listed(p1, "mine.bin") and status(p2)["outbox"] == 0, what="mine.bin announced")
    before = allocated(p2)
    done = syncfs("unpin", str(p2.path("mine.bin")))
    assert done.returncode == 1, done.stdout
    assert "refused  mine.bin: this peer holds the only copy" in done.stdout
    assert allocated(p2) == before and state(p2.path("mine.bin")) == "synced"
    assert any("unpin of mine.bin refused" in e["message"] for e in status(p2)["errors"])
    # written on p1 and fetched by p2, but p1 is offline: p2's is the only copy reachable
    theirs = os.urandom(2 * MiB)
    p1.path("theirs.bin").write_bytes(theirs)
    wait_for(lambda: listed(p2, "theirs.bin"), what="theirs.bin on p2")
    assert p2.path("theirs.bin").read_bytes() == theirs
    wait_for(lambda: state(p2.path("theirs.bin")) == "synced", what="theirs.bin complete on p2")
    p1_id = status(p1)["peer_id"]
    p1.stop()
    wait_for(lambda: p1_id not in status(p2)["peers_online"], what="p1 gone for p2")
    before = allocated(p2)
    done = syncfs("unpin", str(p2.path("theirs.bin")))
    assert done.returncode == 1, done.stdout
    assert "refused  theirs.bin: no other holder is online" in done.stdout
    assert allocated(p2) == before and p2.path("theirs.bin").read_bytes() == theirs
    # with the other holder back, the same request frees it
    p1.start()
    wait_for(lambda: p1_id in status(p2)["peers_online"], what="p1 back for p2")
    done = syncfs("unpin", str(p2.path("theirs.bin")))
    assert done.returncode == 0 and "freed    theirs.bin" in done.stdout, done.stdout
    assert allocated(p2) < before - MiB


def test_cache_size_evicts_least_recently_used_unpinned_files(cluster):
    p1 = cluster.add_peer()
    p2 = cluster.add_peer(extra_args=["--on-demand", "--cache-size", "3.5M"])
    files = {name: os.urandom(MiB) for name in ("keep.bin", "f0", "f1", "f2", "f3")}
    for name, data in files.items():
        p1.path(name).write_bytes(data)
    wait_for(lambda: listed(p2, *files) and status(p2)["outbox"] == 0, what="the files on p2")
    wait_for(lambda: p1.status()["outbox"] == 0, what="p1's files announced")
    assert syncfs("pin", str(p2.path("keep.bin"))).returncode == 0
    wait_for(lambda: state(p2.path("keep.bin")) == "pinned", what="keep.bin pinned")

    def read(name: str) -> None:
        assert p2.path(name).read_bytes() == files[name]
        wait_for(lambda: state(p2.path(name)) == "synced", what=f"{name} complete on p2")

    read("f0")
    read("f1")  # 3 MiB kept: under the limit, nothing goes
    assert all(state(p2.path(n)) != "stale" for n in ("keep.bin", "f0", "f1"))
    read("f2")  # 4 MiB: the least recently used unpinned file goes
    wait_for(lambda: state(p2.path("f0")) == "stale", what="f0 evicted")
    read("f3")
    wait_for(lambda: state(p2.path("f1")) == "stale", what="f1 evicted")
    assert state(p2.path("keep.bin")) == "pinned"
    assert state(p2.path("f2")) == state(p2.path("f3")) == "synced"
    s = status(p2)
    assert s["cache_used"] <= 3.5 * MiB and s["cache_size"] == int(3.5 * MiB)
    assert allocated(p2) <= 3.5 * MiB + 256 * 1024
    # an evicted file still reads correctly (fetched again), and p1 never lost anything
    assert p2.path("f0").read_bytes() == files["f0"]
    assert all(p1.path(n).read_bytes() == d for n, d in files.items())


def test_bad_pin_requests_get_a_clear_error_and_change_nothing(cluster, tmp_path):
    p1 = cluster.add_peer()
    p2 = cluster.add_peer(extra_args=["--on-demand"])
    p1.path("doc.txt").write_text("hello")
    wait_for(lambda: listed(p2, "doc.txt"), what="doc.txt on p2")
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("not in the share")
    done = syncfs("pin", str(p2.path("doc.txt")), str(outside))
    assert done.returncode == 1 and "is outside the share mounted at" in done.stderr, done.stderr
    done = syncfs("pin", str(p2.path("doc.txt")), str(p2.mnt) + "/../escape")  # '..' counts
    assert done.returncode == 1 and "is outside the share mounted at" in done.stderr, done.stderr
    done = syncfs("unpin", str(p2.path("doc.txt")), str(p2.path("nope.txt")))
    assert done.returncode == 1 and "nope.txt: no such file or directory" in done.stderr, done.stderr
    done = syncfs("pin", str(p2.path("nope.txt")), str(p2.path("doc.txt")))
    assert done.returncode == 1 and "nope.txt: no such file or directory" in done.stderr, done.stderr
    for bad in (b"2", b"yes", b""):
        with pytest.raises(OSError) as info:
            os.setxattr(p2.path("doc.txt"), "user.syncfs.pinned", bad)
        assert info.value.errno == errno.EINVAL
    from syncfs.control import ControlError, request

    for paths in ([], "doc.txt", [1], ["../x"], ["/abs"]):
        with pytest.raises(ControlError):
            request(p2.cache_dir, {"t": "pin", "paths": paths})
    s = status(p2)
    assert s["pinned"] == [] and s["bytes_received"] == 0 and state(p2.path("doc.txt")) == "stale"
    assert syncfs("pin", str(tmp_path)).returncode == 1  # no mount there at all


def test_pin_and_unpin_in_a_full_mount_keep_every_file(cluster):
    p1 = cluster.add_peer()
    p2 = cluster.add_peer()
    data = os.urandom(2 * MiB)
    p1.path("a.bin").write_bytes(data)
    wait_for(lambda: listed(p2, "a.bin") and state(p2.path("a.bin")) == "synced", what="a.bin on p2")
    done = syncfs("pin", str(p2.path("a.bin")))
    assert done.returncode == 0 and "this mount keeps every file anyway" in done.stdout, done.stdout
    assert state(p2.path("a.bin")) == "pinned"
    before = allocated(p2)
    done = syncfs("unpin", str(p2.mnt / "a.bin"))
    assert done.returncode == 0 and "mount with --on-demand to free space" in done.stdout, done.stdout
    assert state(p2.path("a.bin")) == "synced" and allocated(p2) == before


def test_two_peers_unpinning_the_last_two_copies_at_once_keep_one(cluster):
    p1 = cluster.add_peer(extra_args=["--on-demand"])
    p2 = cluster.add_peer(extra_args=["--on-demand"])
    p3 = cluster.add_peer(extra_args=["--on-demand"])  # has neither copy; reads at the end
    data = os.urandom(2 * MiB)
    p1.path("shared.bin").write_bytes(data)
    wait_for(lambda: listed(p2, "shared.bin") and status(p1)["outbox"] == 0, what="shared.bin on p2")
    assert p2.path("shared.bin").read_bytes() == data  # read once: a complete, unpinned copy
    wait_for(lambda: state(p2.path("shared.bin")) == "synced", what="p2's copy complete")
    cmd = [sys.executable, "-m", "syncfs", "unpin"]
    both = [subprocess.Popen([*cmd, str(p.path("shared.bin"))], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for p in (p1, p2)]
    outs = [b.communicate(timeout=30) for b in both]
    results = sorted(b.returncode for b in both)
    assert results == [0, 1], outs
    text = "".join(o for o, _ in outs)
    assert text.count("freed    shared.bin") == 1 and text.count("refused  shared.bin") == 1, text
    assert sorted(state(p.path("shared.bin")) for p in (p1, p2)) == ["stale", "synced"]
    assert p3.path("shared.bin").read_bytes() == data  # the kept copy serves everyone
