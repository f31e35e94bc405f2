"""Which peers PeerPool.fetch asks for a chunk, and what their answers prove: real chunk
servers on loopback, each recording the GETs it answers."""

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
from netkit import identity_on_disk

from syncfs.chunking import digest
from syncfs.p2p import BadChunk, ChunkServer, ChunkUnavailable, PeerPool
from syncfs.protocol.messages import PeerInfo

DATA = b"chunk bytes" * 100
WANT = digest(DATA)
DEADLINE = 20
OFFLINE = "f" * 64  # a holder the tracker does not list


class Share:
    """This peer's pool, and chunk servers answering from fixed contents; ``asked`` records,
    in order, the name of every server that was asked for a chunk."""

    def __init__(self, tmp_path: Path, nursery: trio.Nursery) -> None:
        self.tmp_path = tmp_path
        self.nursery = nursery
        me = identity_on_disk(tmp_path, "me")
        self.me = me
        self.pool = PeerPool(me, me.id, "127.0.0.1")
        self.servers: dict[str, ChunkServer] = {}
        self.infos: dict[str, PeerInfo] = {}
        self.asked: list[str] = []

    async def serve(self, name: str, answer: bytes | None) -> str:
        """A peer ``name`` answering GET WANT with ``answer`` (None: MISSING); its id."""
        ident = identity_on_disk(self.tmp_path, name)
        pool = PeerPool(ident, ident.id, "127.0.0.1", warm=False)

        async def read_chunk(want: bytes) -> bytes | None:
            self.asked.append(name)
            return answer if want == WANT else None

        server = ChunkServer(read_chunk, pool, "127.0.0.1", 0)
        await self.nursery.start(pool.run)
        port = await self.nursery.start(server.run)
        pool.set_peers([PeerInfo(self.me.id, "127.0.0.1", 1, self.me.cert_der)])
        self.servers[ident.id] = server
        self.infos[name] = PeerInfo(ident.id, "127.0.0.1", port, ident.cert_der)
        return ident.id

    def online(self, *names: str) -> None:
        self.pool.set_peers([self.infos[n] for n in names])

    async def announce(self, pid: str, digests: list[bytes]) -> None:
        """Peer ``pid`` announces ``digests`` to this one, which waits until it knows."""
        while pid not in self.pool.linked():
            await trio.sleep(0.01)
        self.servers[pid].announce(digests)
        while not set(digests) <= self.pool.known.get(pid, set()):
            await trio.sleep(0.01)


def run(tmp_path: Path, body: Callable[[Share], Awaitable[None]]) -> None:
    async def main() -> None:
        with trio.fail_after(DEADLINE):
            async with trio.open_nursery() as nursery:
                share = Share(tmp_path, nursery)
                await nursery.start(share.pool.run)
                await body(share)
                nursery.cancel_scope.cancel()

    trio.run(main)


def test_a_peer_that_announced_the_chunk_is_asked_before_the_holders(tmp_path):
    async def body(share: Share) -> None:
        origin = await share.serve("origin", DATA)
        other = await share.serve("other", DATA)
        share.online("origin", "other")
        await share.announce(other, [WANT])
        assert await share.pool.fetch(WANT, len(DATA), (origin,)) == DATA
        assert share.asked == ["other"]

    run(tmp_path, body)


def test_a_helper_answering_missing_falls_back_to_the_holder_and_is_forgotten(tmp_path):
    async def body(share: Share) -> None:
        origin = await share.serve("origin", DATA)
        other = await share.serve("other", None)
        share.online("origin", "other")
        await share.announce(other, [WANT])
        assert await share.pool.fetch(WANT, len(DATA), (origin,)) == DATA
        assert share.asked == ["other", "origin"]
        assert WANT not in share.pool.known[other]
        # and the next fetch goes straight to the holder
        assert await share.pool.fetch(WANT, len(DATA), (origin,)) == DATA
        assert share.asked == ["other", "origin", "origin"]

    run(tmp_path, body)


def test_missing_from_a_non_holder_never_counts_toward_lost(tmp_path):
    # the only holder is offline; the helper that announced the chunk no longer has it
    async def body(share: Share) -> None:
        other = await share.serve("other", None)
        share.online("other")
        await share.announce(other, [WANT])
        with pytest.raises(ChunkUnavailable) as info:
            await share.pool.fetch(WANT, len(DATA), (OFFLINE,))
        assert share.asked == ["other"]
        assert not info.value.lost

    run(tmp_path, body)


def test_missing_from_every_holder_is_lost_whatever_helpers_said(tmp_path):
    async def body(share: Share) -> None:
        origin = await share.serve("origin", None)
        other = await share.serve("other", None)
        share.online("origin", "other")
        await share.announce(other, [WANT])
        with pytest.raises(ChunkUnavailable) as info:
            await share.pool.fetch(WANT, len(DATA), (origin,))
        assert share.asked == ["other", "origin"]
        assert info.value.lost

    run(tmp_path, body)


def test_peers_that_did_not_announce_the_chunk_are_not_asked(tmp_path):
    async def body(share: Share) -> None:
        origin = await share.serve("origin", DATA)
        other = await share.serve("other", DATA)
        share.online("origin", "other")
        await share.announce(other, [digest(b"something else")])
        assert await share.pool.fetch(WANT, len(DATA), (origin,)) == DATA
        assert share.asked == ["origin"]

    run(tmp_path, body)


def test_a_row_without_holders_asks_every_online_peer_and_is_never_lost(tmp_path):
    async def body(share: Share) -> None:
        await share.serve("a", None)
        await share.serve("b", DATA)
        share.online("a", "b")
        assert await share.pool.fetch(WANT, len(DATA), ()) == DATA
        assert sorted(share.asked) in (["a", "b"], ["b"])
        share.online("a")
        share.asked.clear()
        with pytest.raises(ChunkUnavailable) as info:
            await share.pool.fetch(WANT, len(DATA), ())
        assert share.asked == ["a"] and not info.value.lost

    run(tmp_path, body)


def test_a_peer_that_sent_a_corrupt_chunk_is_quarantined_and_never_proves_lost(tmp_path, caplog):
    async def body(share: Share) -> None:
        liar = await share.serve("liar", b"not the chunk")
        share.online("liar")
        avoid: set[str] = set()
        with pytest.raises(ChunkUnavailable) as info:
            await share.pool.fetch(WANT, len(DATA), (liar,), avoid)
        assert not info.value.lost and str(BadChunk(liar, WANT)) in info.value.why
        assert avoid == {liar}
        # quarantined, even for a fetch that does not avoid it: nobody is left to ask
        with pytest.raises(ChunkUnavailable) as info:
            await share.pool.fetch(WANT, len(DATA), (liar,))
        assert share.asked == ["liar"] and not info.value.lost

    caplog.set_level("INFO")
    run(tmp_path, body)
    assert "sent a corrupt chunk" in caplog.text
