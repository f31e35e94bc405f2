"""Engine-level regressions from the review of the peer engine (no mount; Operations called
directly). Each names the sequence of events that used to lose or corrupt data."""

import dataclasses
import errno
import os

import pyfuse3
import pytest
import trio
from enginekit import committed_file, outbox, run_with_ops, settle

import syncfs.datafiles as datafiles
from syncfs.chunking import chunk_bytes
from syncfs.protocol.entries import Entry, Kind
from syncfs.protocol.messages import Table, TableRow
from syncfs.store import ROOT_INO

pytestmark = pytest.mark.timeout(30)


def frow(path, data, version, seq, holders=("other",), mtime=5):
    chunks = tuple(chunk_bytes(data))
    return TableRow(Entry(path, Kind.FILE, size=len(data), mode=0o644, mtime_ns=mtime, version=version,
                          chunks=chunks), seq, holders)


def test_rename_right_after_close_publishes_the_new_bytes_at_the_target(tmp_path):
    async def body(ops, engine, store):
        await committed_file(ops, engine, b"f", b"old content")
        old = store.lookup_path("f").version
        fi, _ = await ops.create(ROOT_INO, b"f.tmp", 0o644, os.O_WRONLY, None)
        await ops.write(fi.fh, 0, b"new content, longer")
        await ops.release(fi.fh)
        await ops.rename(ROOT_INO, b"f.tmp", ROOT_INO, b"f", 0, None)  # editor-style save
        await settle(engine)
        e = outbox(store)["f"]
        assert e.size == 19 and e.chunks == tuple(chunk_bytes(b"new content, longer"))
        assert e.version[engine.peer_id] > old[engine.peer_id]  # dominates what it replaced

    run_with_ops(tmp_path, body, fetch_timeout=0.5)


def test_mtime_set_right_after_close_is_published_with_the_new_bytes(tmp_path):
    async def body(ops, engine, store):
        fi, a = await ops.create(ROOT_INO, b"f", 0o644, os.O_WRONLY, None)
        await ops.write(fi.fh, 0, b"content")
        await ops.release(fi.fh)
        await engine.files.setattr(a.st_ino, mtime_ns=123)  # cp -p, tar, rsync
        await settle(engine)
        e = outbox(store)["f"]
        assert (e.size, e.mtime_ns) == (7, 123)

    run_with_ops(tmp_path, body, fetch_timeout=0.5)


def test_chmod_of_a_stale_file_does_not_claim_its_bytes(tmp_path):
    async def body(ops, engine, store):
        engine.apply_table(Table((frow("f", b"A" * 5000, {"other": 1}, 1),), 1))
        f = await ops.lookup(ROOT_INO, b"f", None)
        await engine.files.setattr(f.st_ino, mode=0o600)
        e = outbox(store)["f"]
        assert e.mode == 0o600 and not e.held
        assert e.held_by == ("other",)  # who has them goes along, for the tracker to list

    run_with_ops(tmp_path, body, fetch_timeout=0.5)


def test_read_of_a_stale_file_replaced_meanwhile_is_eio_not_holes(tmp_path):
    async def body(ops, engine, store):
        engine.apply_table(Table((frow("f", b"A" * 5000, {"other": 1}, 1),), 1))
        f = await ops.lookup(ROOT_INO, b"f", None)
        fi = await ops.open(f.st_ino, os.O_RDONLY, None)
        engine.apply_table(Table((frow("f", b"B" * 5000, {"other": 2}, 2),), 2))
        with pytest.raises(pyfuse3.FUSEError) as info:
            await ops.read(fi.fh, 0, 100)
        assert info.value.errno == errno.EIO
        await ops.open(f.st_ino, os.O_RDONLY, None)  # the old inode is still answerable

    run_with_ops(tmp_path, body, fetch_timeout=0.5)


def test_a_row_under_a_file_parent_waits_and_applies_later(tmp_path):
    async def body(ops, engine, store):
        fi, a = await ops.create(ROOT_INO, b"x", 0o644, os.O_WRONLY, None)
        await ops.release(fi.fh)
        await settle(engine)
        v = store.lookup_path("x").version
        fi = await ops.open(a.st_ino, os.O_RDWR, None)  # a program holds x open
        rows = (  # another peer: rm x; mkdir x; echo > x/y
            TableRow(Entry("x", Kind.FILE, version={**v, "other": 1}, deleted=True), 1, ()),
            TableRow(Entry("x", Kind.DIR, mode=0o755, version={**v, "other": 2}), 2, ("other",)),
            frow("x/y", b"", {"other": 1}, 3),
        )
        engine.apply_table(Table(rows, 3))
        await ops.release(fi.fh)
        await settle(engine)  # applied by the remote side's task, not inside the release
        assert store.lookup_path("x").kind is Kind.DIR
        assert store.lookup_path("x/y") is not None

    run_with_ops(tmp_path, body, fetch_timeout=0.5)


