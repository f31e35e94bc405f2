"""Who gets in, in-process: a tracker and chunk servers on loopback, driven by protocol clients.

Without the token, with a wrong secret, with a forged fingerprint, revoked, or behind a man
in the middle: refused, and nothing about the share (no file name, no peer) is learned.
"""

import logging
import os

import pytest
import trio
import trio.testing
from netkit import PeerTLS, identity, identity_on_disk, join, open_tracker_tls, pid

from syncfs.handshake import (
    HandshakeFailed,
    admit_peer,
    client_context,
    make_hello,
    server_context,
    tls_accept,
    tls_connect,
)
from syncfs.identity import Identity
from syncfs.p2p import ChunkServer, PeerPool
from syncfs.protocol import auth
from syncfs.protocol.entries import Chunk, Entry, Kind
from syncfs.protocol.messages import (
    Auth,
    Challenge,
    Data,
    Get,
    Missing,
    PeerInfo,
    Reject,
    Table,
    Update,
    encode_message,
)
from syncfs.wire import FramedStream, LinkBroken
from tracker.server import TrackerServer
from tracker.state import TrackerState

SECRET = b"share-secret"
NAME = "very-secret-name.txt"
DEADLINE = 20.0


def entry(path: str, version: dict[str, int]) -> Entry:
    return Entry(path, Kind.FILE, 10, 0o644, 0, version, (Chunk(b"\1" * 32, 10),))


def serve(tmp_path, body) -> None:
    """A tracker whose table already holds NAME (written by peer 'owner'), then ``body``."""

    async def main() -> None:
        with trio.fail_after(DEADLINE), TrackerState(tmp_path / "state") as state:
            me = Identity.load_or_create(tmp_path / "state" / "identity")
            server = TrackerServer(state, SECRET, identity=me, host="127.0.0.1", port=0, interval=1.0)
            async with trio.open_nursery() as nursery:
                port = await nursery.start(server.run)
                owner, _ = await join("127.0.0.1", port, me.id, SECRET, identity("owner"))
                await owner.send(Update((entry(NAME, {pid("owner"): 1}),)))
                while not isinstance(msg := await owner.receive(), Table) or not msg.rows:
                    pass
                await body(port, server, me)
                await owner.aclose()
                nursery.cancel_scope.cancel()

    trio.run(main)


async def everything_until_closed(link: FramedStream) -> list:
    got = []
    with pytest.raises(LinkBroken):
        while True:
            got.append(await link.receive_within(5))
    return got


def test_plaintext_client_without_a_token_gets_nothing(tmp_path):
    async def body(port, server, me):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(encode_message(make_hello("tracker", pid("x"))))
        received = b""
        with trio.move_on_after(5):
            while data := await stream.receive_some(65536):
                received += data
        await stream.aclose()
        assert NAME.encode() not in received and pid("owner").encode() not in received

    serve(tmp_path, body)


def test_wrong_secret_is_refused_and_learns_no_names(tmp_path, caplog):
    async def body(port, server, me):
        with pytest.raises(HandshakeFailed, match="authentication failed"):
            await join("127.0.0.1", port, me.id, b"wrong", identity("mallory"))
        assert [p.peer_id for p in server.online] == [pid("owner")]

    with caplog.at_level(logging.WARNING, logger="tracker"):
        serve(tmp_path, body)
    assert "failed authentication" in caplog.text


def test_forged_fingerprint_is_refused(tmp_path, caplog):
    async def body(port, server, me):
        victim, mallory = identity("victim"), identity("mallory")
        # claims the victim's id with its own certificate
        link, _ = await open_tracker_tls("127.0.0.1", port, me.id)
        await link.send(make_hello("tracker", victim.id, cert=mallory.cert_der))
        got = await everything_until_closed(link)
        assert [type(m) for m in got] == [Reject]
        # presents the victim's certificate but cannot sign with its key (knows the secret)
        link, binding = await open_tracker_tls("127.0.0.1", port, me.id)
        hello = make_hello("tracker", victim.id, cert=victim.cert_der)
        await link.send(hello)
        challenge = await link.expect(Challenge, 5)
        t = auth.transcript(victim.id, me.id, hello.nonce, challenge.nonce, binding)
        await link.send(Auth(auth.join_proof(SECRET, t), mallory.sign(t)))
        got = await everything_until_closed(link)
        assert [type(m) for m in got] == [Reject]
        assert all(NAME not in repr(m) for m in got)
        assert [p.peer_id for p in server.online] == [pid("owner")]

    with caplog.at_level(logging.WARNING, logger="tracker"):
        serve(tmp_path, body)
    assert "did not sign" in caplog.text


def test_a_peer_pinning_the_wrong_fingerprint_refuses_the_tracker(tmp_path):
    async def body(port, server, me):
        with pytest.raises(HandshakeFailed, match="man in the middle"):
            await join("127.0.0.1", port, "0" * 64, SECRET, identity("alice"))

    serve(tmp_path, body)


