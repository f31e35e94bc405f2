"""A seeded random workload of multi-chunk files on three mounts: whole writes, edits in
the middle, appends, truncates, renames and deletes, with peer and tracker kills in
between (so transfers are cut off mid-file), converges without losing a version.

At the end every peer shows the same tree, and the bytes of every write that no later
operation touched (on any peer) are still there, at their path or in a conflict copy.
"""

import hashlib
import os
import random

import pytest
from harness import crash_now, wait_same_tree

pytestmark = pytest.mark.timeout(300)

SEED = int(os.environ.get("SYNCFS_CONVERGENCE_SEED", "20261202"))
OPERATIONS = int(os.environ.get("SYNCFS_CONVERGENCE_BIG_OPS", "60"))
NAMES = ["a.bin", "b.bin", "d/c.bin"]
KiB = 1 << 10


def test_random_edits_of_big_files_converge(cluster):
    cluster.expect_log(r"tracker 127\.0\.0\.11|chunk link|download of|cannot apply")
    rng = random.Random(SEED)
    peers = cluster.start_peers(3)
    touched: dict[str, int] = {}  # path -> index of the last operation that touched it
    written: dict[str, tuple[str, int]] = {}  # sha256 of written bytes -> (path, op index)

    def wrote(rel: str, data: bytes, i: int) -> None:
        touched[rel] = i
        written[hashlib.sha256(data).hexdigest()] = (rel, i)

    for i in range(OPERATIONS):
        if crash_now(cluster, peers, rng, tracker=0.03, peer=0.07):
            continue
        peer = rng.choice(peers)
        rel = rng.choice(NAMES)
        path = peer.path(rel)
        op = rng.choice(["write", "write", "edit", "edit", "append", "truncate", "rename", "delete"])
        try:
            if op == "write":
                os.makedirs(path.parent, exist_ok=True)
                data = rng.randbytes(rng.randint(256, 3072) * KiB)
                path.write_bytes(data)
                wrote(rel, data, i)
            elif op in ("edit", "append", "truncate"):
                # through one handle: what is read is the inode that is written
                with open(path, "r+b") as f:
                    data = bytearray(f.read())
                    if op == "edit":
                        at = rng.randrange(len(data) + 1)
                        data[at:at + 64 * KiB] = rng.randbytes(64 * KiB)
                    elif op == "append":
                        data += rng.randbytes(rng.randint(1, 200) * KiB)
                    else:
                        del data[rng.randrange(len(data) + 1):]
                    f.seek(0)
                    f.write(data)
                    f.truncate()
                wrote(rel, bytes(data), i)
            elif op == "rename":
                rel2 = rng.choice(NAMES)
                os.makedirs(peer.path(rel2).parent, exist_ok=True)
                os.rename(path, peer.path(rel2))
                touched[rel] = touched[rel2] = i
            else:
                os.unlink(path)
                touched[rel] = i
        except OSError:
            pass  # not there (yet) on this peer, or its bytes cannot be had right now

    tree = wait_same_tree(peers, timeout=180)
    present = set()
    for rel, node in tree.items():
        if node.kind == "file":
            present.add(hashlib.sha256(peers[0].path(rel).read_bytes()).hexdigest())
    lost = [(rel, i) for digest, (rel, i) in written.items() if touched.get(rel) == i and digest not in present]
    assert not lost, f"writes lost (seed {SEED}): {lost}"
