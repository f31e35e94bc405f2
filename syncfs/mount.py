"""Run one mount in the foreground: the peer's services under the FUSE loop."""

import logging
import os
from pathlib import Path

import pyfuse3
import trio

from .config import MountConfig
from .fs import Operations
from .peer import Peer, run_peer, serve

log = logging.getLogger(__name__)

# The kernel reads ahead at most 128 KiB at a time on a FUSE mount (the default of its
# backing device), one request per 128 KiB; sequential reads go twice as fast with 1 MiB.
READ_AHEAD_KIB = 1024


def run_mount(cfg: MountConfig, mountpoint: Path, ready_fd: int | None = None) -> int:
    status = run_peer(cfg, mountpoint, ready_fd, on_demand=cfg.on_demand,
                      body=lambda peer: _run(peer, mountpoint, ready_fd),
                      kernel_mtime=Operations.enable_writeback_cache)
    if status == 0:
        log.info("unmounted %s", mountpoint)
    return status


def _run(peer: Peer, mountpoint: Path, ready_fd: int | None) -> None:
    ops = Operations(peer.engine.files, peer.engine.xattrs, peer.notices)
    options = set(pyfuse3.default_options)
    # the kernel checks permissions (default_permissions); only the mounting user may
    # enter unless --allow-other
    options.update({"fsname=syncfs", "subtype=syncfs", "default_permissions"})
    if peer.cfg.allow_other:
        options.add("allow_other")
    mounted = False

    async def start_frontend(nursery: trio.Nursery) -> None:
        # only now, once the tracker has not refused us: a refused start leaves nothing mounted
        nonlocal mounted
        pyfuse3.init(ops, str(mountpoint), options)
        mounted = True
        log.info("mounted %s (peer %s, store %s)", mountpoint, peer.store.peer_id, peer.store.root)
        await nursery.start(ops.run_invalidator)
        nursery.start_soon(_raise_read_ahead, mountpoint)

    try:
        trio.run(lambda: serve(peer, ready_fd, start_frontend=start_frontend,
                               frontend_main=pyfuse3.main, on_signal=pyfuse3.terminate))
    finally:
        if mounted:
            pyfuse3.close(unmount=True)


async def _raise_read_ahead(mountpoint: Path) -> None:
    """Best effort: raise the mount's read-ahead to READ_AHEAD_KIB (sysfs; needs root).

    Only after the kernel's INIT exchange, which sets it to what libfuse offered: a stat of
    the mount point (answered by this process's loop, from a worker thread) waits for that.
    """
    try:
        st = await trio.to_thread.run_sync(os.stat, mountpoint, abandon_on_cancel=True)
    except OSError:
        return
    knob = Path("/sys/class/bdi") / f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}" / "read_ahead_kb"
    try:
        if int(knob.read_text()) < READ_AHEAD_KIB:
            knob.write_text(str(READ_AHEAD_KIB))
    except (OSError, ValueError) as exc:
        log.info("kernel read-ahead stays at its default (%s: %s)", knob, exc)
