"""Pinning and freeing in the engine, without a mount: a peer frees a version's bytes only
after the tracker has stopped listing it as a holder, and never one it still needs."""

import os

import pytest
from enginekit import run_with_ops, settle

from syncfs.pinning import PinError, check_paths
from syncfs.protocol.messages import DropAnswer, Table, TableRow
from syncfs.store import ROOT_INO

pytestmark = pytest.mark.timeout(30)

DATA = os.urandom(300_000)


async def committed_file(ops, engine, store, name: bytes = b"f", data: bytes = DATA):
    """A file written here, accepted by the tracker with ``other`` holding it too."""
    fi, _ = await ops.create(ROOT_INO, name, 0o644, os.O_WRONLY, None)
    await ops.write(fi.fh, 0, data)
    await ops.release(fi.fh)
    await settle(engine)
    node = store.lookup_path(name.decode())
    engine.apply_table(Table((TableRow(node.entry(), 1, (engine.peer_id, "other")),), 1))
    assert not store.outbox_has(name.decode())
    return node


def row(node, seq, holders):
    return Table((TableRow(node.entry(), seq, holders),), seq)


def test_bytes_are_freed_only_on_a_grant_after_a_row_without_this_peer(tmp_path):
    async def body(ops, engine, store):
        node = await committed_file(ops, engine, store)
        digest = node.chunks[0].digest
        assert engine.pinning.request_drop(node) == ""
        assert store.drop_pending("f") == node.version
        # a row without us is not enough (a HAVE sent on a new link may still list us) ...
        engine.apply_table(row(node, 2, ("other",)))
        assert store.lookup_path("f").data_id == node.data_id
        # ... and a grant after a row that lists us again frees nothing either
        engine.apply_table(row(node, 3, (engine.peer_id, "other")))
        engine.pinning.on_answer(DropAnswer("f", node.version, True))
        assert store.lookup_path("f").data_id == node.data_id and store.drop_pending("f") is None
        assert await engine.downloader.serve_chunk(digest) is not None
        assert store.pending_have("f") == node.version  # and says it has the bytes
        engine.apply_table(row(node, 4, (engine.peer_id, "other")))
        # refused: kept, the request is over, the refusal is not an error of the user's
        assert engine.pinning.request_drop(node) == ""
        engine.pinning.on_answer(DropAnswer("f", node.version, False, "this peer holds the only copy"))
        assert store.drop_pending("f") is None and engine.errors.recent == []
        assert await engine.downloader.serve_chunk(digest) is not None
        # asked again, a row without us, then the grant: freed, unindexed, a stale partial
        assert engine.pinning.request_drop(node) == ""
        engine.pinning.on_answer(DropAnswer("f", {"other": 9}, True))  # not ours: ignored
        engine.apply_table(row(node, 5, ("other",)))
        engine.pinning.on_answer(DropAnswer("f", node.version, True))
        now = store.lookup_path("f")
        assert now.data_id != node.data_id and now.data_id in engine.downloader.partials
        assert not store.data_path(node.data_id).exists()
        assert os.stat(store.data_path(now.data_id)).st_blocks == 0
        assert await engine.downloader.serve_chunk(digest) is None
        assert engine.xattrs.file_state(now) == "stale" and store.drop_pending("f") is None
        assert engine.downloader.partials[now.data_id].row.holders == ("other",)

    run_with_ops(tmp_path, body, fetch_timeout=0.5, on_demand=True)


def test_a_file_opened_or_pinned_before_the_grant_is_kept_and_claimed_again(tmp_path):
    async def body(ops, engine, store):
        node = await committed_file(ops, engine, store)
        assert engine.pinning.request_drop(node) == ""
        fi = await ops.open(node.ino, os.O_RDONLY, None)
        engine.apply_table(row(node, 2, ("other",)))
        engine.pinning.on_answer(DropAnswer("f", node.version, True))  # granted, but a program reads it now
        assert store.lookup_path("f").data_id == node.data_id
        assert store.pending_have("f") == node.version  # listed again, for bytes it has
        await ops.release(fi.fh)
        assert engine.pinning.cannot_free(store.lookup_path("f"), node.version) == ""
        engine.pinning.pin(["f"])
        assert engine.pinning.cannot_free(store.lookup_path("f"), node.version) == "pinned"
        assert engine.xattrs.file_state(store.lookup_path("f")) == "pinned"

    run_with_ops(tmp_path, body, fetch_timeout=0.5, on_demand=True)


