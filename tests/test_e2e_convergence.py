"""A seeded random workload on three peers, with tracker and peer kills in between, converges
(three mounts, or two mounts and a watched directory).

At the end every peer shows the same tree, and every write that no later operation
touched (on any peer) is still there, at its path or in a conflict copy.
"""

import os
import random

import pytest
from harness import crash_now, wait_same_tree

pytestmark = pytest.mark.timeout(300)

SEED = int(os.environ.get("SYNCFS_CONVERGENCE_SEED", "20261124"))
OPERATIONS = int(os.environ.get("SYNCFS_CONVERGENCE_OPS", "250"))
DIRS = ["", "a", "b", "a/c"]
NAMES = ["x.txt", "y.txt", "z"]


@pytest.mark.parametrize("watched", [0, 1], ids=["mounts", "with-a-watched-directory"])
def test_random_operations_converge(cluster, watched):
    """Three peers: all FUSE mounts, or one of them a plain directory (``syncfs sync``)."""
    cluster.expect_log(r"tracker 127\.0\.0\.11|chunk link|download of|cannot apply|cannot sync")
    rng = random.Random(SEED)
    peers = [cluster.add_peer(watched=True) for _ in range(watched)] + cluster.start_peers(3 - watched)
    touched: dict[str, int] = {}  # path -> index of the last operation that touched it
    tokens: dict[str, tuple[str, int]] = {}  # token -> (path, op index) of its write

    def touch(path: str, i: int) -> None:
        touched[path] = i
        for prefix in (path + "/",):
            for other in list(touched):
                if other.startswith(prefix):
                    touched[other] = i

    for i in range(OPERATIONS):
        if crash_now(cluster, peers, rng, tracker=0.02, peer=0.02):
            continue
        peer = rng.choice(peers)
        d = rng.choice(DIRS)
        rel = f"{d}/{rng.choice(NAMES)}" if d else rng.choice(NAMES)
        path = peer.path(rel)
        op = rng.choice(["create", "create", "write", "append", "append", "truncate", "rename", "delete", "mkdir", "rmdir"])
        token = f"<op{i}-{peer.name}>\n"
        try:
            if op in ("create", "write"):
                os.makedirs(path.parent, exist_ok=True)
                path.write_text(token * rng.randint(1, 50))
                touch(rel, i)
                tokens[token] = (rel, i)
            elif op == "append":
                with open(path, "a") as f:
                    f.write(token)
                touch(rel, i)
                tokens[token] = (rel, i)
            elif op == "truncate":
                os.truncate(path, rng.randint(0, 20))
                touch(rel, i)
            elif op == "rename":
                d2 = rng.choice(DIRS)
                rel2 = f"{d2}/{rng.choice(NAMES)}" if d2 else rng.choice(NAMES)
                os.makedirs(peer.path(rel2).parent, exist_ok=True)
                os.rename(path, peer.path(rel2))
                touch(rel, i)
                touch(rel2, i)
            elif op == "delete":
                os.unlink(path)
                touch(rel, i)
            elif op == "mkdir":
                os.makedirs(peer.path(d + "/sub" if d else "sub"), exist_ok=True)
            elif op == "rmdir":
                os.rmdir(peer.path(d) if d else peer.path("sub"))
                touch(d or "sub", i)
        except OSError:
            pass  # the path is not there (yet) on this peer, or a directory is in the way

    tree = wait_same_tree(peers, timeout=120)
    everything = ""
    for rel, node in tree.items():
        if node.kind == "file":
            everything += peers[0].path(rel).read_text()
    lost = [
        (token.strip(), rel) for token, (rel, i) in tokens.items()
        if touched.get(rel) == i and token not in everything
        and not any(touched.get(p, -1) > i for p in _parents(rel))
    ]
    assert not lost, f"writes lost (seed {SEED}): {lost[:10]}"


def _parents(rel: str) -> list[str]:
    parts = rel.split("/")[:-1]
    return ["/".join(parts[: k + 1]) for k in range(len(parts))]
