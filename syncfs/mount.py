"""Run one mount in the foreground: the peer's services under the FUSE loop."""

import logging
from pathlib import Path

import pyfuse3
import trio

from .cli import setup_logging
from .config import ConfigError, MountConfig
from .control import ControlError
from .fs import Operations
from .identity import IdentityError
from .peer import Peer, open_peer, report, serve
from .store import StoreBusy

log = logging.getLogger(__name__)


def run_mount(cfg: MountConfig, mountpoint: Path, ready_fd: int | None = None) -> int:
    setup_logging(cfg)
    try:
        with open_peer(cfg, mountpoint, on_demand=cfg.on_demand) as peer:
            _run(peer, mountpoint, ready_fd)
    except (ConfigError, StoreBusy, ControlError, IdentityError) as exc:
        report(ready_fd, str(exc))
        log.error("%s", exc)
        return 1
    log.info("unmounted %s", mountpoint)
    return 0


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