def test_revoked_peer_is_dropped_and_cannot_reconnect(tmp_path):
    async def body(port, server, me):
        link, accept = await join("127.0.0.1", port, me.id, SECRET, identity("bob"))
        assert pid("bob") in [p.peer_id for p in server.online]
        server.state.revoke(pid("bob"))
        server.apply_revocations()
        await everything_until_closed(link)
        assert pid("bob") not in [p.peer_id for p in server.online]
        with pytest.raises(HandshakeFailed, match="revoked"):
            await join("127.0.0.1", port, me.id, SECRET, identity("bob"))
        # someone else with the secret still gets in
        other, _ = await join("127.0.0.1", port, me.id, SECRET, identity("carol"))
        await other.aclose()

    serve(tmp_path, body)


def test_man_in_the_middle_with_its_own_certificate_is_refused_by_both_ends(tmp_path):
    """The proxy terminates TLS with its own certificate and relays frames to the tracker."""
    proxy_id = identity_on_disk(tmp_path, "proxy")
    refused_by_peer: list[str] = []
    relayed: list = []

    async def body(port, server, me):
        async def relay(stream: trio.SocketStream) -> None:
            try:
                tls = await tls_accept(stream, server_context(proxy_id), "victim")
            except HandshakeFailed as exc:
                refused_by_peer.append(str(exc))
                return
            down = FramedStream(tls)
            up, _ = await open_tracker_tls("127.0.0.1", port, me.id)
            try:
                while True:
                    msg = await down.receive_within(5)
                    await up.send(msg)
                    answer = await up.receive_within(5)
                    relayed.append(answer)
                    await down.send(answer)
            except (LinkBroken, trio.TooSlowError, Exception):
                pass
            finally:
                await up.aclose()
                await down.aclose()

        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        proxy_port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, relay, listeners)
            # a real peer pins the tracker's fingerprint: it refuses the proxy at once
            with pytest.raises(HandshakeFailed, match="man in the middle"):
                await join("127.0.0.1", proxy_port, me.id, SECRET, identity("alice"))
            # a peer that did not check (it trusts the proxy's certificate) still proves the
            # secret only for the session it sees: the tracker refuses the relayed proof
            with pytest.raises(HandshakeFailed, match="authentication failed"):
                await join("127.0.0.1", proxy_port, proxy_id.id, SECRET, identity("alice"))
            nursery.cancel_scope.cancel()
        assert [type(m) for m in relayed] == [Challenge, Reject]
        assert pid("alice") not in [p.peer_id for p in server.online]

    serve(tmp_path, body)


# --------------------------------------------------------------------------- peer links


def test_chunk_server_serves_only_listed_peers_and_clients_pin_the_server(tmp_path):
    holder = identity_on_disk(tmp_path, "holder")
    friend = identity_on_disk(tmp_path, "friend")
    stranger = identity_on_disk(tmp_path, "stranger")
    data = os.urandom(100)
    from syncfs.chunking import digest

    want = digest(data)

    async def read_chunk(d: bytes) -> bytes | None:
        return data if d == want else None

    async def main() -> None:
        with trio.fail_after(DEADLINE):
            pool = PeerPool(holder, holder.id, "127.0.0.1")
            server = ChunkServer(read_chunk, pool, "127.0.0.1", 0)
            async with trio.open_nursery() as nursery:
                await nursery.start(pool.run)
                port = await nursery.start(server.run)
                me = PeerInfo(holder.id, "127.0.0.1", port, holder.cert_der)
                pool.set_peers([PeerInfo(friend.id, "127.0.0.1", 1, friend.cert_der)])
                # a listed peer is served
                link = await PeerTLS(friend).connect(me)
                await link.send(Get(want))
                assert await link.receive_within(5) == Data(want, data)
                await link.send(Get(b"\2" * 32))
                assert await link.receive_within(5) == Missing(b"\2" * 32)
                # a peer the tracker does not list fails the TLS handshake
                with pytest.raises((HandshakeFailed, LinkBroken)):
                    bad = await PeerTLS(stranger).connect(me)
                    await bad.receive_within(5)
                # the friend is dropped from the list (offline or revoked): its link closes
                pool.set_peers([])
                with pytest.raises(LinkBroken):
                    await link.receive_within(5)
                await link.aclose()
                # a client that expects another peer at this address refuses this one
                fake = PeerInfo(stranger.id, "127.0.0.1", port, stranger.cert_der)
                with pytest.raises(HandshakeFailed, match="man in the middle"):
                    stream = await trio.open_tcp_stream("127.0.0.1", port)
                    await tls_connect(stream, client_context(friend), fake.peer_id, "peer")
                nursery.cancel_scope.cancel()

    trio.run(main)


def test_admit_peer_refuses_a_certificate_that_does_not_match_its_id() -> None:
    async def main() -> None:
        left, right = trio.testing.memory_stream_pair()
        server_link, client_link = FramedStream(left), FramedStream(right)
        mallory = identity("mallory")
        await client_link.send(make_hello("tracker", pid("victim"), cert=mallory.cert_der))
        with pytest.raises(HandshakeFailed):
            await admit_peer(server_link, "t" * 64, SECRET, b"", frozenset())
        assert isinstance(await client_link.receive_within(1), Reject)

    trio.run(main)
