"""Run one mount in the foreground: store, engine, chunk server, tracker link and FUSE loop."""

import dataclasses
import logging
import os
import signal
from pathlib import Path

import pyfuse3
import trio

from . import config
from .cli import READY, ensure_local_tracker, setup_logging
from .config import ConfigError, MountConfig
from .control import ControlError, ControlServer, check_private_dir, register
from .engine import Engine
from .fs import Operations
from .identity import Identity, IdentityError
from .invite import BadToken, Invite, looks_like_token, parse
from .p2p import ChunkServer, PeerPool
from .status import ControlHandler, current_log_file, write_status
from .store import Store, StoreBusy
from .tracker_link import TrackerLink

log = logging.getLogger(__name__)

# The kernel reads ahead at most 128 KiB at a time on a FUSE mount (the default of its
# backing device), one request per 128 KiB; sequential reads go twice as fast with 1 MiB.
READ_AHEAD_KIB = 1024
FLUSH_TIMEOUT = 3.0  # well within what a stopping service manager waits


def run_mount(cfg: MountConfig, mountpoint: Path, ready_fd: int | None = None) -> int:
    setup_logging(cfg)
    try:
        return _run(cfg, mountpoint, ready_fd)
    except (ConfigError, StoreBusy, ControlError, IdentityError) as exc:
        _report(ready_fd, str(exc))
        log.error("%s", exc)
        return 1


def _report(ready_fd: int | None, message: str) -> None:
    if ready_fd is None:
        print(f"syncfs: {message}", file=__import__("sys").stderr)
        return
    try:
        os.write(ready_fd, message.encode() + b"\n")
        os.close(ready_fd)
    except OSError:
        pass


def _run(cfg: MountConfig, mountpoint: Path, ready_fd: int | None) -> int:
    invite = _join_token(cfg)
    listen_host, listen_port = config.split_host_port(cfg.listen or "", 0)
    cache_dir = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else config.default_cache_dir(mountpoint)

    store = Store(cache_dir)
    store.open()
    try:
        check_private_dir(store.root)  # the control socket lives there
    except ControlError:
        store.close()
        raise
    try:
        me = Identity.load_or_create(store.root / "identity", "syncfs peer")
        if store.peer_id != me.id:
            # the peer id is the certificate's fingerprint (a store from before identities
            # gets a new id; its version vectors keep the old one's counters)
            log.info("peer id %s (was %s)", me.id, store.peer_id)
            store.set_meta("peer_id", me.id)
        pool = PeerPool(me, store.peer_id, listen_host or None)
        engine = Engine(store, pool, on_demand=cfg.on_demand, fetch_timeout=cfg.fetch_timeout)
        engine.mountpoint = str(mountpoint)
        engine.downloader.max_rate = cfg.max_rate
        ops = Operations(engine)
        engine.frontend = ops
        server = ChunkServer(engine.downloader.serve_chunk, pool, listen_host, listen_port)
        engine.downloader.on_indexed = server.announce
        options = set(pyfuse3.default_options)
        # the kernel checks permissions (default_permissions); only the mounting user may
        # enter unless --allow-other
        options.update({"fsname=syncfs", "subtype=syncfs", "default_permissions"})
        if cfg.allow_other:
            options.add("allow_other")
        pyfuse3.init(ops, str(mountpoint), options)
        log.info("mounted %s (peer %s, store %s)", mountpoint, store.peer_id, cache_dir)
        unmount = True
        try:
            trio.run(_serve, engine, ops, server, pool, me, invite, listen_host, cfg.advertise, ready_fd)
        except BaseException:
            unmount = True
            raise
        finally:
            pyfuse3.close(unmount=unmount)
    finally:
        store.close()
    log.info("unmounted %s", mountpoint)
    return 0


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


def _join_token(cfg: MountConfig) -> Invite:
    """The share to join: --token / --tracker TOKEN, else the local tracker's; --secret overrides."""
    text = cfg.token or cfg.tracker
    if text:
        if not looks_like_token(text):
            raise ConfigError(
                f"--tracker takes a join token (syncfs://...), not {text!r}: "
                "run 'syncfs tracker --print-invite' on the tracker's machine"
            )
        try:
            invite = parse(text)
        except BadToken as exc:
            raise ConfigError(str(exc)) from None
    else:
        invite = ensure_local_tracker()
    if cfg.secret:
        invite = dataclasses.replace(invite, secret=cfg.secret)
    return invite


async def _serve(engine: Engine, ops: Operations, server: ChunkServer, pool: PeerPool, me: Identity,
                 invite: Invite, listen_host: str, advertise_at: str | None, ready_fd: int | None) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(ops.run_invalidator)
        await nursery.start(pool.run)
        port = await nursery.start(server.run)
        await nursery.start(engine.run)
        advertise = ("" if listen_host in ("", "0.0.0.0", "::") else listen_host, port)
        if advertise_at:
            advertise = config.split_host_port(advertise_at, port)
        link = TrackerLink(engine, me, invite, listen_host or None, advertise)
        await nursery.start(link.run)
        nursery.start_soon(write_status, engine.store.root / "status.json", engine, server, link)
        handler = ControlHandler(engine, server, link, current_log_file())
        await nursery.start(ControlServer(engine.store.root, handler).run)
        register(Path(engine.mountpoint), engine.store.root)
        nursery.start_soon(_stop_on_signal)
        nursery.start_soon(_raise_read_ahead, Path(engine.mountpoint))
        if ready_fd is not None:
            os.write(ready_fd, READY)
            os.close(ready_fd)
        await pyfuse3.main()
        with trio.move_on_after(FLUSH_TIMEOUT):
            await engine.downloader.flush()  # what a download fetched stays fetched
        nursery.cancel_scope.cancel()


async def _stop_on_signal() -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for signum in signals:
            log.info("got signal %d: unmounting", signum)
            pyfuse3.terminate()
            return
