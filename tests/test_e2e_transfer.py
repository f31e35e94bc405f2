"""Issue 3 end to end: only missing chunks move, from every holder, on demand, resumably."""

import errno
import os
import shutil
import subprocess

import pytest
from harness import wait_for, wait_same_tree

pytestmark = pytest.mark.timeout(240)

MiB = 1 << 20




def received(peer) -> int:
    return peer.status()["bytes_received"]



def du_bytes(path) -> int:
    """What ``du`` says ``path`` takes on disk, in bytes."""
    done = subprocess.run(["du", "-B1", str(path)], capture_output=True, text=True, check=True, timeout=10)
    return int(done.stdout.split()[0])


def write_random(path, size: int, seed: int) -> bytes:
    import random

    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return data


def wait_content(peer, rel: str, data: bytes, timeout: float = 60) -> None:
    def same() -> bool:
        p = peer.path(rel)
        return p.stat().st_size == len(data) and p.read_bytes() == data

    wait_for(same, timeout=timeout, interval=0.1, what=f"{rel} on {peer.name}")
    wait_for(lambda: peer.settled(), timeout=timeout, what=f"{peer.name} to settle")


def test_edits_move_only_changed_chunks(cluster):
    p1, p2, p3 = cluster.start_peers(3)
    size = 64 * MiB
    data = write_random(p1.path("big"), size, 1)
    for p in (p2, p3):
        wait_content(p, "big", data)
    before = {p.name: received(p) for p in (p2, p3)}

    # 1 MiB overwritten in the middle
    with open(p1.path("big"), "r+b") as f:
        f.seek(size // 2)
        f.write(os.urandom(MiB))
    data = p1.path("big").read_bytes()
    for p in (p2, p3):
        wait_content(p, "big", data)
    moved = {p.name: received(p) - before[p.name] for p in (p2, p3)}
    assert all(m <= size // 10 for m in moved.values()), moved

    # 100 bytes inserted at the start
    before = {p.name: received(p) for p in (p2, p3)}
    data = os.urandom(100) + data
    p1.path("big").write_bytes(data)
    for p in (p2, p3):
        wait_content(p, "big", data)
    moved = {p.name: received(p) - before[p.name] for p in (p2, p3)}
    assert all(m <= size // 10 for m in moved.values()), moved


def test_rename_and_copy_move_no_chunk_data(cluster):
    p1, p2 = cluster.start_peers(2)
    data = write_random(p1.path("orig"), 32 * MiB, 2)
    wait_content(p2, "orig", data)
    before = received(p2)
    os.rename(p1.path("orig"), p1.path("renamed"))
    shutil.copyfile(p1.path("renamed"), p1.path("copy"))
    wait_content(p2, "renamed", data)
    wait_content(p2, "copy", data)
    wait_same_tree([p1, p2])
    assert received(p2) == before


def test_download_survives_a_holder_killed_midway(cluster):
    p1, p2, p3 = cluster.start_peers(3)
    cluster.expect_log(r"chunk link|download of")
    data = write_random(p1.path("f"), 48 * MiB, 3)
    wait_content(p2, "f", data)  # p1 and p2 hold it now
    p4 = cluster.add_peer(extra_args=["--on-demand"])
    wait_for(lambda: p4.path("f").stat().st_size == len(data), what="the file listed on p4")
    with open(p4.path("f"), "rb") as f:
        assert f.read(4096) == data[:4096]  # p4 has started on it
        p1.kill()
        assert f.read() == data[4096:]


def test_on_demand_read_moves_only_what_it_covers(cluster):
    p1 = cluster.add_peer()
    p2 = cluster.add_peer(extra_args=["--on-demand"])
    size = 64 * MiB
    data = write_random(p1.path("remote"), size, 4)
    wait_for(lambda: p2.path("remote").stat().st_size == size, what="the stale file to be listed")
    assert received(p2) == 0  # listed with its final size, nothing fetched yet
    assert du_bytes(p2.path("remote")) == 512  # online only: one block, not 0 (see the tar test)
    with open(p2.path("remote"), "rb") as f:
        f.seek(size - 4096)
        assert f.read(4096) == data[-4096:]
    tail = received(p2)
    assert 0 < tail <= 2 * 4 * MiB  # at most two chunks (max chunk size 4 MiB)
    # the blocks of what is here now (chunk writes finish in the background)
    wait_for(lambda: du_bytes(p2.path("remote")) >= 4096, what="du to count the fetched chunks")
    assert du_bytes(p2.path("remote")) <= tail + 4096
    assert p2.path("remote").read_bytes() == data
    assert received(p2) - tail <= size  # the rest moved once
    assert received(p2) <= size + 4 * MiB
    wait_for(lambda: du_bytes(p2.path("remote")) >= size, what="du to count the whole file")


def test_tar_sparse_of_an_online_only_file_archives_its_bytes(cluster, tmp_path):
    """GNU tar --sparse takes a file of 0 blocks for one hole and does not read it."""
    p1 = cluster.add_peer()
    p2 = cluster.add_peer(extra_args=["--on-demand"])
    data = write_random(p1.path("disk.img"), 8 * MiB, 8)
    wait_for(lambda: p2.path("disk.img").stat().st_size == len(data), what="the stale file on p2")
    archive, out = tmp_path / "a.tar", tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-cSf", str(archive), "-C", str(p2.mnt), "disk.img"], check=True, timeout=60)
    subprocess.run(["tar", "-xSf", str(archive), "-C", str(out)], check=True, timeout=60)
    assert (out / "disk.img").read_bytes() == data


def test_read_with_no_holder_online_fails_with_eio(cluster):
    cluster.expect_log(r"read of .* failed|download of")
    p1 = cluster.add_peer()
    p2 = cluster.add_peer(extra_args=["--on-demand", "--fetch-timeout", "2"])
    write_random(p1.path("lonely"), 8 * MiB, 5)
    wait_for(lambda: p2.path("lonely").stat().st_size == 8 * MiB, what="the stale file")
    p1.stop()
    wait_for(lambda: not p2.status()["peers_online"], what="p2 to see p1 leave")
    with pytest.raises(OSError) as info:
        p2.path("lonely").read_bytes()
    assert info.value.errno == errno.EIO
    assert any("lonely" in e["message"] for e in p2.status()["errors"])


def test_sigkill_of_receiver_resumes_without_refetching(cluster):
    p1, p2 = cluster.start_peers(2)
    size = 96 * MiB
    data = write_random(p1.path("resume"), size, 6)
    wait_for(lambda: p2.status()["bytes_received"] >= 40 * MiB, what="p2 to be partway", interval=0.005)
    p2.kill()
    p2.start()
    wait_content(p2, "resume", data, timeout=90)
    got_after = received(p2)  # counters restart with the process
    assert got_after < size, f"refetched {got_after} bytes of {size}"


def test_on_demand_file_read_whole_becomes_complete_and_served(cluster):
    p1 = cluster.add_peer()
    p2 = cluster.add_peer(extra_args=["--on-demand"])
    data = write_random(p1.path("doc"), 8 * MiB, 7)
    wait_for(lambda: p2.path("doc").stat().st_size == len(data), what="the stale file on p2")
    assert p2.path("doc").read_bytes() == data
    wait_for(lambda: not p2.status()["stale"], what="p2 to count the file complete")
    p1.stop()  # p2 announced it, so a third peer can fetch it from p2 alone
    p3 = cluster.add_peer(extra_args=["--on-demand"])
    wait_content(p3, "doc", data)


def test_peers_keep_a_chunk_link_open_to_every_online_peer(cluster):
    # opened when the tracker's list arrives, so a first on-demand read need not set one up
    p1, p2, p3 = cluster.start_peers(3)
    ids = {p.name: p.status()["peer_id"] for p in (p1, p2, p3)}
    for p in (p1, p2, p3):
        others = sorted(v for k, v in ids.items() if k != p.name)
        wait_for(lambda p=p, others=others: p.status()["links"] == others,
                 what=f"{p.name} to link to the other peers")
        assert p.status()["bytes_received"] == 0
    p3.stop()
    for p in (p1, p2):
        wait_for(lambda p=p: ids["p3"] not in p.status()["links"], what=f"{p.name} to drop p3's link")


def test_a_peer_fetching_a_version_serves_its_pieces_to_the_others(cluster):
    # p2 has read (fetched) the first half of a file it does not hold completely; with the
    # only holder gone, p3 still gets that half, from p2
    p1 = cluster.add_peer()
    p2 = cluster.add_peer(extra_args=["--on-demand"])
    p3 = cluster.add_peer(extra_args=["--on-demand"])
    size = 16 * MiB
    data = write_random(p1.path("shared"), size, 8)
    for p in (p2, p3):
        wait_for(lambda p=p: p.path("shared").stat().st_size == size, what=f"the stale file on {p.name}")
    p2_id = p2.status()["peer_id"]
    wait_for(lambda: p2_id in p3.status()["links"], what="p3's chunk link to p2")
    with open(p2.path("shared"), "rb") as f:
        assert f.read(size // 2) == data[: size // 2]
    assert p2.status()["stale"], "p2 must not hold the whole file"
    p1.stop()
    wait_for(lambda: len(p3.status()["peers_online"]) == 1, what="p3 to see p1 leave")
    with open(p3.path("shared"), "rb") as f:
        assert f.read(size // 4) == data[: size // 4]
    got = p3.status()["bytes_received_from"]
    assert got.get(p2_id, 0) > 0 and set(got) == {p2_id}, got


def test_receivers_of_a_new_file_fetch_from_each_other(cluster):
    p1, p2, p3 = cluster.start_peers(3)
    data = write_random(p1.path("swarm"), 48 * MiB, 9)
    for p in (p2, p3):
        wait_content(p, "swarm", data)
    ids = {p.name: p.status()["peer_id"] for p in (p1, p2, p3)}
    from_receivers = sum(p.status()["bytes_received_from"].get(ids[q.name], 0)
                         for p, q in ((p2, p3), (p3, p2)))
    # each starts at its own half, so the other half mostly comes from the other receiver
    assert from_receivers > 0
    assert p1.status()["bytes_sent"] < 2 * len(data)
