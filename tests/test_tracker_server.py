"""The tracker server in-process over loopback TCP (port 0), driven by protocol-level clients."""

import logging
import os
import signal
import struct
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
from netkit import identity, join, named, open_tracker_tls, pid, tracker_fingerprint

from syncfs.handshake import HandshakeFailed, make_hello
from syncfs.identity import Identity
from syncfs.protocol import PROTO_NAME, auth
from syncfs.protocol.entries import Chunk, Entry, Kind
from syncfs.protocol.framing import encode_frame
from syncfs.protocol.messages import (
    Accept,
    Alive,
    Auth,
    Challenge,
    Drop,
    DropAnswer,
    Have,
    Hello,
    Message,
    Peers,
    Reject,
    Table,
    Update,
)
from syncfs.wire import FramedStream, LinkBroken
from tracker.server import TrackerServer
from tracker.state import TrackerState

SECRET = b"test-share-secret"
TRACKERS: dict[int, str] = {}  # port -> fingerprint of the tracker listening there
DEADLINE = 20.0
T0 = 1_795_515_300 * 1_000_000_000  # 2026-11-24 10:15:00 UTC


def entry(path: str, version: dict[str, int], tag: int = 1, mtime_ns: int = T0) -> Entry:
    return Entry(path, Kind.FILE, 10, 0o644, mtime_ns, version, (Chunk(bytes([tag]) * 32, 10),))


class Client:
    """A peer's tracker link reduced to the protocol: it sends what a test says."""

    def __init__(self, link: FramedStream, accept: Accept, peer_id: str) -> None:
        self.link = link
        self.accept = accept
        self.peer_id = peer_id

    @classmethod
    async def connect(
        cls, tracker_port: int, name: str, secret: bytes = SECRET, **hello: object
    ) -> "Client":
        """Join as the identity called ``name`` (its peer id is ``pid(name)``)."""
        me = identity(name)
        link, accept = await join(
            "127.0.0.1", tracker_port, TRACKERS[tracker_port], secret, me, **hello
        )
        return cls(link, accept, me.id)

    async def send(self, msg: Message) -> None:
        await self.link.send(msg)

    async def next(self, cls: type, pred: Callable[[Message], bool] = lambda m: True) -> Message:
        """The next message of type ``cls`` that satisfies ``pred``; others are skipped."""
        while True:
            msg = await self.link.receive()
            if isinstance(msg, cls) and pred(msg):
                return msg

    async def delta(self) -> list:
        """The rows of the reconnect delta, up to the batch marked caught_up."""
        rows = []
        while True:
            table = await self.next(Table)
            rows.extend(table.rows)
            if table.caught_up:
                return rows

    async def closed(self) -> None:
        """Wait until the tracker closes this link (messages before that are skipped)."""
        with pytest.raises(LinkBroken):
            while True:
                await self.link.receive()

    async def aclose(self) -> None:
        await self.link.aclose()


def peer_ids(msg: Peers) -> set[str]:
    """The names of the peers listed."""
    return set(named(p.peer_id for p in msg.peers))


def serve(
    tmp_path: Path,
    body: Callable[[int, TrackerServer], Awaitable[None]],
    interval: float = 1.0,
    **kw: object,
) -> None:
    """Run a tracker on 127.0.0.1:0 with its state in ``tmp_path``, then ``body(port, server)``."""

    async def main() -> None:
        with trio.fail_after(DEADLINE), TrackerState(tmp_path / "state") as state:
            me = Identity.load_or_create(tmp_path / "state" / "identity")
            server = TrackerServer(
                state, SECRET, identity=me, host="127.0.0.1", port=0, interval=interval, **kw
            )
            async with trio.open_nursery() as nursery:
                port = await nursery.start(server.run)
                TRACKERS[port] = me.id
                await body(port, server)
                nursery.cancel_scope.cancel()

    trio.run(main)


