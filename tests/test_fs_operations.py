"""The FUSE Operations class called directly, without a mount: requests in, store changes and
FUSEError errnos out."""

import errno
import os

import pyfuse3
import pytest
from enginekit import outbox, run_with_ops, settle

from syncfs.protocol.entries import Entry, Kind
from syncfs.protocol.messages import Table, TableRow
from syncfs.store import ROOT_INO

pytestmark = pytest.mark.timeout(30)


def test_write_release_commits_a_version_with_chunks(tmp_path):
    async def body(ops, engine, store):
        fi, attrs = await ops.create(ROOT_INO, b"a.txt", 0o100640, os.O_WRONLY, None)
        assert await ops.write(fi.fh, 0, b"hello world") == 11
        assert (await ops.getattr(attrs.st_ino, None)).st_size == 11
        await ops.release(fi.fh)
        await settle(engine)
        e = outbox(store)["a.txt"]
        assert (e.size, e.mode, e.version) == (11, 0o640, {engine.peer_id: 1})
        assert len(e.chunks) == 1 and e.chunks[0].length == 11

    run_with_ops(tmp_path, body)


def test_refusals_come_back_as_errnos(tmp_path):
    async def body(ops, engine, store):
        async def errno_of(coro):
            with pytest.raises(pyfuse3.FUSEError) as info:
                await coro
            return info.value.errno

        assert await errno_of(ops.lookup(ROOT_INO, b"missing", None)) == errno.ENOENT
        d = await ops.mkdir(ROOT_INO, b"d", 0o755, None)
        assert await errno_of(ops.mkdir(ROOT_INO, b"d", 0o755, None)) == errno.EEXIST
        fi, _ = await ops.create(d.st_ino, b"f", 0o644, os.O_WRONLY, None)
        await ops.release(fi.fh)
        assert await errno_of(ops.rmdir(ROOT_INO, b"d", None)) == errno.ENOTEMPTY
        assert await errno_of(ops.unlink(ROOT_INO, b"d", None)) == errno.EISDIR
        assert await errno_of(ops.rename(ROOT_INO, b"d", d.st_ino, b"inside", 0, None)) == errno.EINVAL
        assert await errno_of(ops.create(ROOT_INO, b"\xff\xfe", 0o644, os.O_WRONLY, None)) == errno.EILSEQ
        assert await errno_of(ops.create(ROOT_INO, b"n" * 256, 0o644, os.O_WRONLY, None)) == errno.ENAMETOOLONG

    run_with_ops(tmp_path, body)


def test_rename_sends_the_new_path_and_a_tombstone(tmp_path):
    async def body(ops, engine, store):
        d = await ops.mkdir(ROOT_INO, b"d", 0o755, None)
        fi, _ = await ops.create(d.st_ino, b"f", 0o644, os.O_WRONLY, None)
        await ops.write(fi.fh, 0, b"x")
        await ops.release(fi.fh)
        await settle(engine)
        await ops.rename(ROOT_INO, b"d", ROOT_INO, b"e", 0, None)
        sent = outbox(store)
        assert not sent["e/f"].deleted and sent["e/f"].chunks
        assert sent["d/f"].deleted and sent["d"].deleted
        assert (await ops.lookup(ROOT_INO, b"e", None)).st_ino == d.st_ino

    run_with_ops(tmp_path, body)


def test_remote_entries_appear_as_stale_files_with_final_size(tmp_path):
    async def body(ops, engine, store):
        from syncfs.chunking import chunk_bytes

        chunks = tuple(chunk_bytes(b"remote bytes"))
        rows = (
            TableRow(Entry("r", Kind.DIR, mode=0o700, version={"other": 1}), 1, ("other",)),
            TableRow(Entry("r/f", Kind.FILE, size=12, mode=0o600, mtime_ns=5, version={"other": 2},
                           chunks=chunks), 2, ("other",)),
        )
        engine.apply_table(Table(rows, 2))
        r = await ops.lookup(ROOT_INO, b"r", None)
        f = await ops.lookup(r.st_ino, b"f", None)
        assert (f.st_size, f.st_mode & 0o777, f.st_mtime_ns) == (12, 0o600, 5)
        assert engine.xattrs.file_state(engine.inodes.node(f.st_ino)) == "stale"
        assert store.last_seq == 2
        assert not outbox(store)  # applying a remote change never echoes back

    run_with_ops(tmp_path, body)
