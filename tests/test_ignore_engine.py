"""Ignore rules in the engine, without a mount: a file that a rule kept local syncs as soon
as no rule ignores it, also when that rule was a default of an older syncfs (``*~``)."""

import os

import pytest
from enginekit import outbox, run_with_ops, settle

from syncfs import ignore
from syncfs.store import ROOT_INO

pytestmark = pytest.mark.timeout(30)


async def write(ops, engine, name: bytes, data: bytes) -> None:
    fi, _ = await ops.create(ROOT_INO, name, 0o644, os.O_WRONLY, None)
    await ops.write(fi.fh, 0, data)
    await ops.release(fi.fh)
    await settle(engine)


def test_a_backup_an_older_default_kept_local_syncs_after_the_upgrade(tmp_path, monkeypatch):
    async def before(ops, engine, store):
        await write(ops, engine, b"draft~", b"kept by the old default")
        await write(ops, engine, b".draft.swp", b"vim's")
        assert set(outbox(store)) == set()
        assert engine.xattrs.file_state(store.lookup_path("draft~")) == "ignored"

    async def after(ops, engine, store):
        await settle(engine)
        sent = outbox(store)
        assert set(sent) == {"draft~"}  # the swap file stays local
        assert sent["draft~"].size == len(b"kept by the old default")
        assert engine.xattrs.file_state(store.lookup_path("draft~")) == "synced"
        assert engine.xattrs.file_state(store.lookup_path(".draft.swp")) == "ignored"

    with monkeypatch.context() as m:
        m.setattr(ignore, "DEFAULTS", (*ignore.DEFAULTS, "*~"))
        run_with_ops(tmp_path, before, fetch_timeout=0.5)
    run_with_ops(tmp_path, after, fetch_timeout=0.5)


def test_a_rule_taken_out_publishes_what_it_kept_and_a_file_being_written_waits(tmp_path):
    async def body(ops, engine, store):
        await write(ops, engine, b".syncfsignore", b"*.log\n")
        await write(ops, engine, b"a.log", b"one")
        fi, _ = await ops.create(ROOT_INO, b"b.log", 0o644, os.O_WRONLY, None)
        await ops.write(fi.fh, 0, b"half")
        assert set(outbox(store)) == {".syncfsignore"}
        assert engine.ignores.tally().as_dict() == {"count": 2, "by_rule": {"*.log": 2}, "paths": ["a.log", "b.log"]}
        node = store.lookup_path(".syncfsignore")
        fi2 = await ops.open(node.ino, os.O_WRONLY | os.O_TRUNC, None)
        await ops.write(fi2.fh, 0, b"*.tmp\n")
        await ops.release(fi2.fh)
        await settle(engine)
        assert "a.log" in outbox(store) and "b.log" not in outbox(store)  # still open for writing
        await ops.write(fi.fh, 4, b" and done")
        await ops.release(fi.fh)
        await settle(engine)
        assert outbox(store)["b.log"].size == len(b"half and done")
        assert engine.ignores.tally().count == 0

    run_with_ops(tmp_path, body, fetch_timeout=0.5)