def test_handshake_accept_then_empty_delta_then_peers(tmp_path):
    async def body(port, server):
        c = await Client.connect(port, "alice", port=4000, addr="0.0.0.0")
        assert c.accept.interval == 1.0
        assert c.accept.chunking.avg_size == 1024 * 1024
        assert c.accept.max_frame == 16 * 1024 * 1024
        assert c.accept.seq == 0
        [me] = c.accept.peers
        assert (me.peer_id, me.addr, me.port) == (pid("alice"), "127.0.0.1", 4000)
        first = await c.link.receive_within(5)
        assert first == Table(rows=(), seq=0, caught_up=True)
        assert peer_ids(await c.next(Peers)) == {"alice"}
        await c.aclose()

    serve(tmp_path, body)


def test_wrong_secret_is_refused_and_learns_no_names(tmp_path, caplog):
    async def body(port, server):
        owner = await Client.connect(port, "owner")
        await owner.send(Update((entry("very-secret-name.txt", {"owner": 1}),)))
        await owner.next(Table, lambda m: bool(m.rows))

        # a client with the wrong secret finds out the tracker does not share it
        with pytest.raises(HandshakeFailed):
            await Client.connect(port, "mallory", secret=b"wrong")

        # one that answers the challenge anyway is rejected, and that is all it gets
        mallory = identity("mallory")
        link, binding = await open_tracker_tls("127.0.0.1", port, TRACKERS[port])
        hello = make_hello("tracker", mallory.id, cert=mallory.cert_der)
        await link.send(hello)
        challenge = await link.expect(Challenge, 5)
        t = auth.transcript(mallory.id, TRACKERS[port], hello.nonce, challenge.nonce, binding)
        await link.send(Auth(auth.join_proof(b"wrong", t), mallory.sign(t)))
        received = []
        with pytest.raises(LinkBroken):
            while True:
                received.append(await link.receive_within(5))
        await link.aclose()
        assert [type(m) for m in received] == [Reject]
        assert received[0].reason == "authentication failed"
        assert server.online[0].peer_id == pid("owner") and len(server.online) == 1
        await owner.aclose()

    with caplog.at_level(logging.WARNING, logger="tracker"):
        serve(tmp_path, body)
    assert "failed authentication" in caplog.text


def test_wrong_protocol_version_gets_reject(tmp_path):
    async def body(port, server):
        link, _ = await open_tracker_tls("127.0.0.1", port, TRACKERS[port])
        await link.send(Hello(PROTO_NAME, 99, "tracker", pid("alice"), auth.new_nonce()))
        reply = await link.receive_within(5)
        assert isinstance(reply, Reject) and "version" in reply.reason
        with pytest.raises(LinkBroken):
            await link.receive_within(5)
        await link.aclose()

    serve(tmp_path, body)


def test_duplicate_live_peer_id_gets_reject(tmp_path):
    async def body(port, server):
        first = await Client.connect(port, "alice")
        with pytest.raises(HandshakeFailed, match="already connected"):
            await Client.connect(port, "alice")
        # the first connection is untouched
        await first.send(Update((entry("a", {"alice": 1}),)))
        assert (await first.next(Table, lambda m: bool(m.rows))).rows[0].entry.path == "a"
        await first.aclose()

    serve(tmp_path, body)


def test_update_is_broadcast_to_every_peer_including_sender(tmp_path):
    async def body(port, server):
        a = await Client.connect(port, "alice")
        b = await Client.connect(port, "bob")
        await a.send(Update((entry("x/one.txt", {"alice": 1}), entry("two", {"alice": 1}))))
        for c in (a, b):
            table = await c.next(Table, lambda m: bool(m.rows))
            assert [r.entry.path for r in table.rows] == ["x/one.txt", "two"]
            assert [r.seq for r in table.rows] == [1, 2] and table.seq == 2
            assert named(table.rows[0].holders) == ("alice",)
        # a stale resend is ignored: nothing new is broadcast, the next change is seq 3
        await a.send(Update((entry("two", {"alice": 1}),)))
        await b.send(Have("two", {"alice": 1}))
        for c in (a, b):
            table = await c.next(Table, lambda m: bool(m.rows))
            assert table.seq == 3 and named(table.rows[0].holders) == ("alice", "bob")
        await a.aclose()
        await b.aclose()

    serve(tmp_path, body)