def test_what_must_never_be_freed(tmp_path):
    async def body(ops, engine, store):
        node = await committed_file(ops, engine, store)
        # a file being written, then its unsent local change
        fi = await ops.open(node.ino, os.O_WRONLY, None)
        await ops.write(fi.fh, 0, b"changed")
        assert engine.pinning.request_drop(store.lookup_path("f")) == "open"
        await ops.release(fi.fh)
        await settle(engine)
        assert "local change" in engine.pinning.request_drop(store.lookup_path("f"))  # in the outbox
        assert store.pending_drops() == []
        # a newer version replaced the one we asked about: the request ends, nothing freed
        node = await committed_file(ops, engine, store, b"g")
        assert engine.pinning.request_drop(node) == ""
        newer = node.entry(version={**node.version, "other": 1})
        engine.apply_table(Table((TableRow(newer, 5, ("other",)),), 5))
        assert store.drop_pending("g") is None

    run_with_ops(tmp_path, body, fetch_timeout=0.5, on_demand=True)


def test_unpin_through_a_pinned_directory_and_bad_paths_change_nothing(tmp_path):
    async def body(ops, engine, store):
        d = await ops.mkdir(ROOT_INO, b"d", 0o755, None)
        fi, _ = await ops.create(d.st_ino, b"x", 0o644, os.O_WRONLY, None)
        await ops.release(fi.fh)
        engine.pinning.pin(["d"])
        assert engine.pinning.pinned_by("d/x") == "d"
        with pytest.raises(PinError, match="pinned through d"):
            await engine.pinning.unpin(["d/x"])
        with pytest.raises(PinError, match="no such file"):
            engine.pinning.pin(["d/x", "missing"])
        assert engine.pinning.pins == {"d"} and store.pins() == {"d"}
        # renames carry the pin along; deletes drop it
        await ops.rename(ROOT_INO, b"d", ROOT_INO, b"e", 0, None)
        assert engine.pinning.pinned_by("e/x") == "e" and store.pins() == {"e"}
        await ops.unlink(store.lookup_path("e").ino, b"x", None)
        await ops.rmdir(ROOT_INO, b"e", None)
        assert store.pins() == set()

    run_with_ops(tmp_path, body, fetch_timeout=0.5)


def test_the_chunks_of_a_partly_fetched_file_are_freed_without_asking(tmp_path):
    from syncfs.chunking import chunk_bytes
    from syncfs.protocol.entries import Entry, Kind

    data = os.urandom(3 << 20)
    chunks = tuple(chunk_bytes(data))
    assert len(chunks) > 1

    async def body(ops, engine, store):
        entry = Entry("big", Kind.FILE, size=len(data), mode=0o644, mtime_ns=5, version={"other": 1}, chunks=chunks)
        engine.apply_table(Table((TableRow(entry, 1, ("other",)),), 1))
        node = store.lookup_path("big")
        p = engine.downloader.partials[node.data_id]
        with open(store.data_path(node.data_id), "r+b") as f:  # as if its first chunk was read
            f.write(data[: chunks[0].length])
        p.add_present(0)
        engine.pinning.pin(["big"])
        assert engine.pinning.free_partial(node) == 0  # pinned: kept
        await engine.pinning.unpin(["big"])
        now = store.lookup_path("big")
        assert now.data_id != node.data_id and not store.data_path(node.data_id).exists()
        assert engine.downloader.partials[now.data_id].present == set() and p.cancelled
        assert store.pending_drops() == []  # nothing asked of the tracker

    run_with_ops(tmp_path, body, fetch_timeout=0.5, on_demand=True)


def test_last_use_times_are_kept_across_a_restart(tmp_path):
    async def first(ops, engine, store):
        fi, _ = await ops.create(ROOT_INO, b"f", 0o644, os.O_WRONLY, None)
        await ops.release(fi.fh)
        engine.pinning.uses.used("f", 123.0)

    async def second(ops, engine, store):
        assert engine.pinning.uses.last["f"] == 123.0

    run_with_ops(tmp_path, first, fetch_timeout=0.5)  # saved when the engine stops
    run_with_ops(tmp_path, second, fetch_timeout=0.5)


@pytest.mark.parametrize("paths", [None, [], "a", [1], ["../a"], ["/a"], ["a//b"], ["x"] * 10_001])
def test_check_paths_refuses_bad_requests(paths):
    with pytest.raises(PinError):
        check_paths(paths)


def test_check_paths_takes_the_root_and_relative_paths():
    assert check_paths(["", "a/b"]) == ["", "a/b"]
