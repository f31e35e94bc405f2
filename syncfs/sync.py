"""Run one watched directory in the foreground: the peer's services and the watcher."""

import logging
from pathlib import Path

import trio

from .config import ConfigError, MountConfig
from .peer import Peer, run_peer, serve
from .watched import WatchedDir

log = logging.getLogger(__name__)


def run_sync(cfg: MountConfig, directory: Path, ready_fd: int | None = None) -> int:
    status = run_peer(cfg, directory, ready_fd, on_demand=False, body=lambda peer: _run(peer, directory, ready_fd))
    if status == 0:
        log.info("stopped watching %s", directory)
    return status


def _run(peer: Peer, directory: Path, ready_fd: int | None) -> None:
    if peer.cfg.on_demand:
        raise ConfigError("--on-demand needs a mount: a watched directory holds every file")
    if peer.store.root.resolve().is_relative_to(directory.resolve()):
        raise ConfigError(f"the store {peer.store.root} must not lie inside {directory}")
    front = WatchedDir(peer.engine, directory, peer.notices)
    stop = trio.CancelScope()

    async def start_frontend(nursery: trio.Nursery) -> None:
        peer.engine.filler.hold_fills(True)  # until the directory has been looked at

    async def watch() -> None:
        with stop:
            await front.run()

    log.info("watching %s (peer %s, store %s)", directory, peer.store.peer_id, peer.store.root)
    trio.run(lambda: serve(peer, ready_fd, start_frontend=start_frontend, frontend_main=watch, on_signal=stop.cancel))