def test_drop_is_granted_with_another_holder_online_and_refused_for_the_last_copy(tmp_path):
    async def body(port, server):
        a = await Client.connect(port, "alice")
        b = await Client.connect(port, "bob")
        await a.send(Update((entry("f", {"alice": 1}),)))
        await b.send(Have("f", {"alice": 1}))
        for c in (a, b):
            await c.next(Table, lambda m: bool(m.rows) and len(m.rows[0].holders) == 2)
        # alice may go: bob holds it and is online; everyone sees the row without her
        await a.send(Drop("f", {"alice": 1}))
        for c in (a, b):
            table = await c.next(Table, lambda m: bool(m.rows))
            assert named(table.rows[0].holders) == ("bob",) and table.seq == 3
        # the answer to alice comes after the row
        assert await a.next(DropAnswer) == DropAnswer("f", {"alice": 1}, True)
        # now bob holds the only copy: refused, to him alone, and nothing changes
        await b.send(Drop("f", {"alice": 1}))
        refused = await b.next(DropAnswer)
        assert refused.path == "f" and not refused.granted and "only copy" in refused.reason
        assert named(server.state.row("f").holders) == ("bob",) and server.state.current_seq == 3
        # a superseded version is refused too
        await a.send(Drop("f", {"alice": 0}))
        assert "newer version" in (await a.next(DropAnswer)).reason
        await a.aclose()
        await b.aclose()

    serve(tmp_path, body)


def test_drop_is_refused_when_the_other_holders_are_offline(tmp_path):
    async def body(port, server):
        a = await Client.connect(port, "alice")
        b = await Client.connect(port, "bob")
        await a.send(Update((entry("f", {"alice": 1}),)))
        await b.send(Have("f", {"alice": 1}))
        await a.next(Table, lambda m: bool(m.rows) and len(m.rows[0].holders) == 2)
        await b.aclose()
        await a.next(Peers, lambda m: peer_ids(m) == {"alice"})
        await a.send(Drop("f", {"alice": 1}))
        assert "no other holder is online" in (await a.next(DropAnswer)).reason
        assert named(server.state.row("f").holders) == ("alice", "bob")
        await a.aclose()

    serve(tmp_path, body)


def test_reconnect_gets_only_newer_rows(tmp_path):
    async def body(port, server):
        a = await Client.connect(port, "alice")
        await a.send(Update(tuple(entry(f"f{i}", {"alice": 1}) for i in range(3))))
        table = await a.next(Table, lambda m: bool(m.rows))
        seen = table.seq
        await a.aclose()
        b = await Client.connect(port, "bob")
        await b.send(Update((entry("f1", {"alice": 1, "bob": 1}), entry("g", {"bob": 1}))))
        await b.next(Table, lambda m: bool(m.rows))
        a = await Client.connect(port, "alice", last_seq=seen)
        assert a.accept.seq == 5
        rows = await a.delta()
        assert [(r.entry.path, r.seq) for r in rows] == [("f1", 4), ("g", 5)]
        await a.aclose()
        # a peer that has seen more than the tracker knows gets everything
        c = await Client.connect(port, "carol", last_seq=1000)
        assert len(await c.delta()) == 4
        await c.aclose()
        await b.aclose()

    serve(tmp_path, body)


def test_delta_comes_in_batches(tmp_path):
    async def body(port, server):
        a = await Client.connect(port, "alice")
        await a.send(Update(tuple(entry(f"f{i:04}", {"alice": 1}) for i in range(1203))))
        await a.next(Table, lambda m: m.seq == 1203)
        await a.aclose()
        b = await Client.connect(port, "bob", last_seq=1)
        batches = []
        while not batches or not batches[-1].caught_up:
            batches.append(await b.next(Table))
        assert [len(t.rows) for t in batches] == [500, 500, 202]
        assert [t.caught_up for t in batches] == [False, False, True]
        assert batches[-1].seq == 1203
        seqs = [r.seq for t in batches for r in t.rows]
        assert seqs == list(range(2, 1204))
        await b.aclose()

    serve(tmp_path, body)


