"""Mending damaged local copies: a chunk of a complete local file that fails its check is
fetched again from the other peers, and the rest of that file is checked too.

Its task takes the downloader's damage reports; a check of the rest of a file runs in a task
of its own, a chunk per worker-thread call, so that an unmount never waits for a large file.
"""

import logging

import trio

from . import chunking, datafiles
from .downloads import Downloader
from .errorlog import ErrorLog
from .inodes import Inodes
from .local_chunks import Damage
from .notices import Notifier
from .p2p import PeerPool
from .protocol.entries import Kind
from .protocol.messages import TableRow
from .store import Store

log = logging.getLogger(__name__)


class Repairer:
    def __init__(self, store: Store, inodes: Inodes, downloader: Downloader, pool: PeerPool,
                 errors: ErrorLog, notifier: Notifier, damaged: "trio.MemoryReceiveChannel[Damage]") -> None:
        self._store = store
        self._inodes = inodes
        self._downloader = downloader
        self._pool = pool
        self._errors = errors
        self._notifier = notifier
        self._damaged = damaged

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started()
            async for damage in self._damaged:
                if self._chunk_damaged(damage):
                    # damage seldom stays in one chunk, and the others may never be asked for here
                    nursery.start_soon(self._check_the_rest, damage.data_id, damage.offset)

    def _chunk_damaged(self, d: Damage) -> bool:
        """A chunk of a local data file failed its check: stop offering it, and if it belongs
        to a complete file, fetch that chunk again from the other peers. True when this is
        the first damage found in that file (the rest of it must be checked).

        The check read the index before it read the file: if a commit re-indexed the file
        meanwhile (a new version, other chunks at that offset), the entry is gone and the
        mismatch says nothing about the new content, which must stay offered."""
        with self._store.transaction():
            if not self._store.unindex_at(d.data_id, d.offset, d.digest):
                return False
            node = self._store.node_with_data(d.data_id)
            if node is None or node.kind is not Kind.FILE or self._inodes.busy(node.ino):
                return False
            # a second damaged chunk of one file, found while the first is fetched again,
            # joins that repair; seq 0 marks a repair
            repair = TableRow(node.entry(), 0, tuple(self._pool.peers))
            first = d.data_id not in self._downloader.partials
            if not self._downloader.damaged(d.data_id, repair, d.offset, d.length, d.digest):
                return False
            self._errors.note(f"local copy of {node.path} is damaged at byte {d.offset} ({d.why}); fetching it again")
        self._notifier.node_changed(node.ino, node.path)  # the kernel may hold pages of the bad bytes
        return first

    async def _check_the_rest(self, data_id: int, found_at: int) -> None:
        """Check every other chunk of a data file in which one failed its check; those that
        fail too are fetched again with it."""
        node = self._store.node_with_data(data_id)
        if node is None:
            return
        path = self._store.data_path(data_id)
        try:
            for offset, chunk in zip(chunking.offsets(node.chunks), node.chunks, strict=True):
                if offset != found_at and not await trio.to_thread.run_sync(datafiles.chunk_intact, path, offset, chunk):
                    self._chunk_damaged(Damage(data_id, offset, chunk.length, chunk.digest, "its digest does not match"))
        except FileNotFoundError:
            pass  # the file was replaced or deleted meanwhile: nothing left to mend
        except Exception as exc:  # noqa: BLE001 - a failing disk must not take the mount down
            log.warning("could not check the rest of %s: %s", path, exc)
