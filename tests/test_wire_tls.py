"""FramedStream over TLS: large frames arrive whole and in order, however TLS cuts them."""

import os

import trio
import trio.testing
from netkit import identity_on_disk

from syncfs.handshake import client_context, server_context, tls_accept, tls_connect, trust
from syncfs.protocol.framing import DEFAULT_MAX_FRAME
from syncfs.protocol.messages import Data, Get, Missing
from syncfs.wire import FramedStream, LinkBroken

DEADLINE = 20


async def _tls_pair(tmp_path):  # type: ignore[no-untyped-def]
    server_id = identity_on_disk(tmp_path, "server")
    client_id = identity_on_disk(tmp_path, "client")
    server_ctx = server_context(server_id, mutual=True)
    trust(server_ctx, client_id.cert_der)
    left, right = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        accepted: list = []

        async def accept() -> None:
            accepted.append(await tls_accept(left, server_ctx, "client"))

        nursery.start_soon(accept)
        client = await tls_connect(right, client_context(client_id), server_id.id, "server")
    server_link, client_link = FramedStream(accepted[0]), FramedStream(client)
    server_link.max_frame = client_link.max_frame = DEFAULT_MAX_FRAME
    return server_link, client_link


def test_large_frames_over_tls_arrive_whole_and_in_order(tmp_path):
    chunks = [os.urandom(n) for n in (5, 1 << 20, 3 * (1 << 20) + 7, 16 << 10, 4 << 20)]

    async def main() -> None:
        with trio.fail_after(DEADLINE):
            server, client = await _tls_pair(tmp_path)
            async with trio.open_nursery() as nursery:

                async def send_all() -> None:
                    for i, c in enumerate(chunks):
                        await server.send(Data(bytes([i]) * 32, c))
                    await server.send(Missing(b"\xff" * 32))
                    await server.aclose()

                nursery.start_soon(send_all)
                got = [await client.receive() for _ in range(len(chunks) + 1)]
                assert got[:-1] == [Data(bytes([i]) * 32, c) for i, c in enumerate(chunks)]
                assert got[-1] == Missing(b"\xff" * 32)
                try:
                    await client.receive()
                except LinkBroken:
                    pass
                else:
                    raise AssertionError("expected the link to close")
            # the byte counter covers what was drained from TLS too
            assert client.bytes_received >= sum(len(c) for c in chunks)

    trio.run(main)


def test_small_frames_pipelined_over_tls_are_all_received(tmp_path):
    async def main() -> None:
        with trio.fail_after(DEADLINE):
            server, client = await _tls_pair(tmp_path)
            wanted = [os.urandom(32) for _ in range(500)]
            async with trio.open_nursery() as nursery:

                async def send_all() -> None:
                    for w in wanted:
                        await client.send(Get(w))

                nursery.start_soon(send_all)
                got = [await server.receive() for _ in wanted]
            assert got == [Get(w) for w in wanted]

    trio.run(main)


def test_chunk_links_read_their_socket_in_large_pieces(tmp_path):
    """TLS over a real socket: a bulk (chunk) link's transport hands out up to 1 MiB per
    read of what waits in the socket; the tracker's kind keeps trio's 64 KiB."""
    from syncfs.wire import TRANSPORT_RECEIVE_SIZE, BulkReceive

    server_id = identity_on_disk(tmp_path, "server")
    payload = os.urandom(3 << 20)

    async def one(bulk: bool) -> int:
        a, b = trio.socket.socketpair()
        left, right = trio.SocketStream(a), trio.SocketStream(b)
        for s in (a, b):
            s.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 4 << 20)
            s.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_SNDBUF, 4 << 20)
        async with trio.open_nursery() as nursery:
            accepted: list = []

            async def accept() -> None:
                accepted.append(await tls_accept(left, server_context(server_id), "client", bulk=bulk))

            nursery.start_soon(accept)
            client = await tls_connect(right, client_context(), server_id.id, "server", bulk=bulk)
        server = accepted[0]
        assert isinstance(server.transport_stream, BulkReceive) == bulk
        await client.send_all(payload)
        await trio.sleep(0.05)  # all of it waits in the socket
        piece = await server.transport_stream.receive_some()
        for s in (client, server):
            await trio.aclose_forcefully(s)
        return len(piece)

    async def main() -> None:
        with trio.fail_after(DEADLINE):
            assert await one(bulk=False) <= 64 * 1024
            assert 64 * 1024 < await one(bulk=True) <= TRANSPORT_RECEIVE_SIZE

    trio.run(main)
