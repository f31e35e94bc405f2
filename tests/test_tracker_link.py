"""The tracker link tells refusals that retrying does not cure from passing trouble, and
waits ever longer between attempts while it is refused."""

import pytest
import trio
from netkit import identity, join, pid

from syncfs.handshake import NotAdmitted, Refused, WrongServer
from syncfs.identity import Identity
from syncfs.protocol.messages import Alive
from syncfs.tracker_link import (
    BACKOFF_MAX,
    REFUSED_BACKOFF_INITIAL,
    REFUSED_BACKOFF_MAX,
    Backoff,
    TrackerRefused,
    permanent,
)
from tracker.server import TrackerServer
from tracker.state import TrackerState

SECRET = b"share-secret"


def with_tracker(tmp_path, body) -> None:
    async def main() -> None:
        with trio.fail_after(20), TrackerState(tmp_path / "state") as state:
            me = Identity.load_or_create(tmp_path / "state" / "identity")
            server = TrackerServer(state, SECRET, identity=me, host="127.0.0.1", port=0, interval=1.0)
            async with trio.open_nursery() as nursery:
                port = await nursery.start(server.run)
                await body(port, server, me)
                nursery.cancel_scope.cancel()

    trio.run(main)


def test_each_refusal_has_its_class_and_cause(tmp_path):
    async def body(port, server, me):
        with pytest.raises(NotAdmitted) as wrong_secret:
            await join("127.0.0.1", port, me.id, b"wrong", identity("eve"))
        assert wrong_secret.value.cause == "secret"
        with pytest.raises(WrongServer) as wrong_server:
            await join("127.0.0.1", port, "ab" * 32, SECRET, identity("eve"))
        assert wrong_server.value.got == me.id and wrong_server.value.expected == "ab" * 32
        link, _ = await join("127.0.0.1", port, me.id, SECRET, identity("bob"))
        with pytest.raises(Refused) as twice:  # passing: the first link may be gone in a moment
            await join("127.0.0.1", port, me.id, SECRET, identity("bob"))
        assert not isinstance(twice.value, NotAdmitted)
        await link.aclose()
        server.state.revoke(pid("carol"))
        server.apply_revocations()
        with pytest.raises(NotAdmitted) as revoked:
            await join("127.0.0.1", port, me.id, SECRET, identity("carol"))
        assert revoked.value.cause == "revoked"
        for exc, cause in ((wrong_secret.value, "secret"), (wrong_server.value, "certificate"),
                           (revoked.value, "revoked")):
            refusal = permanent(exc, "h:1", "me")
            assert refusal is not None and refusal.cause == cause
        assert permanent(twice.value, "h:1", "me") is None
        assert permanent(OSError("connection refused"), "h:1", "me") is None

    with_tracker(tmp_path, body)


def test_refusal_messages_name_the_cause():
    assert "share secret" in str(TrackerRefused("h:1", "secret", "authentication failed"))
    assert "(id p1) has been revoked" in str(TrackerRefused("h:1", "revoked", "x", "p1"))
    assert "h:1 is not the tracker of this join token" in str(TrackerRefused("h:1", "certificate", "x"))


def test_backoff_is_quick_while_unreachable_and_slow_while_refused():
    b = Backoff()
    quick = [b.next(refused=False) for _ in range(8)]
    assert quick[0] < 1 and max(quick) == BACKOFF_MAX
    slow = [b.next(refused=True) for _ in range(10)]
    assert slow[0] == REFUSED_BACKOFF_INITIAL and slow == sorted(slow) and slow[-1] == REFUSED_BACKOFF_MAX
    # ten refusals take over 20 minutes, not 20 seconds
    assert sum(slow) > 20 * 60
    b.connected()
    assert b.next(refused=False) == quick[0]


def test_a_tracker_told_to_exit_when_idle_waits_for_its_last_peer(tmp_path):
    """``--exit-when-idle``: never while a peer is connected; soon after the last one left."""

    async def main() -> None:
        with trio.fail_after(20), TrackerState(tmp_path / "state") as state:
            me = Identity.load_or_create(tmp_path / "state" / "identity")
            server = TrackerServer(state, SECRET, identity=me, host="127.0.0.1", port=0, interval=0.2,
                                   exit_when_idle=0.5)
            ended = trio.Event()

            async def run(task_status=trio.TASK_STATUS_IGNORED):
                await server.run(task_status=task_status)
                ended.set()

            async with trio.open_nursery() as nursery:
                port = await nursery.start(run)
                link, accept = await join("127.0.0.1", port, me.id, SECRET, identity("bob"))
                for _ in range(10):  # 2 s connected, answering the heartbeat
                    await link.send(Alive())
                    await trio.sleep(0.2)
                assert not ended.is_set()
                await link.aclose()
                left = trio.current_time()
                await ended.wait()
                assert 0.4 < trio.current_time() - left < 3

    trio.run(main)
