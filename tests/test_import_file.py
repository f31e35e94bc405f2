"""Engine.import_file, which the watched-directory front end commits files with (no mount)."""

import os

import pytest
from enginekit import outbox, run_with_ops

from syncfs.chunking import chunk_bytes
from syncfs.errors import FsError
from syncfs.protocol.entries import Entry, Kind
from syncfs.protocol.messages import Table, TableRow

pytestmark = pytest.mark.timeout(30)


def test_own_counter_never_goes_back_even_with_a_stale_base(tmp_path):
    """A crash between committing a file and recording it leaves the caller's base behind;
    the next commit must still dominate what this peer already sent."""
    src = tmp_path / "src"

    async def body(ops, engine, store):
        src.write_bytes(b"first")
        node, _ = await engine.commits.import_file("f", str(src), {})
        assert node.version == {engine.peer_id: 1}
        src.write_bytes(b"second, longer")
        node, _ = await engine.commits.import_file("f", str(src), {})  # base from before the first
        assert node.version == {engine.peer_id: 2}
        assert outbox(store)["f"].chunks == tuple(chunk_bytes(b"second, longer"))

    run_with_ops(tmp_path, body)


def test_bytes_the_share_has_are_adopted_without_a_new_version(tmp_path):
    src = tmp_path / "src"
    data = os.urandom(300_000)

    async def body(ops, engine, store):
        entry = Entry("f", Kind.FILE, size=len(data), mode=0o644, mtime_ns=5, version={"other": 3},
                      chunks=tuple(chunk_bytes(data)))
        engine.apply_table(Table((TableRow(entry, 1, ("other",)),), 1))
        assert store.lookup_path("f").data_id in engine.downloader.partials  # stale
        src.write_bytes(data)
        os.utime(src, ns=(5, 5))
        recorded = []
        node, _ = await engine.commits.import_file("f", str(src), {}, on_commit=lambda n, st: recorded.append(n.version))
        assert node.version == {"other": 3} and recorded == [{"other": 3}]
        assert node.data_id not in engine.downloader.partials  # filled from the file, not fetched
        assert "f" not in outbox(store)
        assert store.pending_have("f") == {"other": 3}  # and this peer now offers it

    run_with_ops(tmp_path, body)


def test_a_file_that_changes_while_it_is_copied_is_not_committed(tmp_path, monkeypatch):
    import syncfs.datafiles as datafiles

    src = tmp_path / "src"
    real = datafiles.copy_and_chunk

    def copy_then_touch(source, dest, params):
        out = real(source, dest, params)
        with open(source, "ab") as f:
            f.write(b"more")  # the writer goes on while we copied
        return out[0], os.stat(source), out[2]

    monkeypatch.setattr(datafiles, "copy_and_chunk", copy_then_touch)

    async def body(ops, engine, store):
        src.write_bytes(b"half")
        assert await engine.commits.import_file("f", str(src), {}) is None
        assert store.lookup_path("f") is None and not outbox(store)

    run_with_ops(tmp_path, body)


def test_a_refused_import_leaves_no_data_file_behind(tmp_path):
    src = tmp_path / "src"

    async def body(ops, engine, store):
        src.write_bytes(b"orphan")
        before = set(os.listdir(store.data_dir))
        with pytest.raises(FsError):
            await engine.commits.import_file("missing-dir/f", str(src), {})
        assert set(os.listdir(store.data_dir)) == before

    run_with_ops(tmp_path, body)
