"""A snapshot of what a running peer is doing, written atomically to ``status.json`` in its
store, for ``syncfs status``-style tooling and for tests that count bytes."""

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from .control import ControlError
from .engine import Engine
from .p2p import ChunkServer
from .pinning import PinError, check_paths
from .tracker_link import TrackerLink

log = logging.getLogger(__name__)

INTERVAL = 0.1
REFRESH = 0.5  # rewritten at least this often, so readers can tell it is current


def snapshot(engine: Engine, server: ChunkServer, link: TrackerLink, log_file: str = "",
             full: bool = True) -> dict[str, Any]:
    """What the peer is doing. ``full`` adds figures that scan the whole tree (file counts,
    conflict copies): for a person's request, not for the frequent status file."""
    partials = engine.downloader.partials.values()
    extra: dict[str, Any] = {}
    if full:
        counts = engine.store.counts()
        extra = {"files": counts["files"], "dirs": counts["dirs"], "conflicts": engine.store.conflict_paths(),
                 "cache_used": engine.pinning.usage()}
    return {
        **extra,
        "mountpoint": engine.mountpoint,
        "store": str(engine.store.root),
        "log_file": log_file,
        "paused": engine.filler.paused,
        "ignore_errors": engine.ignores.rules.errors,
        "peer_id": engine.peer_id,
        "tracker": {"address": f"{link.host}:{link.port}", "connected": link.connected,
                    "last_error": link.last_error, "last_seq": engine.store.last_seq},
        "peers_online": sorted(engine.pool.peers),
        "on_demand": engine.on_demand,
        "pinned": sorted(engine.pinning.pins),
        "cache_size": engine.pinning.cache_size,
        "outbox": engine.store.outbox_len(),
        "links": engine.pool.linked(),
        "bytes_received": engine.pool.bytes_received,
        "bytes_received_from": dict(sorted(engine.pool.received_from.items())),
        "bytes_sent": server.bytes_sent,
        "bytes_reused_locally": engine.downloader.bytes_local,
        "stale": [
            {"path": p.path, "size": p.row.entry.size, "chunks": len(p.row.entry.chunks),
             "present": len(p.present), "bytes_present": p.bytes_present,
             "state": "downloading" if p.downloading else "stale",
             "filling": p.fill.filling, "last_error": p.fill.last_error}
            for p in partials
        ],
        "errors": [{"time": t, "message": m} for t, m in engine.errors.recent],
        "updated": time.time(),
    }


def current_log_file() -> str:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            return handler.baseFilename
    return ""


class ControlHandler:
    """Answers the command line's requests to a running mount."""

    def __init__(self, engine: Engine, server: ChunkServer, link: TrackerLink, log_file: str,
                 on_stop: Callable[[], None] = lambda: None) -> None:
        self.engine = engine
        self.server = server
        self.link = link
        self.log_file = log_file
        self.on_stop = on_stop

    async def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        t = request.get("t")
        if t == "status":
            return {"t": "status", **snapshot(self.engine, self.server, self.link, self.log_file)}
        if t == "pause":
            mode = "hard" if request.get("hard") is True else "soft"
            # Downloads stop; uploads go on, or this peer's own new writes could not reach
            # anyone while it is paused.
            self.engine.filler.set_paused(mode)
            return {"t": "ok", "paused": mode}
        if t == "resume":
            self.engine.filler.set_paused("")
            return {"t": "ok", "paused": ""}
        if t == "stop":
            self.on_stop()  # the answer goes out before the loop winds down
            return {"t": "ok", "pid": os.getpid()}
        if t in ("pin", "unpin"):
            pinning = self.engine.pinning
            try:
                paths = check_paths(request.get("paths"))
                if t == "pin":
                    return {"t": "ok", "on_demand": self.engine.on_demand, **pinning.pin(paths)}
                return {"t": "ok", "on_demand": self.engine.on_demand, **await pinning.unpin(paths)}
            except PinError as exc:
                raise ControlError(str(exc)) from None
        raise ControlError(f"unknown control command {str(t)[:40]!r}")


async def write_status(path: Path, engine: Engine, server: ChunkServer, link: TrackerLink) -> None:
    last = None
    written = 0.0
    failing = False
    while True:
        data = snapshot(engine, server, link, full=False)
        data.pop("updated")
        if data != last or time.monotonic() - written > REFRESH:
            last = data
            written = time.monotonic()
            tmp = path.with_suffix(".tmp")
            try:
                tmp.write_text(json.dumps({**data, "updated": time.time()}))
                os.replace(tmp, path)
            except OSError as exc:
                # a full disk must not take the mount down with it: the file is only a view
                if not failing:
                    log.warning("could not write the status file %s: %s; retrying", path, exc)
                failing = True
            else:
                if failing:
                    log.info("the status file %s is written again", path)
                failing = False
        await trio.sleep(INTERVAL)
