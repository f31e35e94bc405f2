"""Security end to end, with real processes on loopback: nothing readable on the wire,
revocation, random input to live processes, and floods that must not starve the others."""

from __future__ import annotations

import hashlib
import os
import random
import secrets
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest
import trio
from harness import SECRET, PeerProc, TrackerProc, free_port, wait_for
from netkit import PeerTLS, identity, identity_on_disk, join

from syncfs import chunking
from syncfs.protocol.framing import HEADER
from syncfs.protocol.messages import Alive, Get, Peers
from tracker.server import DEFAULT_CHUNKING

pytestmark = pytest.mark.timeout(180)

MiB = 1 << 20


class RecordingProxy:
    """A TCP proxy on ``host`` (any free port) to ``upstream`` that keeps every byte it relays."""

    def __init__(self, host: str, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server((host, 0))
        self.port = self.listener.getsockname()[1]
        self.recorded = bytearray()
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                down, _ = self.listener.accept()
                up = socket.create_connection(self.upstream)
            except OSError:
                return
            self.sockets += [down, up]
            for a, b in ((down, up), (up, down)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                with self.lock:
                    self.recorded += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()
        for s in self.sockets:
            s.close()


def _adopt(cluster, *peers: PeerProc) -> None:
    """Let the cluster stop these peers and check their logs."""
    cluster.peers.extend(peers)
    cluster.logs.procs.extend(peers)


def _peer_id(peer: PeerProc) -> str:
    pem = (peer.cache_dir / "identity" / "cert.pem").read_text()
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def test_no_name_content_or_secret_crosses_the_wire_in_plaintext(cluster, tmp_path):
    tracker = cluster.tracker
    tracker_proxy = RecordingProxy("127.0.0.11", (tracker.host, tracker.port))
    chunk_port = free_port("127.0.0.12")
    chunk_proxy = RecordingProxy("127.0.0.12", ("127.0.0.12", chunk_port))
    # the peers reach the tracker, and p2 reaches p1's chunk server, only through the proxies
    via = TrackerProc(tmp_path / "via")
    via.port, via.fingerprint = tracker_proxy.port, tracker.tracker_id
    p1 = PeerProc(1, tmp_path / "p1", via, extra_args=[
        "--listen", f"127.0.0.12:{chunk_port}", "--advertise", f"127.0.0.12:{chunk_proxy.port}"])
    p2 = PeerProc(2, tmp_path / "p2", via)
    _adopt(cluster, p1, p2)
    try:
        p1.start()
        p2.start()
        marker = "PLAINTEXT-MARKER-" + secrets.token_hex(6)
        content = (marker + "\n").encode() * 20_000  # several chunks
        p1.path(f"{marker}.txt").write_bytes(content)
        wait_for(lambda: p2.path(f"{marker}.txt").read_bytes() == content, timeout=60,
                 what="the file on p2")
        with tracker_proxy.lock, chunk_proxy.lock:
            tracker_bytes, chunk_bytes = bytes(tracker_proxy.recorded), bytes(chunk_proxy.recorded)
    finally:
        tracker_proxy.close()
        chunk_proxy.close()
    assert len(chunk_bytes) >= len(content), "the content did not cross the recorded link"
    assert marker.encode() in content
    for wire in (tracker_bytes, chunk_bytes):
        assert marker.encode() not in wire
        assert SECRET.encode() not in wire
        assert content[:64] not in wire


def test_revoked_peer_is_cut_off_and_cannot_reconnect(cluster):
    p1, p2 = cluster.start_peers(2)
    p1.path("before.txt").write_text("shared with both")
    wait_for(lambda: p2.path("before.txt").read_text() == "shared with both", what="before.txt on p2")
    victim = _peer_id(p2)
    done = subprocess.run(
        [sys.executable, "-m", "tracker", "--state-dir", str(cluster.tracker.state_dir),
         "--revoke", victim],
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 0 and f"revoked {victim}" in done.stdout, done.stderr
    wait_for(lambda: "has been revoked" in p2.log_text(), what="p2 to be refused")
    p1.path("after.txt").write_text("not for p2")
    p3 = cluster.add_peer()  # proves that the change went out
    wait_for(lambda: p3.path("after.txt").read_text() == "not for p2", what="after.txt on p3")
    assert not p2.path("after.txt").exists()
    listed = subprocess.run(
        [sys.executable, "-m", "tracker", "--state-dir", str(cluster.tracker.state_dir), "--list-peers"],
        capture_output=True, text=True, timeout=30,
    ).stdout
    assert f"{victim}  revoked" in listed


def _garbage_connections(host: str, port: int, n: int) -> None:
    """Raw random bytes, oversized frame headers, and TLS followed by garbage."""
    rng = random.Random(5)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    for i in range(n):
        try:
            with socket.create_connection((host, port), timeout=5) as s:
                if i % 3 == 0:
                    s.sendall(rng.randbytes(rng.randrange(1, 70_000)))
                elif i % 3 == 1:
                    s.sendall(HEADER.pack(0xFFFFFFFF) + rng.randbytes(100))
                else:
                    with ctx.wrap_socket(s) as t:
                        t.sendall(HEADER.pack(rng.randrange(1 << 32)) + rng.randbytes(rng.randrange(2000)))
                        t.recv(100)
        except OSError:
            pass


def test_live_tracker_and_peer_survive_random_and_oversized_frames(cluster):
    chunk_port = free_port("127.0.0.12")
    p1 = cluster.add_peer(extra_args=["--listen", f"127.0.0.12:{chunk_port}"])
    p2 = cluster.add_peer()
    _garbage_connections(cluster.tracker.host, cluster.tracker.port, 60)
    _garbage_connections("127.0.0.12", chunk_port, 60)

    async def admitted_garbage() -> None:
        # a peer that knows the secret, then sends random frames after ACCEPT
        rng = random.Random(7)
        for _ in range(20):
            link, _ = await join(cluster.tracker.host, cluster.tracker.port, cluster.tracker.tracker_id,
                                 SECRET.encode(), identity("noisy"))
            try:
                await link.stream.send_all(HEADER.pack(rng.randrange(64)) + rng.randbytes(64))
                with trio.move_on_after(5):
                    while True:
                        await link.receive()
            except Exception:
                pass
            finally:
                await link.aclose()

    trio.run(admitted_garbage)
    assert cluster.tracker.running and p1.running and p2.running
    data = os.urandom(3 * MiB)
    p1.path("still-works.bin").write_bytes(data)
    wait_for(lambda: p2.path("still-works.bin").read_bytes() == data, timeout=60, what="sync after the garbage")


class Flooder:
    """An admitted peer that floods p1 with GETs on every link it may open, while hundreds of
    idle TCP connections sit on p1's chunk port and on the tracker."""

    def __init__(self, cluster, workdir, target: tuple[str, int], digests: list[bytes]) -> None:
        self.cluster, self.target, self.digests = cluster, target, digests
        self.me = identity_on_disk(workdir, "flooder")
        self.tls = PeerTLS(self.me)
        self.answers = 0
        self.idle: list[socket.socket] = []
        self.stop_flag = threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=lambda: trio.run(self._main), daemon=True)

    def start(self) -> None:
        for i in range(300):
            for host, port in (self.target, (self.cluster.tracker.host, self.cluster.tracker.port)):
                try:
                    s = socket.socket()
                    s.bind((f"127.0.0.{40 + i % 10}", 0))
                    s.settimeout(2)
                    s.connect((host, port))
                    self.idle.append(s)
                except OSError:
                    pass
        self.thread.start()
        assert self.ready.wait(20), "the flooder did not get going"

    async def _main(self) -> None:
        t = self.cluster.tracker
        link, accept = await join(t.host, t.port, t.tracker_id, SECRET.encode(), self.me,
                                  addr="127.0.0.39", port=1)
        self.tls.learn(accept.peers)
        async with trio.open_nursery() as nursery:

            async def tracker_session() -> None:
                while True:
                    with trio.move_on_after(0.2):
                        msg = await link.receive()
                        if isinstance(msg, Peers):
                            self.tls.learn(msg.peers)
                    await link.send(Alive())

            async def flood() -> None:
                info = next(p for p in self.tls.known.values() if p.port == self.target[1])
                conn = await self.tls.connect(info)

                async def reader() -> None:
                    while True:
                        await conn.receive()
                        self.answers += 1

                nursery.start_soon(reader)
                self.ready.set()
                i = 0
                while True:
                    await conn.send(Get(self.digests[i % len(self.digests)]))
                    i += 1

            async def stopper() -> None:
                while not self.stop_flag.is_set():
                    await trio.sleep(0.05)
                nursery.cancel_scope.cancel()

            nursery.start_soon(tracker_session)
            nursery.start_soon(stopper)
            for _ in range(3):
                nursery.start_soon(flood)
        await link.aclose()

    def stop(self) -> None:
        self.stop_flag.set()
        self.thread.join(10)
        for s in self.idle:
            s.close()


def _timed_sync(src: PeerProc, dst: PeerProc, name: str, data: bytes) -> float:
    start = time.monotonic()
    src.path(name).write_bytes(data)
    wait_for(lambda: dst.path(name).stat().st_size == len(data) and dst.path(name).read_bytes() == data,
             timeout=120, interval=0.05, what=f"{name} on {dst.name}")
    return time.monotonic() - start


def test_get_flood_and_idle_connections_do_not_starve_other_peers(cluster, tmp_path):
    chunk_port = free_port("127.0.0.12")
    p1 = cluster.add_peer(extra_args=["--listen", f"127.0.0.12:{chunk_port}"])
    p2 = cluster.add_peer()
    size = 16 * MiB
    rng = random.Random(3)
    warmup, base, flooded = (rng.randbytes(size) for _ in range(3))
    _timed_sync(p1, p2, "warmup.bin", warmup)
    baseline = _timed_sync(p1, p2, "base.bin", base)
    digests = [c.digest for c in chunking.chunk_bytes(base, DEFAULT_CHUNKING)]
    flooder = Flooder(cluster, tmp_path, ("127.0.0.12", chunk_port), digests)
    try:
        flooder.start()
        wait_for(lambda: flooder.answers >= 200, timeout=60, what="the flood to be under way")
        before = flooder.answers
        under_flood = _timed_sync(p1, p2, "flooded.bin", flooded)
        served = flooder.answers - before
    finally:
        flooder.stop()
    print(f"\n16 MiB p1->p2: {baseline:.2f} s alone, {under_flood:.2f} s under a GET flood "
          f"({served} chunks served to the flooder meanwhile) and {len(flooder.idle)} idle "
          f"connections; ratio {under_flood / baseline:.2f}")
    assert served > 0, "the flood never reached p1: the test proved nothing"
    assert under_flood < max(6 * baseline, baseline + 15)


def test_only_the_mounting_user_enters_unless_allow_other(cluster):
    p1 = cluster.add_peer()
    p2 = cluster.add_peer(extra_args=["--allow-other"])
    options = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            options[fields[4]] = fields[5] + "," + line.split(" - ")[1]
    assert "default_permissions" in options[str(p1.mnt)]
    assert "allow_other" not in options[str(p1.mnt)] and "allow_other" in options[str(p2.mnt)]
    p1.path("mine.txt").write_text("private")
    # let another user reach the mount points (pytest's directories are 0700): search
    # permission on every parent, given back afterwards
    opened = {}
    for peer in (p1, p2):
        for parent in peer.mnt.parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                opened.setdefault(parent, mode)
                os.chmod(parent, (mode | 0o011) & 0o7777)
    try:
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "ls"]
        assert subprocess.run([*nobody, str(p1.mnt)], capture_output=True, timeout=30).returncode != 0
        assert subprocess.run([*nobody, str(p2.mnt)], capture_output=True, timeout=30).returncode == 0
    finally:
        for parent, mode in opened.items():
            os.chmod(parent, mode & 0o7777)
