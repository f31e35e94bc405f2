"""Issue 13, finding 7: rsync into a share, as a newcomer copies a tree in. ``rsync -a SRC/
MOUNT/`` also sets the mode and times of the mount's root (which is no entry of the share:
they stay local), and writes every file as a temporary ``.name.XXXXXX`` that it renames
over the name: the tree arrives everywhere, and none of the temporary files that vanished
meanwhile shows up as an error in ``syncfs status``."""

from __future__ import annotations

import os
import subprocess

import pytest
from harness import cli_status, wait_for, wait_same_tree

pytestmark = pytest.mark.timeout(180)


def rsync(src, dest) -> None:
    subprocess.run(["rsync", "-a", f"{src}/", f"{dest}/"], check=True, timeout=120,
                   capture_output=True)


def test_rsync_a_tree_into_a_mount_and_a_watched_directory(cluster, tmp_path):
    p1 = cluster.add_peer()
    p2 = cluster.add_peer(extra_args=["--max-rate", "8M"])  # downloads still running while files are replaced
    s3 = cluster.add_peer(watched=True)
    src = tmp_path / "src"
    for i in range(60):
        d = src / f"d{i % 6}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.bin").write_bytes(os.urandom(20_000 + 7_000 * i))
    os.chmod(src, 0o750)  # rsync -a gives the mount's root this mode
    rsync(src, p1.mnt)
    rsync(src, s3.mnt / "copied")
    for f in sorted(src.rglob("*.bin"))[::2]:  # a second run replaces half of them
        f.write_bytes(os.urandom(30_000))
    rsync(src, p1.mnt)
    rsync(src, s3.mnt / "copied")
    tree = wait_same_tree([p1, p2, s3], timeout=90)
    assert sum(1 for node in tree.values() if node.kind == "file") == 120
    assert not any(os.path.basename(path).startswith(".") for path in tree)  # no temporary file left
    for peer in (p1, p2, s3):
        wait_for(lambda peer=peer: peer.settled(), timeout=60, what=f"{peer.name} to settle")
        s = cli_status(peer)
        assert s["errors"] == [], f"{peer.name}: {s['errors']}"
        assert s["outbox"] == 0
