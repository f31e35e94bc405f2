"""What every peer runs, whatever its front end (a FUSE mount or a watched directory):
the store, its identity, the engine, the chunk server, the tracker link and the control
socket."""

import contextlib
import ctypes
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import trio

from . import config
from .config import ConfigError, MountConfig
from .control import ControlError, ControlServer, check_private_dir, register, unregister
from .control_handler import ControlHandler
from .engine import Engine
from .identity import Identity, IdentityError
from .invite import BadToken, Invite, looks_like_token, parse
from .launch import READY, current_log_file, setup_logging
from .local_tracker import ensure_local_tracker, local_port
from .notices import Notice, notice_channel
from .p2p import ChunkServer, PeerPool
from .status import StatusSources
from .store import Store, StoreBusy
from .tracker_link import Joined, TrackerLink, TrackerRefused

log = logging.getLogger(__name__)

ANNOUNCE_QUEUE = 256  # batches of digests; past that the swarm learns by asking
FLUSH_TIMEOUT = 3.0  # seconds at exit to record fetched chunks: well within what a service manager waits


@dataclasses.dataclass
class Peer:
    """The parts of one running peer, built by ``open_peer`` and run by ``serve``."""

    cfg: MountConfig
    share_dir: Path
    invite: Invite
    store: Store
    me: Identity
    pool: PeerPool
    engine: Engine
    server: ChunkServer
    listen_host: str
    notices: "trio.MemoryReceiveChannel[Notice]"  # for the front end


@contextlib.contextmanager
def open_peer(cfg: MountConfig, share_dir: Path, *, on_demand: bool, kernel_mtime: bool = False) -> Iterator[Peer]:
    """Open the store of the share at ``share_dir`` and build the peer around it; the
    store is closed on exit. Raises ConfigError, StoreBusy, ControlError, IdentityError
    (and ``serve`` TrackerRefused)."""
    invite = join_token(cfg)
    listen_host, listen_port = config.split_host_port(cfg.listen or "", 0)
    cache_dir = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else config.default_cache_dir(share_dir)
    store = Store(cache_dir)
    store.open()
    try:
        check_private_dir(store.root)  # the control socket lives there
        me = Identity.load_or_create(store.root / "identity", "syncfs peer")
        if store.peer_id != me.id:
            # the peer id is the certificate's fingerprint (a store from before identities
            # gets a new id; its version vectors keep the old one's counters)
            log.info("peer id %s (was %s)", me.id, store.peer_id)
            store.set_meta("peer_id", me.id)
        pool = PeerPool(me, store.peer_id, listen_host or None)
        notices_send, notices = notice_channel()
        # pieces of partial versions, announced to the swarm as they become servable
        indexed_send, indexed = trio.open_memory_channel[list[bytes]](ANNOUNCE_QUEUE)
        engine = Engine(store, pool, on_demand=on_demand, fetch_timeout=cfg.fetch_timeout,
                        keep_replaced=cfg.keep_replaced,
                        max_rate=cfg.max_rate, cache_size=cfg.cache_size, kernel_mtime=kernel_mtime,
                        mountpoint=str(share_dir), notices=notices_send, indexed=indexed_send)
        server = ChunkServer(engine.downloader.serve_chunk, pool, listen_host, listen_port, indexed)
        yield Peer(cfg, share_dir, invite, store, me, pool, engine, server, listen_host, notices)
    finally:
        store.close()


def join_token(cfg: MountConfig) -> Invite:
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
        invite = ensure_local_tracker(local_port(cfg.local_tracker_port))
    if cfg.secret:
        invite = dataclasses.replace(invite, secret=cfg.secret)
    return invite


async def serve(peer: Peer, ready_fd: int | None, *,
                start_frontend: Callable[[trio.Nursery], Awaitable[None]],
                frontend_main: Callable[[], Awaitable[None]],
                on_signal: Callable[[], None]) -> None:
    """Run the peer's services until ``frontend_main`` returns.

    The tracker is tried first: a tracker that refuses this peer ends the start with
    TrackerRefused before the front end starts (nothing is mounted); one out of reach is
    only a warning (the peer works offline). ``start_frontend`` then starts what the front
    end needs before the engine runs (the engine reports to it from its first step);
    ``on_signal`` asks the front end to end (on SIGTERM/SIGINT/SIGHUP, or ``syncfs stop``).
    """
    engine = peer.engine
    refusal: TrackerRefused | None = None
    async with trio.open_nursery() as nursery:
        await nursery.start(peer.pool.run)
        port = await nursery.start(peer.server.run)
        listen_host = peer.listen_host
        advertise = ("" if listen_host in ("", "0.0.0.0", "::") else listen_host, port)
        if peer.cfg.advertise:
            advertise = config.split_host_port(peer.cfg.advertise, port)
        link = TrackerLink(engine, peer.me, peer.invite, listen_host or None, advertise)
        try:
            joined = await link.first_contact()
        except TrackerRefused as exc:
            refusal = exc  # raised outside the nursery: not wrapped in an exception group
            nursery.cancel_scope.cancel()
        else:
            warnings = [] if joined else [f"warning: the tracker at {link.address} is out of reach "
                                          f"({link.last_error}); working offline, changes are sent once it answers"]
            for line in warnings:
                log.warning("%s", line)
            await _run_services(peer, link, joined, nursery, ready_fd, warnings,
                                start_frontend=start_frontend, frontend_main=frontend_main, on_signal=on_signal)
    if refusal is not None:
        raise refusal


