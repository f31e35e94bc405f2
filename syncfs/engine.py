"""The peer core: the parts that keep one store in sync, built and started in one place.

It does not know it sits under FUSE. A front end calls ``files`` (and ``xattrs``) and gets
``FsError`` for refusals; it learns of remote changes from the notices channel given here.
The tracker link calls ``apply_table``/``set_peers`` and sends what ``outbox`` and
``claims`` hold. Each part is a module with one job (docs/architecture.md has the map):

    inodes    the kernel-facing table: handles, files being written, orphans, busy inodes
    files     the filesystem operations (create, open, read, write, rename, …)
    xattrs    extended attributes, syncfs's own read-only ones among them
    commits   local changes become versions in the store and the outbox
    remote    the tracker's rows become local nodes
    filler    background filling of stale files, and what a completed download announces
    repairer  damaged local chunks fetched again
    pinning   pins, the cache limit, and freeing copies without losing the last one
"""

import logging
import os

import trio

from . import chunking
from .claims import Claims
from .commits import LocalCommits
from .downloads import Downloader
from .errorlog import ErrorLog
from .files import Files
from .filling import FillScheduler
from .ignores import ShareIgnores
from .inodes import KEEP_REPLACED, Inodes
from .local_chunks import Damage, LocalChunks
from .notices import Notice, Notifier
from .outbox import Outbox
from .overwrites import Overwrites
from .p2p import PeerPool
from .partial import Partial
from .pinning import Pinning
from .protocol.messages import ChunkParams, PeerInfo, Table
from .remote import RemoteApply
from .repair import Repairer
from .store import Store
from .xattrs import Xattrs

log = logging.getLogger(__name__)

DEFAULT_FETCH_TIMEOUT = 30.0
REPORTS = 64  # completions and damage reports the downloader may get ahead of their handlers


class Engine:
    def __init__(self, store: Store, pool: PeerPool, params: ChunkParams = chunking.DEFAULT_PARAMS, *,
                 on_demand: bool = False, fetch_timeout: float = DEFAULT_FETCH_TIMEOUT,
                 keep_replaced: float = KEEP_REPLACED,
                 max_rate: float = 0.0, cache_size: int = 0, kernel_mtime: bool = False, mountpoint: str = "",
                 notices: "trio.MemorySendChannel[Notice] | None" = None,
                 indexed: "trio.MemorySendChannel[list[bytes]] | None" = None) -> None:
        self.store = store
        self.pool = pool
        self.peer_id = store.peer_id
        self.on_demand = on_demand
        self.mountpoint = mountpoint
        completed_send, completed = trio.open_memory_channel[Partial](REPORTS)
        damaged_send, damaged = trio.open_memory_channel[Damage](REPORTS)
        self.errors = ErrorLog()
        self.notifier = Notifier(notices)
        self.downloader = Downloader(store, pool, completed=completed_send, local=LocalChunks(store, damaged_send),
                                     indexed=indexed, max_rate=max_rate)
        self.outbox = Outbox(store)
        self.claims = Claims(store, self.peer_id)
        self.ignores = ShareIgnores(store, self.downloader, self.errors)
        self.inodes = Inodes(store, self.downloader, keep_replaced)
        self.pinning = Pinning(store, self.inodes, self.downloader, self.outbox, self.claims, self.ignores,
                               self.notifier, self.errors, on_demand=on_demand, cache_size=cache_size)
        overwrites = Overwrites(store, self.inodes)
        self.commits = LocalCommits(store, self.inodes, self.downloader, self.outbox, self.claims,
                                    self.ignores, self.errors, self.pinning, overwrites, params)
        self.files = Files(store, self.inodes, self.commits, self.downloader, self.pinning, self.ignores,
                           self.errors, overwrites, fetch_timeout=fetch_timeout, kernel_mtime=kernel_mtime)
        self.xattrs = Xattrs(store, self.inodes, self.commits, self.downloader, self.pinning, self.ignores,
                             self.notifier)
        self.remote = RemoteApply(store, self.inodes, self.commits, self.downloader, self.outbox,
                                  self.claims, self.pinning, self.ignores, self.notifier)
        self.filler = FillScheduler(store, self.inodes, self.downloader, self.remote, self.claims, self.pinning,
                                    self.ignores, self.notifier, self.errors, completed, on_demand=on_demand)
        self.repairer = Repairer(store, self.inodes, self.downloader, pool, self.errors, self.notifier, damaged)

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        self._clean_data_dir()
        self.downloader.load()
        self.ignores.reload()
        self.pinning.load()
        self.commits.load()
        # after those are queued: a row that waited for a file being written must wait on
        # for its commit, not replace the bytes the crash left uncommitted
        self.remote.retry_parked()  # rows that waited when the last run ended
        async with trio.open_nursery() as nursery:
            for part in (self.downloader, self.commits, self.remote, self.filler, self.repairer, self.pinning):
                await nursery.start(part.run)
            task_status.started()

    def _clean_data_dir(self) -> None:
        """Remove data files nothing refers to: leftovers of work a crash cut short."""
        referenced = self.store.referenced_data_ids()
        with self.store.transaction():
            for saved in self.store.partials():
                if saved.data_id not in referenced:
                    self.store.partial_remove(saved.data_id)
            for name in os.listdir(self.store.data_dir):
                if name.isdigit() and int(name) not in referenced:
                    self.store.remove_data_file(int(name))

    # -- what the tracker link says ----------------------------------------------------------

    def set_chunking(self, params: ChunkParams) -> None:
        self.commits.use_chunking(params)

    def set_peers(self, peers: tuple[PeerInfo, ...]) -> None:
        self.pool.set_peers(peers)
        self.downloader.retry_all()
        self.pinning.peers_changed()

    def apply_table(self, table: Table) -> None:
        self.remote.apply_table(table)