def test_bad_path_closes_only_that_connection(tmp_path, caplog):
    async def body(port, server):
        good = await Client.connect(port, "good")
        bad = await Client.connect(port, "bad")
        evil = entry("ok", {"bad": 1}).to_wire()
        evil["path"] = "../../etc/passwd"
        await bad.link.stream.send_all(encode_frame({"t": "update", "entries": [evil]}))
        await bad.closed()
        assert peer_ids(await good.next(Peers, lambda m: len(m.peers) == 1)) == {"good"}
        await good.send(Update((entry("fine", {"good": 1}),)))
        assert (await good.next(Table, lambda m: bool(m.rows))).rows[0].entry.path == "fine"
        await good.aclose()

    with caplog.at_level(logging.WARNING, logger="tracker"):
        serve(tmp_path, body)
    assert any(
        pid("bad") in r.getMessage() and "passwd" in r.getMessage() for r in caplog.records
    )


def test_oversized_frame_closes_connection_and_server_keeps_serving(tmp_path, caplog):
    async def body(port, server):
        big = await Client.connect(port, "big")
        await big.link.stream.send_all(struct.pack(">I", 16 * 1024 * 1024 + 1) + b"\0" * 1024)
        await big.closed()
        # and before ACCEPT the limit is far smaller
        link, _ = await open_tracker_tls("127.0.0.1", port, TRACKERS[port])
        await link.stream.send_all(struct.pack(">I", 1024 * 1024) + b"\0" * 1024)
        with pytest.raises(LinkBroken):
            await link.receive_within(5)
        await link.aclose()
        # and bytes that are not TLS at all are refused as such
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(struct.pack(">I", 1024 * 1024) + b"\0" * 1024)
        assert await stream.receive_some(1024) == b""
        await stream.aclose()
        again = await Client.connect(port, "big")
        await again.send(Update((entry("after", {"big": 1}),)))
        assert (await again.next(Table, lambda m: bool(m.rows))).rows[0].entry.path == "after"
        await again.aclose()

    with caplog.at_level(logging.WARNING, logger="tracker"):
        serve(tmp_path, body)
    assert "exceeds the limit" in caplog.text


def test_unexpected_message_type_is_a_protocol_error(tmp_path):
    async def body(port, server):
        c = await Client.connect(port, "alice")
        await c.send(Peers(()))
        await c.closed()

    serve(tmp_path, body)


def test_silent_peer_is_dropped_and_others_are_told(tmp_path):
    interval = 0.2

    async def body(port, server):
        talker = await Client.connect(port, "talker")
        quiet = await Client.connect(port, "quiet")
        joined = trio.current_time()
        await talker.next(Peers, lambda m: peer_ids(m) == {"talker", "quiet"})

        async def heartbeat() -> None:
            while True:
                await talker.send(Alive())
                await trio.sleep(interval)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(heartbeat)
            peers = await talker.next(Peers, lambda m: peer_ids(m) == {"talker"})
            nursery.cancel_scope.cancel()
        assert trio.current_time() - joined >= 3 * interval * 0.9
        assert peer_ids(peers) == {"talker"}
        await quiet.closed()
        await talker.aclose()
        await quiet.aclose()

    serve(tmp_path, body, interval=interval)


def test_concurrent_updates_make_a_conflict_copy(tmp_path):
    async def body(port, server):
        a = await Client.connect(port, "alice0000")
        b = await Client.connect(port, "bob000000")
        await a.send(Update((entry("notes.txt", {"alice0000": 1}, tag=1, mtime_ns=T0),)))
        await b.next(Table, lambda m: bool(m.rows))
        await b.send(Update((entry("notes.txt", {"bob000000": 1}, tag=2, mtime_ns=T0 + 1),)))
        for c in (a, b):
            table = await c.next(Table, lambda m: m.seq == 3)
            copy, winner = table.rows
            assert copy.seq == 2 and winner.seq == 3
            # the origin is named by the first 7 characters of its id
            assert copy.entry.path == f"notes.sync-conflict-20261124-101500-{pid('alice0000')[:7]}.txt"
            assert copy.entry.chunks[0].digest == bytes([1]) * 32
            assert named(copy.holders) == ("alice0000",)
            assert winner.entry.path == "notes.txt"
            assert winner.entry.version == {"alice0000": 1, "bob000000": 1}
            assert named(winner.holders) == ("bob000000",)
        await a.aclose()
        await b.aclose()

    serve(tmp_path, body)