async def _run_services(peer: Peer, link: TrackerLink, joined: Joined | None, nursery: trio.Nursery,
                        ready_fd: int | None, warnings: list[str], *,
                        start_frontend: Callable[[trio.Nursery], Awaitable[None]],
                        frontend_main: Callable[[], Awaitable[None]],
                        on_signal: Callable[[], None]) -> None:
    engine = peer.engine
    await start_frontend(nursery)
    await nursery.start(engine.run)
    await nursery.start(link.run, joined)
    status = StatusSources(engine, engine.filler, engine.errors, engine.ignores, engine.store, peer.pool,
                           engine.downloader, engine.pinning, peer.server, link, current_log_file())
    handler = ControlHandler(engine.filler, engine.pinning, status, on_stop=on_signal)
    await nursery.start(ControlServer(engine.store.root, handler).run)
    entry = register(peer.share_dir, engine.store.root, current_log_file())
    try:
        nursery.start_soon(_stop_on_signal, on_signal)
        tell_ready(ready_fd, warnings)
        await frontend_main()
        with trio.move_on_after(FLUSH_TIMEOUT):
            await engine.downloader.flush()  # what a download fetched stays fetched
    finally:
        unregister(entry)
    nursery.cancel_scope.cancel()


def tell_ready(ready_fd: int | None, warnings: list[str]) -> None:
    """Tell the waiting parent (or, in the foreground, the terminal) that we run, with
    what the user should know (one line each, after the READY line)."""
    if ready_fd is None:
        for line in warnings:
            print(f"syncfs: {line}", file=sys.stderr)
        return
    os.write(ready_fd, READY + "".join(f"{line}\n" for line in warnings).encode())
    os.close(ready_fd)


async def _stop_on_signal(on_signal: Callable[[], None]) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for signum in signals:
            log.info("got signal %d: stopping", signum)
            on_signal()
            return


# glibc hands a freed block of 128 KiB or more back to the kernel at once (and trims the
# heap above 128 KiB), so every chunk-sized buffer of a transfer (1 MiB socket reads,
# decrypted records, decoded chunks) is fresh memory that page-faults in again: ~540
# faults, ~2 ms, for one on-demand read of a freshly started peer on the benchmark VM.
# Chunk-sized blocks stay in the process and are reused instead.
MALLOC_MMAP_THRESHOLD = 8 << 20
MALLOC_TRIM_THRESHOLD = 32 << 20


def _keep_freed_buffers() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.mallopt(-3, MALLOC_MMAP_THRESHOLD)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, MALLOC_TRIM_THRESHOLD)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        return  # not glibc: its allocator decides
    # touched once now, kept when freed: the first transfer reuses these pages
    warm = [bytearray(2 << 20) for _ in range(4)]
    del warm


def run_peer(cfg: MountConfig, share_dir: Path, ready_fd: int | None, *, on_demand: bool,
             body: Callable[[Peer], None], kernel_mtime: bool = False) -> int:
    """Open the peer of ``share_dir`` and run ``body`` on it (a front end's whole life);
    the exit status, after telling the waiting parent why it could not start."""
    _keep_freed_buffers()
    setup_logging(cfg)
    try:
        with open_peer(cfg, share_dir, on_demand=on_demand, kernel_mtime=kernel_mtime) as peer:
            body(peer)
    except (ConfigError, StoreBusy, ControlError, IdentityError, TrackerRefused) as exc:
        report(ready_fd, str(exc))
        log.error("%s", exc)
        return 1
    return 0


def report(ready_fd: int | None, message: str) -> None:
    """Tell the waiting parent (or, in the foreground, the terminal) why we did not start."""
    if ready_fd is None:
        print(f"syncfs: {message}", file=sys.stderr)
        return
    try:
        os.write(ready_fd, message.encode() + b"\n")
        os.close(ready_fd)
    except OSError:
        pass
