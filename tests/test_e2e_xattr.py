"""Extended attributes: user.* ones sync like content; user.syncfs.* tell a file's state."""

import errno
import os
import subprocess

import pytest
from harness import wait_for

pytestmark = pytest.mark.timeout(120)

MiB = 1 << 20


def getfattr(path, name: str) -> str:
    done = subprocess.run(["getfattr", "--only-values", "-n", name, str(path)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_user_xattrs_sync_and_syncfs_ones_show_state(cluster):
    p1 = cluster.add_peer()
    p2 = cluster.add_peer(extra_args=["--on-demand"])
    p1.path("doc.txt").write_text("hello")
    os.mkdir(p1.path("dir"))
    subprocess.run(["setfattr", "-n", "user.comment", "-v", "hello", str(p1.path("doc.txt"))], check=True, timeout=30)
    os.setxattr(p1.path("dir"), "user.tag", b"\x00binary\xff")
    wait_for(lambda: getfattr(p2.path("doc.txt"), "user.comment") == "hello", what="user.comment on p2")
    wait_for(lambda: os.getxattr(p2.path("dir"), "user.tag") == b"\x00binary\xff", what="user.tag on p2")
    # on the on-demand peer the file is stale until read, then synced
    assert getfattr(p2.path("doc.txt"), "user.syncfs.state") == "stale"
    assert p2.path("doc.txt").read_text() == "hello"
    wait_for(lambda: getfattr(p2.path("doc.txt"), "user.syncfs.state") == "synced", what="synced state")
    assert "user.syncfs.version" in subprocess.run(["getfattr", "-d", str(p2.path("doc.txt"))],
                                                   capture_output=True, text=True, timeout=30).stdout
    assert p1.path("doc.txt").read_text() == "hello"  # an xattr change left the content alone
    # removal syncs too; syncfs's own attributes are read-only
    os.removexattr(p2.path("doc.txt"), "user.comment")
    wait_for(lambda: "user.comment" not in os.listxattr(p1.path("doc.txt")), what="removal on p1")
    with pytest.raises(OSError) as info:
        os.setxattr(p1.path("doc.txt"), "user.syncfs.state", b"synced")
    assert info.value.errno == errno.EPERM
    with pytest.raises(OSError) as info:
        os.setxattr(p1.path("doc.txt"), "user.big", b"x" * (70 * 1024))
    assert info.value.errno in (errno.E2BIG, errno.ERANGE, errno.ENOSPC)
    # only user.* attributes are kept; others are absent (the kernel asks for
    # security.capability before every write) and cannot be set
    with pytest.raises(OSError) as info:
        os.getxattr(p1.path("doc.txt"), "security.capability")
    assert info.value.errno == errno.ENODATA
    with pytest.raises(OSError) as info:
        os.setxattr(p1.path("doc.txt"), "trusted.note", b"x")
    assert info.value.errno in (errno.ENOTSUP, errno.EPERM)


def test_stale_then_downloading_then_synced(cluster):
    p1 = cluster.add_peer()
    p2 = cluster.add_peer(extra_args=["--max-rate", "16M"])
    p1.path("big").write_bytes(os.urandom(32 * MiB))
    seen = set()

    def done() -> bool:
        seen.add(getfattr(p2.path("big"), "user.syncfs.state"))
        return "synced" in seen

    wait_for(done, timeout=60, interval=0.05, what="big synced on p2")
    assert "downloading" in seen, seen
