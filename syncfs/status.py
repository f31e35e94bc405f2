"""A snapshot of what a running peer is doing, written atomically to ``status.json`` in its
store, for ``syncfs status``-style tooling and for tests that count bytes."""

import json
import os
import time
from pathlib import Path
from typing import Any

import trio

from .engine import Engine
from .p2p import ChunkServer
from .tracker_link import TrackerLink

INTERVAL = 0.1
REFRESH = 0.5  # rewritten at least this often, so readers can tell it is current


def snapshot(engine: Engine, server: ChunkServer, link: TrackerLink) -> dict[str, Any]:
    partials = engine.downloader.partials.values()
    return {
        "peer_id": engine.peer_id,
        "tracker": {"address": f"{link.host}:{link.port}", "connected": link.connected,
                    "last_error": link.last_error, "last_seq": engine.store.last_seq},
        "peers_online": sorted(engine.pool.peers),
        "outbox": engine.store.outbox_len(),
        "bytes_received": engine.pool.bytes_received,
        "bytes_sent": server.bytes_sent,
        "bytes_reused_locally": engine.downloader.bytes_local,
        "stale": [
            {"path": p.path, "size": p.row.entry.size, "chunks": len(p.row.entry.chunks),
             "present": len(p.present), "filling": p.filling, "last_error": p.last_error}
            for p in partials
        ],
        "errors": [{"time": t, "message": m} for t, m in engine.errors],
        "updated": time.time(),
    }


async def write_status(path: Path, engine: Engine, server: ChunkServer, link: TrackerLink) -> None:
    last = None
    written = 0.0
    while True:
        data = snapshot(engine, server, link)
        data.pop("updated")
        if data != last or time.monotonic() - written > REFRESH:
            last = data
            written = time.monotonic()
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({**data, "updated": time.time()}))
            os.replace(tmp, path)
        await trio.sleep(INTERVAL)