def test_a_full_disk_during_a_download_does_not_end_the_engine(tmp_path, monkeypatch):
    def enospc(*_):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(datafiles, "write_at", enospc)

    async def body(ops, engine, store):
        await committed_file(ops, engine, b"local", b"Z" * 5000)
        engine.apply_table(Table((frow("copy", b"Z" * 5000, {"other": 1}, 1),), 1))
        with trio.fail_after(5):
            while not engine.errors.recent:
                await trio.sleep(0.01)
        assert "No space left" in engine.errors.recent[-1][1]

    run_with_ops(tmp_path, body, fetch_timeout=0.5)  # returns normally: the engine survived


def test_a_failed_commit_keeps_local_writes_over_a_waiting_remote_version(tmp_path, monkeypatch):
    async def body(ops, engine, store):
        a = await committed_file(ops, engine, b"f", b"v1")
        v = store.lookup_path("f").version
        fi = await ops.open(a.st_ino, os.O_WRONLY, None)
        await ops.write(fi.fh, 0, b"precious local edit")
        engine.apply_table(Table((frow("f", b"theirs", {**v, "other": 1}, 1),), 1))  # waits
        real = datafiles.chunk_file
        failures = []

        def flaky(*args):
            if not failures:
                failures.append(1)
                raise OSError(errno.EIO, "I/O error")
            return real(*args)

        monkeypatch.setattr(datafiles, "chunk_file", flaky)
        await ops.release(fi.fh)
        await settle(engine)
        n = store.lookup_path("f")
        assert n.size == len(b"precious local edit") and failures
        assert outbox(store)["f"].size == len(b"precious local edit")

    run_with_ops(tmp_path, body, fetch_timeout=0.5)


def test_a_write_through_a_name_a_remote_version_replaced_is_refused_with_estale(tmp_path):
    """The kernel clears its entry cache asynchronously: for a moment an open of the path can
    still reach the replaced inode, and writes to it would vanish. ESTALE makes the kernel
    look the name up again (and open the new file)."""
    async def body(ops, engine, store):
        attrs = await committed_file(ops, engine, b"f", b"mine")
        old_ino, v = attrs.st_ino, store.lookup_path("f").version
        engine.apply_table(Table((frow("f", b"theirs", {**v, "other": 1}, 1),), 1))
        assert store.lookup_path("f").ino != old_ino
        with pytest.raises(pyfuse3.FUSEError) as caught:
            await ops.open(old_ino, os.O_WRONLY, None)
        assert caught.value.errno == errno.ESTALE
        # reading what one held stays possible, and a local unlink is no remote change
        fi = await ops.open(old_ino, os.O_RDONLY, None)
        await ops.release(fi.fh)
        fi, attrs = await ops.create(ROOT_INO, b"g", 0o644, os.O_WRONLY, None)
        await ops.release(fi.fh)
        await ops.unlink(ROOT_INO, b"g", None)
        fi = await ops.open(attrs.st_ino, os.O_WRONLY, None)
        await ops.release(fi.fh)

    run_with_ops(tmp_path, body, fetch_timeout=0.5)


def test_writes_of_a_crashed_run_are_committed_before_a_remote_version_parked_for_them(tmp_path):
    """Killed while a program wrote a file that a remote version was waiting for: at the
    next start the local bytes are committed first (and the tracker makes a conflict copy
    of one side), instead of the parked version replacing them unseen. Found by the
    randomized convergence test (a SIGKILL right after a write)."""
    async def crash(ops, engine, store):
        a = await committed_file(ops, engine, b"f", b"v1")
        v = store.lookup_path("f").version
        fi = await ops.open(a.st_ino, os.O_WRONLY | os.O_TRUNC, None)
        await ops.write(fi.fh, 0, b"precious local edit")
        engine.apply_table(Table((frow("f", b"theirs", {**v, "other": 1}, 1),), 1))  # parked: f is busy
        # the process dies here: no release, no commit

    async def restart(ops, engine, store):
        await settle(engine)
        assert store.lookup_path("f").size == len(b"precious local edit")
        assert outbox(store)["f"].size == len(b"precious local edit")

    run_with_ops(tmp_path, crash, fetch_timeout=0.5)
    run_with_ops(tmp_path, restart, fetch_timeout=0.5)


def test_a_stale_file_renamed_here_learns_who_holds_it_at_its_new_path(tmp_path):
    """Its download used the row of the old path: peers that fetched the renamed file
    since (and are listed at the new path) must be asked too, or the only holder of the
    old row answering MISSING would make this peer drop a version others hold."""
    async def body(ops, engine, store):
        data = b"A" * 5000
        engine.apply_table(Table((frow("x", data, {"other": 1}, 1),), 1))
        await ops.lookup(ROOT_INO, b"x", None)
        await ops.rename(ROOT_INO, b"x", ROOT_INO, b"y", 0, None)
        y = store.lookup_path("y")
        sent = outbox(store)["y"]
        assert not sent.held and sent.held_by == ("other",)
        row = TableRow(dataclasses.replace(sent, held=True, held_by=()), 2, ("other", "third"))
        engine.apply_table(Table((row,), 2))
        p = engine.downloader.partials[y.data_id]
        assert p.row.holders == ("other", "third") and p.path == "y"

    run_with_ops(tmp_path, body, fetch_timeout=0.5)