def test_full_queue_drops_only_the_slow_peer(tmp_path, caplog):
    async def body(port, server):
        fast = await Client.connect(port, "fast")
        slow = await Client.connect(port, "slow")  # never reads
        chunks = tuple(Chunk(bytes([i % 256]) * 32, 1) for i in range(20_000))
        n = 0
        while len(server.online) == 2:
            n += 1
            e = Entry(f"f{n}", Kind.FILE, len(chunks), 0o644, T0, {"fast": 1}, chunks)
            await fast.send(Update((e,)))
            await fast.next(Table, lambda m, n=n: m.seq == n)
        assert [p.peer_id for p in server.online] == [pid("fast")]
        await slow.closed()
        await fast.aclose()

    with caplog.at_level(logging.WARNING, logger="tracker"):
        serve(tmp_path, body, queue_size=2)
    assert "queue is full" in caplog.text


def test_state_survives_a_server_restart(tmp_path):
    async def first(port, server):
        a = await Client.connect(port, "alice")
        await a.send(Update((entry("kept", {"alice": 1}),)))
        await a.next(Table, lambda m: bool(m.rows))
        await a.aclose()

    async def second(port, server):
        b = await Client.connect(port, "bob")
        assert b.accept.seq == 1
        assert [r.entry.path for r in await b.delta()] == ["kept"]
        await b.aclose()

    serve(tmp_path, first)
    serve(tmp_path, second)


def start_cli(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, int]:
    """``python -m tracker`` on 127.0.0.1, any free port; returns it once it listens."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracker", "--host", "127.0.0.1"]
        + ["--state-dir", str(tmp_path / "st"), "--log-file", str(tmp_path / "log"), *extra],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    line = proc.stdout.readline()
    if not line.startswith("syncfs tracker listening on 127.0.0.1:"):
        proc.kill()
        proc.wait()
        pytest.fail(f"unexpected first line {line!r}")
    port = int(line.rsplit(":", 1)[1])
    TRACKERS[port] = tracker_fingerprint(tmp_path / "st")
    return proc, port


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    proc.stdout.close()


def test_cli_prints_port_and_exits_cleanly_on_sigterm(tmp_path):
    proc, port = start_cli(tmp_path, "--port", "0")
    try:
        secret = (tmp_path / "st" / "secret").read_bytes().strip()
        assert os.stat(tmp_path / "st" / "secret").st_mode & 0o777 == 0o600

        async def check() -> None:
            with trio.fail_after(DEADLINE):
                c = await Client.connect(port, "alice", secret=secret)
                await c.aclose()

        trio.run(check)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=DEADLINE) == 0
    finally:
        stop(proc)


def test_state_survives_sigkill(tmp_path):
    secret = "kill-test-secret"
    proc, port = start_cli(tmp_path, "--port", "0", "--secret", secret)
    try:

        async def write() -> None:
            with trio.fail_after(DEADLINE):
                c = await Client.connect(port, "alice", secret=secret.encode())
                for i in range(5):
                    await c.send(Update((entry(f"f{i}", {"alice": 1}),)))
                    await c.next(Table, lambda m, i=i: m.seq == i + 1)
                await c.aclose()

        trio.run(write)
        # every change the tracker broadcast is committed: kill it without warning
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=DEADLINE)
    finally:
        stop(proc)
    proc, port = start_cli(tmp_path, "--port", "0", "--secret", secret)
    try:

        async def read() -> None:
            with trio.fail_after(DEADLINE):
                c = await Client.connect(port, "bob", secret=secret.encode(), last_seq=2)
                assert c.accept.seq == 5
                assert [r.entry.path for r in await c.delta()] == ["f2", "f3", "f4"]
                await c.aclose()

        trio.run(read)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=DEADLINE) == 0
    finally:
        stop(proc)
