"""Applying the tracker's rows: remote versions become local nodes.

Rows arrive in one ``Table`` at a time from the tracker link's task and are applied in one
transaction; each row is decided by the pure rules of ``reconcile``. A row that cannot be
applied now (a local writer has the file, a parent is in the way) is parked durably and
retried when the writer is done (``Inodes.settle``, drained by this part's own task), when
the next table arrives, and at the next start. A remote version is always a new inode, so the
kernel never mixes pages of two versions.
"""

import errno
import logging

import trio

from .claims import Claims
from .commits import LocalCommits
from .downloads import Downloader
from .errors import FsError
from .ignore import IGNORE_FILE
from .ignores import ShareIgnores
from .inodes import Inodes, leaf
from .notices import Notifier
from .outbox import Outbox
from .partial import Partial
from .pinning import Pinning
from .protocol.entries import Entry, Kind
from .protocol.messages import Table, TableRow
from .protocol.versions import merge
from .reconcile import Action, FileChange, decide, delete_keeps_dir, file_change
from .store import ROOT_INO, Node, Store

log = logging.getLogger(__name__)


class RemoteApply:
    def __init__(self, store: Store, inodes: Inodes, commits: LocalCommits, downloader: Downloader,
                 outbox: Outbox, claims: Claims, pinning: Pinning, ignores: ShareIgnores,
                 notifier: Notifier) -> None:
        self._store = store
        self._inodes = inodes
        self._commits = commits
        self._downloader = downloader
        self._outbox = outbox
        self._claims = claims
        self._pinning = pinning
        self._ignores = ignores
        self._notifier = notifier
        self.caught_up = trio.Event()  # set once the tracker has sent everything up to now
        self._ignored: dict[str, TableRow] = {}  # the last row of each path ignored here
        ignores.on_reload(self._rules_changed)

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Apply the rows that waited for a local writer or commit, as each one settles."""
        task_status.started()
        while True:
            wake = self._inodes.settled_wake.next()
            paths = self._inodes.take_settled()
            if not paths:
                await wake.wait()
                continue
            for path in paths:
                node = self._store.lookup_path(path)
                if node is None or not self._inodes.busy(node.ino):
                    self._apply_deferred(path)
            self.retry_parked()
            self._downloader.wake.set()

    def apply_table(self, table: Table) -> None:
        with self._store.transaction():
            for row in table.rows:
                self._apply_or_park(row)
            self._store.set_meta("last_seq", table.seq)
        if table.caught_up:
            self.caught_up.set()
        self._pinning.after_commit()
        self.retry_parked()
        self._downloader.wake.set()

    def _apply_or_park(self, row: TableRow) -> None:
        """Apply one row; one that cannot be applied now waits, durably, to be retried."""
        try:
            with self._store.savepoint():
                self._apply_row(row)
        except (FsError, OSError) as exc:
            log.warning("cannot apply %s yet: %s", row.entry.path, exc)
            self._store.deferred_put(row)

    def retry_parked(self) -> None:
        """One pass over the rows waiting to be applied (parked, or deferred for a writer)."""
        for row in self._store.deferred_rows():
            path = row.entry.path
            node = self._store.lookup_path(path)
            if node is not None and self._inodes.busy(node.ino):
                continue
            with self._store.transaction():
                if self._store.deferred_pop(path) is not None:
                    self._apply_or_park(row)
        self._pinning.after_commit()

    def _rules_changed(self) -> None:
        """Rows ignored under the old rules and not under the new wait to be applied."""
        for path, row in list(self._ignored.items()):
            if not self._ignores.ignored(path, row.entry.kind):
                del self._ignored[path]
                self._store.deferred_put(row)
                self._inodes.settle(path)

    def _apply_deferred(self, path: str) -> None:
        """Apply a remote change that waited for a local writer (whose change is committed)."""
        with self._store.transaction():
            row = self._store.deferred_pop(path)
            if row is not None:
                self._apply_or_park(row)

    def _apply_row(self, row: TableRow) -> None:
        e = row.entry
        self._outbox.ack(e)
        self._pinning.on_row(row)  # a granted withdrawal frees the bytes here
        self._claims.settle_have(row)
        if self._ignores.ignored(e.path, e.kind):
            self._ignored[e.path] = row  # applied if the rules change (they may be on their way)
            return  # ignored here: the other peers' version stays theirs
        self._ignored.pop(e.path, None)
        node = self._store.lookup_path(e.path)
        version = node.version if node is not None else (self._store.tombstone(e.path) or {})
        if version == e.version:
            self._downloader.update_holders(row, node.data_id if node is not None else None)
            return
        busy = node is not None and self._inodes.busy(node.ino)
        action = decide(e, version, pending=self._outbox.has(e.path), busy=busy)
        if action in (Action.IGNORE, Action.WAIT):
            return
        if action is Action.DEFER:
            self._store.deferred_put(row)
            return
        if e.deleted:
            self._apply_delete(e, node)
        elif e.kind is Kind.DIR:
            self._apply_dir(e, node)
        elif e.kind is Kind.SYMLINK:
            self._apply_symlink(e, node)
        else:
            self._apply_file(row, node)

    # -- making room and telling the front end ---------------------------------------------

    def _ensure_parents(self, path: str) -> Node:
        """The parent directory node of ``path``, creating missing directories on the way."""
        parent = self._store.get(ROOT_INO)
        for part in path.split("/")[:-1]:
            child = self._store.lookup(parent.ino, part)
            if child is None:
                child = self._store.insert_node(parent, part, Kind.DIR, 0o755)
                self._notify_name(child)
            elif child.kind is not Kind.DIR:
                raise FsError(errno.ENOTDIR, f"{child.path} is not a directory here")
            parent = child
        return parent

    def _clear_for(self, node: Node | None) -> None:
        """Remove ``node`` to make way for a remote entry of another shape at its path."""
        if node is None:
            return
        if node.kind is Kind.DIR and self._store.has_children(node.ino):
            raise FsError(errno.ENOTEMPTY, f"{node.path} is a non-empty directory here")
        self.remove_for_remote(node)

    def remove_for_remote(self, node: Node) -> None:
        """Remove ``node`` because of a remote change, and tell the front end."""
        self._commits.remove(node)
        self._inodes.gone_remotely.add(node.ino)
        self._notify_name(node)

    def _notify_name(self, node: Node) -> None:
        self._notifier.name_changed(node.parent, node.name, node.path)

    # -- one row of each kind ------------------------------------------------------------------

    def _apply_delete(self, e: Entry, node: Node | None) -> None:
        if node is not None:
            if delete_keeps_dir(node.kind, self._store.has_children(node.ino)):
                self._commits.commit(node, base=merge(e.version, node.version))
                return
            self.remove_for_remote(node)
        self._store.set_tombstone(e.path, e.version)
        self._pinning.forget(e.path)

    def _apply_dir(self, e: Entry, node: Node | None) -> None:
        if node is not None and node.kind is Kind.DIR:
            self._store.update_node(node.ino, mode=e.mode, version=e.version, xattrs=e.xattrs)
            self._notifier.node_changed(node.ino, node.path)
        else:
            self._clear_for(node)
            parent = self._ensure_parents(e.path)
            node = self._store.insert_node(parent, leaf(e.path), Kind.DIR, e.mode, mtime_ns=e.mtime_ns,
                                           version=e.version, xattrs=e.xattrs)
            self._notify_name(node)
        self._store.clear_tombstone(e.path)

    def _apply_symlink(self, e: Entry, node: Node | None) -> None:
        self._clear_for(node)
        parent = self._ensure_parents(e.path)
        node = self._store.insert_node(
            parent, leaf(e.path), Kind.SYMLINK, 0o777, mtime_ns=e.mtime_ns, target=e.target, version=e.version
        )
        self._notify_name(node)
        self._store.clear_tombstone(e.path)

    def _apply_file(self, row: TableRow, node: Node | None) -> None:
        e = row.entry
        change = file_change(node.entry() if node is not None else None, e)
        if node is not None and change is not FileChange.CONTENT:
            # same bytes (chmod, touch, setfattr, or a merge of versions): attributes only
            partial = self._downloader.partials.get(node.data_id) if node.data_id is not None else None
            if partial is not None:
                partial.row = row
            if change is FileChange.RENUMBER:
                self._renumber(node, e)
            else:
                self._store.update_node(node.ino, mode=e.mode, version=e.version, xattrs=e.xattrs)
                self._notifier.node_changed(node.ino, node.path)
            self._store.clear_tombstone(e.path)
            return
        # A new version is a new inode, as after a rename over the file: programs that hold
        # the old one open keep reading the old bytes, and the kernel's page cache of the
        # old inode never mixes into the new content.
        self._clear_for(node)
        parent = self._ensure_parents(e.path)
        data_id = self._store.new_data_file(e.size)
        node = self._store.insert_node(
            parent, leaf(e.path), Kind.FILE, e.mode, mtime_ns=e.mtime_ns,
            version=e.version, data_id=data_id, size=e.size, chunks=e.chunks, xattrs=e.xattrs,
        )
        self._notify_name(node)
        self._store.clear_tombstone(e.path)
        if e.chunks:
            partial = self._downloader.add(data_id, row)
            partial.must_fill = e.path == IGNORE_FILE  # rules apply here even --on-demand
        else:
            self._claims.have(e.path, e.version)
            self._ignores.changed(e.path)

    def _renumber(self, node: Node, e: Entry) -> None:
        """Give the file ``node`` a new inode number with ``e``'s attributes, keeping its data
        file: the kernel forgets what it cached of the old inode (programs holding that
        open keep reading the same bytes through it)."""
        assert node.kind is Kind.FILE and node.data_id is not None
        self._inodes.orphan(node)
        self._inodes.gone_remotely.add(node.ino)  # writes through a stale cached name would be lost
        self._store.delete_node(node.ino)
        parent = self._store.get(node.parent)
        self._store.insert_node(
            parent, node.name, Kind.FILE, e.mode, mtime_ns=e.mtime_ns, version=e.version,
            data_id=node.data_id, size=node.size, chunks=node.chunks, xattrs=e.xattrs,
        )
        self._notify_name(node)

    def drop_lost_version(self, p: Partial) -> None:
        """Delete a version none of whose holders has its bytes any more.

        That happens when the tracker keeps, at a path or as a conflict copy, a version its
        holders had already overwritten by later changes of their own (a holder is a peer
        that once had the version complete): the bytes are gone from every peer, and the
        later changes carry on the same causal lines.
        """
        with self._store.transaction():
            node = self._store.node_with_data(p.data_id)
            if node is None:
                self._downloader.drop(p.data_id)
                return
            log.warning("%s: every holder has overwritten this version since; removing it", node.path)
            self.remove_for_remote(node)
            self._commits.commit_delete(node.path, node.kind, node.version)
