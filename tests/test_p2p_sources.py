"""Which peers PeerPool.fetch asks for a chunk, and what their answers prove."""

import pytest
import trio

from syncfs.chunking import digest
from syncfs.p2p import ChunkUnavailable, PeerPool
from syncfs.protocol.messages import PeerInfo

DATA = b"chunk bytes" * 100
WANT = digest(DATA)


def pool_with(online: list[str], answers: dict[str, bytes | None]) -> tuple[PeerPool, list[str]]:
    """A pool whose peers ``online`` answer from ``answers`` (None: MISSING); the list
    records whom it asked, in order."""
    pool = PeerPool(None, "me", None)
    pool.peers = {p: PeerInfo(p, "127.0.0.1", 1) for p in online}
    asked: list[str] = []

    async def fake_fetch_from(pid: str, want: bytes, length: int) -> bytes | None:
        asked.append(pid)
        return answers[pid]

    pool._fetch_from = fake_fetch_from  # type: ignore[method-assign]
    return pool, asked


def test_a_peer_that_announced_the_chunk_is_asked_before_the_holders():
    pool, asked = pool_with(["origin", "other"], {"origin": DATA, "other": DATA})
    pool.known["other"] = {WANT}
    assert trio.run(pool.fetch, WANT, len(DATA), ("origin",)) == DATA
    assert asked == ["other"]


def test_a_helper_answering_missing_falls_back_to_the_holder_and_is_forgotten():
    pool, asked = pool_with(["origin", "other"], {"origin": DATA, "other": None})
    pool.known["other"] = {WANT}
    assert trio.run(pool.fetch, WANT, len(DATA), ("origin",)) == DATA
    assert asked == ["other", "origin"]
    assert WANT not in pool.known["other"]


def test_missing_from_a_non_holder_never_counts_toward_lost():
    # the only holder is offline; the helper that announced the chunk no longer has it
    pool, asked = pool_with(["other"], {"other": None})
    pool.known["other"] = {WANT}
    with pytest.raises(ChunkUnavailable) as info:
        trio.run(pool.fetch, WANT, len(DATA), ("origin",))
    assert asked == ["other"]
    assert not info.value.lost


def test_missing_from_every_holder_is_lost_whatever_helpers_said():
    pool, asked = pool_with(["origin", "other"], {"origin": None, "other": None})
    pool.known["other"] = {WANT}
    with pytest.raises(ChunkUnavailable) as info:
        trio.run(pool.fetch, WANT, len(DATA), ("origin",))
    assert asked == ["other", "origin"]
    assert info.value.lost


def test_peers_that_did_not_announce_the_chunk_are_not_asked():
    pool, asked = pool_with(["origin", "other"], {"origin": DATA, "other": DATA})
    pool.known["other"] = {digest(b"something else")}
    assert trio.run(pool.fetch, WANT, len(DATA), ("origin",)) == DATA
    assert asked == ["origin"]


def test_a_row_without_holders_asks_every_online_peer_and_is_never_lost():
    pool, asked = pool_with(["a", "b"], {"a": None, "b": DATA})
    assert trio.run(pool.fetch, WANT, len(DATA), ()) == DATA
    assert sorted(asked) in (["a", "b"], ["b"])
    pool, asked = pool_with(["a"], {"a": None})
    with pytest.raises(ChunkUnavailable) as info:
        trio.run(pool.fetch, WANT, len(DATA), ())
    assert asked == ["a"] and not info.value.lost
