"""A full disk under a peer's store: writers get ENOSPC, nothing half-written shows, and sync
completes once space is back."""

import errno
import os
import subprocess

import pytest
from harness import wait_for

pytestmark = pytest.mark.timeout(120)

MiB = 1 << 20


@pytest.fixture
def small_store(tmp_path):
    """A 48 MiB tmpfs to hold one peer's store."""
    path = tmp_path / "tmpfs"
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m,mode=0700", "tmpfs", str(path)],
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a tmpfs: {done.stderr}")
        pytest.skip(f"cannot mount a tmpfs: {done.stderr}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], timeout=30)


def test_full_store_gives_enospc_and_recovers(cluster, small_store):
    cluster.expect_log(r"No space left|database or disk is full|could not commit|download of")
    p1 = cluster.add_peer()
    p2 = cluster.add_peer(start=False)
    p2.cache_dir = small_store / "cache"
    p2.start()

    # a local writer on the full peer gets ENOSPC, as on any file system
    with pytest.raises(OSError) as info:
        with open(p2.path("too-big"), "wb") as f:
            for _ in range(64):
                f.write(os.urandom(MiB))
    assert info.value.errno == errno.ENOSPC
    os.unlink(p2.path("too-big"))

    # a download that does not fit waits, shows nothing unverified, and completes when
    # space comes back
    filler = os.urandom(20 * MiB)
    p1.path("filler").write_bytes(filler)
    wait_for(lambda: p2.path("filler").read_bytes() == filler, timeout=60, what="filler on p2")
    big = os.urandom(36 * MiB)
    p1.path("big").write_bytes(big)
    wait_for(lambda: "No space left" in p2.log_text(), timeout=60, what="p2 to run out of space")
    assert p2.path("big").stat().st_size == len(big)  # listed at once, as a stale file
    os.unlink(p1.path("filler"))  # p2 deletes its copy and gets the space back
    wait_for(lambda: not p2.path("filler").exists(), what="filler gone on p2")
    wait_for(lambda: p2.path("big").read_bytes() == big, timeout=90, interval=0.5, what="big on p2")
