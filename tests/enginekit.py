"""Run the engine and its FUSE Operations in-process, without a mount, for layer-2 tests."""

import os

import trio

from syncfs.engine import Engine
from syncfs.fs import Operations
from syncfs.p2p import PeerPool
from syncfs.store import ROOT_INO, Store


def run_with_ops(tmp_path, body, fetch_timeout: float = 30.0) -> None:
    """Open a store under ``tmp_path``, start an engine on it and await ``body(ops, engine, store)``."""
    store = Store(tmp_path / "store")
    store.open()

    async def main():
        engine = Engine(store, PeerPool(None, store.peer_id, None), fetch_timeout=fetch_timeout)
        ops = Operations(engine)
        engine.frontend = ops
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.pool.run)
            await nursery.start(engine.run)
            await body(ops, engine, store)
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        store.close()


async def settle(engine: Engine) -> None:
    """Wait until no local commit is queued or running."""
    with trio.fail_after(10):
        while engine._commit_queue or engine._committing:
            await trio.sleep(0.01)


def outbox(store: Store) -> dict:
    return {e.path: e for _, e in store.outbox_after(0, 1000)}


async def committed_file(ops: Operations, engine: Engine, name: bytes, data: bytes):
    """Create ``name`` in the root, write ``data``, close it and wait for the commit; returns
    the attributes ``create`` gave."""
    fi, attrs = await ops.create(ROOT_INO, name, 0o644, os.O_WRONLY, None)
    await ops.write(fi.fh, 0, data)
    await ops.release(fi.fh)
    await settle(engine)
    return attrs
