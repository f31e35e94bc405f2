"""Bad input from the network reaches a peer: it is refused, logged, and nothing is touched."""

import socket
import threading

import msgpack
import pytest
import trio
from harness import SECRET, PeerProc, TrackerProc, wait_for
from netkit import identity_on_disk

from syncfs.handshake import admit_peer, channel_binding, server_context, tls_accept
from syncfs.protocol.framing import HEADER
from syncfs.protocol.messages import Accept, ChunkParams, Table
from syncfs.wire import FramedStream

pytestmark = pytest.mark.timeout(60)


def raw_table(path: str) -> bytes:
    entry = {
        "path": path,
        "kind": "file",
        "size": 0,
        "mode": 0o644,
        "mtime_ns": 0,
        "version": {"evil": 1},
        "chunks": [],
        "deleted": False,
        "target": "",
    }
    body = msgpack.packb(
        {
            "t": "table",
            "rows": [{"entry": entry, "seq": 1, "holders": []}],
            "seq": 1,
            "caught_up": True,
        }
    )
    return HEADER.pack(len(body)) + body


class FakeTracker:
    """A tracker that authenticates peers properly, then sends them whatever the test says."""

    def __init__(self, payloads: list[bytes], tmp_path) -> None:
        self.payloads = payloads
        self.me = identity_on_disk(tmp_path, "fake-tracker")
        self.tls = server_context(self.me)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.11", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.sessions = 0
        self.thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)
        self.stop = threading.Event()

    async def _main(self) -> None:
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(self.sock))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, self._serve, [listener])
            while not self.stop.is_set():
                await trio.sleep(0.05)
            nursery.cancel_scope.cancel()

    async def _serve(self, stream: trio.SocketStream) -> None:
        tls = await tls_accept(stream, self.tls, "the peer")
        link = FramedStream(tls)
        await admit_peer(link, self.me.id, SECRET.encode(), channel_binding(tls), frozenset())
        await link.send(Accept(0.5, ChunkParams(256 << 10, 1 << 20, 4 << 20), 0, 16 << 20, ()))
        await link.send(Table((), 0, True))
        self.sessions += 1
        for payload in self.payloads:
            await tls.send_all(payload)
        with trio.move_on_after(10):
            while await tls.receive_some(65536):
                pass


@pytest.mark.parametrize(
    "evil", ["../escaped", "/abs/olute", "a/../../b", "a//b", "x\0y", "a/" + "n" * 300]
)
def test_peer_refuses_bad_paths_from_the_tracker(tmp_path, evil):
    fake = FakeTracker([raw_table(evil)], tmp_path)
    fake.thread.start()
    tracker = TrackerProc(tmp_path / "unused")
    tracker.port = fake.port
    tracker.fingerprint = fake.me.id
    peer = PeerProc(1, tmp_path / "p1", tracker)
    try:
        peer.start()
        wait_for(lambda: "refused path" in peer.log_text(), what="the peer to log the refused path")
        wait_for(
            lambda: fake.sessions >= 2, what="the peer to reconnect after closing the bad link"
        )
        # the mount still works, and nothing appeared inside or outside it
        (peer.mnt / "ok.txt").write_text("fine")
        assert (peer.mnt / "ok.txt").read_text() == "fine"
        assert sorted(p.name for p in peer.mnt.iterdir()) == ["ok.txt"]
        assert not (tmp_path / "escaped").exists() and not (tmp_path / "p1" / "escaped").exists()
    finally:
        peer.stop()
        fake.stop.set()
        fake.thread.join(5)


def test_peer_survives_oversized_and_garbage_frames(tmp_path):
    fake = FakeTracker([HEADER.pack(1 << 30) + b"x" * 100], tmp_path)
    fake.thread.start()
    tracker = TrackerProc(tmp_path / "unused")
    tracker.port = fake.port
    tracker.fingerprint = fake.me.id
    peer = PeerProc(1, tmp_path / "p1", tracker)
    try:
        peer.start()
        wait_for(
            lambda: "exceeds the limit" in peer.log_text(), what="the peer to refuse the frame"
        )
        wait_for(lambda: fake.sessions >= 2, what="the peer to reconnect")
        fake.payloads[:] = [HEADER.pack(5) + b"\xc1\xc1\xc1\xc1\xc1"]
        wait_for(lambda: "undecodable frame" in peer.log_text(), what="the peer to refuse garbage")
        (peer.mnt / "ok").write_text("still up")
        assert (peer.mnt / "ok").read_text() == "still up"
    finally:
        peer.stop()
        fake.stop.set()
        fake.thread.join(5)
