"""Run one mount in the foreground: the peer's services under the FUSE loop."""

import logging
from pathlib import Path

import pyfuse3
import trio

from .config import MountConfig
from .fs import Operations
from .peer import Peer, run_peer, serve

log = logging.getLogger(__name__)


def run_mount(cfg: MountConfig, mountpoint: Path, ready_fd: int | None = None) -> int:
    status = run_peer(cfg, mountpoint, ready_fd, on_demand=cfg.on_demand,
                      body=lambda peer: _run(peer, mountpoint, ready_fd))
    if status == 0:
        log.info("unmounted %s", mountpoint)
    return status


def _run(peer: Peer, mountpoint: Path, ready_fd: int | None) -> None:
    ops = Operations(peer.engine)
    peer.engine.frontend = ops
    options = set(pyfuse3.default_options)
    # the kernel checks permissions (default_permissions); only the mounting user may
    # enter unless --allow-other
    options.update({"fsname=syncfs", "subtype=syncfs", "default_permissions"})
    if peer.cfg.allow_other:
        options.add("allow_other")
    pyfuse3.init(ops, str(mountpoint), options)
    log.info("mounted %s (peer %s, store %s)", mountpoint, peer.store.peer_id, peer.store.root)

    async def start_frontend(nursery: trio.Nursery) -> None:
        await nursery.start(ops.run_invalidator)

    try:
        trio.run(lambda: serve(peer, ready_fd, start_frontend=start_frontend,
                               frontend_main=pyfuse3.main, on_signal=pyfuse3.terminate))
    finally:
        pyfuse3.close(unmount=True)
