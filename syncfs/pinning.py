"""Pinning and the cache-size limit: which complete files an ``--on-demand`` mount keeps,
and how it frees the bytes of the others without ever freeing the last copy of a version.

Freeing is the dangerous half. Other peers declare a version lost (and delete it
everywhere) once every listed online holder answers MISSING for it, so a peer must stop
being listed *before* it stops having the bytes. The order is therefore:

1. the peer records the withdrawal durably (``drops`` table) and sends ``DROP {path,
   version}`` to the tracker;
2. the tracker grants it only while another holder of that version is online, and
   broadcasts the row without this peer among the holders, then answers ``DROP_ANSWER``
   on the same ordered queue (granted or not, and why);
3. only on a granted answer, and after a row of that version that does not list it, does
   the peer free the bytes: a new empty sparse data file, chunks unindexed, the file a
   stale Partial.

The answer, not the row, is the trigger: a reconnecting peer's delta may show a row
without it while a HAVE it re-sent on the new link is still to be processed; an answer to
a DROP sent after that HAVE (one link task sends HAVEs first) reflects it.

The tracker decides withdrawals one at a time, so two peers unpinning the last two copies
at once cannot both win.
"""

import dataclasses
import errno
import logging
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

import trio

from .claims import Claims
from .downloads import Downloader
from .errorlog import ErrorLog
from .errors import FsError
from .ignores import ShareIgnores
from .inodes import Inodes
from .notices import Notifier
from .outbox import Outbox
from .protocol.entries import Kind
from .protocol.messages import DropAnswer, TableRow
from .protocol.paths import BadPath, validate_path
from .protocol.versions import Order, compare
from .store import Node, Store

log = logging.getLogger(__name__)

DROP_WAIT = 5.0  # seconds an unpin request waits for the tracker's answers (control timeout is 10)
SAVE_USES_EVERY = 30.0  # last-use times are persisted in batches, and at shutdown
EVICT_SETTLE = 0.2  # let a burst of completions settle before counting the cache again
MAX_PATHS = 10_000
NOT_LOCAL = "not complete here (already online-only)"
EMPTY = "empty: nothing to free"


class PinError(Exception):
    """A pin or unpin request names something it cannot act on; nothing was changed."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why

    def __str__(self) -> str:
        return self.why


@dataclasses.dataclass
class Outcome:
    """What became of one file of an unpin request."""

    path: str
    result: str  # freed | kept | refused | waiting
    reason: str = ""


def check_paths(paths: object) -> list[str]:
    """The share-relative paths of a control request ("" is the share's root), or PinError."""
    if not isinstance(paths, list) or not paths or len(paths) > MAX_PATHS:
        raise PinError(f"'paths' must be a list of 1 to {MAX_PATHS} paths")
    out = []
    for p in paths:
        if not isinstance(p, str):
            raise PinError("every path must be a string")
        if p:
            try:
                validate_path(p)
            except BadPath as exc:
                raise PinError(f"bad path {p[:200]!r}: {exc}") from None
        out.append(p)
    return out


class LastUses:
    """When each file was last opened here: the least recently used go first when the cache
    is over its limit. Kept in memory, saved in batches and at shutdown."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.last: dict[str, float] = {}
        self._unsaved: dict[str, float] = {}

    def load(self) -> None:
        self.last = self._store.last_uses()

    def used(self, path: str, when: float | None = None) -> None:
        t = time.time() if when is None else when
        self.last[path] = t
        self._unsaved[path] = t

    def moved(self, old: str, new: str) -> None:
        if old in self.last:
            self.used(new, self.last.pop(old))

    def save(self) -> None:
        if not self._unsaved:
            return
        uses, self._unsaved = self._unsaved, {}
        try:
            with self._store.transaction():
                self._store.save_last_uses(uses)
        except Exception as exc:  # noqa: BLE001 - losing use times only makes eviction less exact
            log.warning("could not save last-use times: %s", exc)

    async def save_periodically(self) -> None:
        while True:
            await trio.sleep(SAVE_USES_EVERY)
            self.save()


class Pinning:
    """Pins, last-use times and withdrawals of this peer's copies."""

    def __init__(self, store: Store, inodes: Inodes, downloader: Downloader, outbox: Outbox,
                 claims: Claims, ignores: ShareIgnores, notifier: Notifier, errors: ErrorLog, *,
                 on_demand: bool, cache_size: int = 0) -> None:
        self.store = store
        self._inodes = inodes
        self._downloader = downloader
        self._outbox = outbox
        self._claims = claims
        self._ignores = ignores
        self._notifier = notifier
        self._errors = errors
        self.on_demand = on_demand
        self.peer_id = store.peer_id
        self.cache_size = cache_size  # bytes of file data to keep at most; 0: no limit
        self.pins: set[str] = set()
        self.uses = LastUses(store)
        self._waiters: dict[str, trio.Event] = {}
        self._results: dict[str, Outcome] = {}
        self._by_user: set[str] = set()  # withdrawals a person asked for: refusals are errors
        self._refused: dict[str, dict[str, int]] = {}  # eviction skips these until peers change
        self._freed: list[int] = []  # old data files to delete once the transaction is committed
        self._seen_without_us: dict[str, TableRow] = {}  # last row of a pending drop, not listing us
        self.wake = trio.Event()

    def load(self) -> None:
        self.pins = self.store.pins()
        self.uses.load()

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.uses.save_periodically)
                if self.cache_size:
                    self.wake.set()  # the limit may be lower than what the last run left
                    nursery.start_soon(self._evictor)
                task_status.started()
        finally:
            self.uses.save()  # no await: runs even while the mount is being cancelled

    # -- pins ----------------------------------------------------------------------------

    def pinned_by(self, path: str) -> str | None:
        """The pinned path that keeps ``path`` (itself or a directory above it), if any."""
        p = path
        while True:
            if p in self.pins:
                return p
            if not p:
                return None
            p = p.rpartition("/")[0]

    def _nodes(self, paths: Iterable[str]) -> list[Node]:
        nodes = []
        for p in paths:
            node = self.store.lookup_path(p)
            if node is None:
                raise PinError(f"{p or '/'}: no such file or directory in the share")
            if node.kind is Kind.SYMLINK:
                raise PinError(f"{p}: a symbolic link has no content to pin")
            nodes.append(node)
        return nodes

    def _files(self, nodes: list[Node]) -> list[Node]:
        """The files among ``nodes`` and below the directories among them."""
        out: dict[int, Node] = {}
        for node in nodes:
            below = [node] if node.kind is Kind.FILE else self.store.descendants(node.path)
            for n in below:
                if n.kind is Kind.FILE:
                    out[n.ino] = n
        return list(out.values())

    def pin(self, paths: list[str]) -> dict[str, Any]:
        """Keep ``paths`` (directories: everything below them, also what arrives later)
        local; their missing bytes are fetched in the background."""
        nodes = self._nodes(paths)  # every path is checked before anything changes
        with self.store.transaction():
            for p in paths:
                self.store.pin_add(p)
        self.pins.update(paths)
        files = self._files(nodes)
        partials = self._downloader.partials
        fetching = [n.path for n in files if n.data_id in partials]
        # a withdrawal asked for before this pin is answered as "kept: pinned" (cannot_free)
        self._downloader.retry_all()
        self.wake.set()
        return {"pinned": paths, "files": len(files), "fetching": sorted(fetching)}

    def _unpin_records(self, paths: list[str]) -> list[Node]:
        nodes = self._nodes(paths)
        for p in paths:
            above = self.pinned_by(p)
            if above is not None and above != p and above not in paths:
                raise PinError(f"{p} is pinned through {above or 'the share root'}; unpin that instead")
        with self.store.transaction():
            for p in paths:
                self.store.pin_remove_under(p)
        self.pins = self.store.pins()
        return nodes

    async def unpin(self, paths: list[str], wait: float = DROP_WAIT) -> dict[str, Any]:
        """Make ``paths`` online-only again: in an ``--on-demand`` mount, free the bytes of
        every complete file below them that another online peer holds. Waits up to ``wait``
        seconds for the tracker's answers; later ones still free (or are reported)."""
        nodes = self._unpin_records(paths)
        if not self.on_demand:
            return {"unpinned": paths, "outcomes": [],
                    "note": "this mount keeps every file; mount with --on-demand to free space"}
        asked, outcomes = self._withdraw(self._files(nodes), by_user=True)
        with trio.move_on_after(wait):
            for p in asked:
                await self._waiters[p].wait()
        for p in asked:
            done = self._results.get(p)
            outcomes.append(done if done is not None and self._waiters[p].is_set()
                            else Outcome(p, "waiting", "no answer from the tracker yet"))
        return {"unpinned": paths, "outcomes": [dataclasses.asdict(o) for o in sorted(outcomes, key=lambda o: o.path)]}

    def unpin_nowait(self, paths: list[str]) -> None:
        """Unpin without waiting (``setfattr user.syncfs.pinned 0``): refusals go to status."""
        nodes = self._unpin_records(paths)
        if self.on_demand:
            self._withdraw(self._files(nodes), by_user=True)

    def set_from_xattr(self, node: Node, value: bytes) -> None:
        flag = value.strip()
        if flag not in (b"1", b"0"):
            raise FsError(errno.EINVAL, "user.syncfs.pinned takes 1 (pin) or 0 (unpin)")
        try:
            if flag == b"1":
                self.pin([node.path])
            else:
                self.unpin_nowait([node.path])
        except PinError as exc:
            raise FsError(errno.EPERM, str(exc)) from None

    def forget(self, path: str) -> None:
        """``path`` was deleted: its pins go with it."""
        if self.pinned_by(path) is not None or any(p.startswith(path + "/") for p in self.pins):
            self.store.pin_remove_under(path)
            self.pins = self.store.pins()

    def moved(self, old: str, new: str) -> None:
        if any(p == old or p.startswith(old + "/") for p in self.pins):
            self.store.pin_move(old, new)
            self.pins = self.store.pins()
        self.uses.moved(old, new)

    # -- withdrawing and freeing ----------------------------------------------------------

    def cannot_free(self, node: Node | None, version: dict[str, int]) -> str:
        """Why this peer must keep the bytes of ``node`` at ``version`` now ('' if it may ask)."""
        if node is None or node.kind is not Kind.FILE or node.data_id is None:
            return "no longer a file here"
        if node.version != version:
            return "it changed here meanwhile"
        if node.data_id in self._downloader.partials:
            return NOT_LOCAL
        if not node.chunks:
            return EMPTY
        if self.pinned_by(node.path) is not None:
            return "pinned"
        if node.ino in self._inodes.open_count:
            return "open"
        if self._inodes.busy(node.ino) or self._outbox.has(node.path):
            return "it has a local change the tracker has not taken yet"
        if self._ignores.ignored(node.path, node.kind):
            return "ignored by .syncfsignore: this is its only copy"
        return ""

    def _withdraw(self, files: list[Node], by_user: bool) -> tuple[list[str], list[Outcome]]:
        asked: list[str] = []
        outcomes: list[Outcome] = []
        for node in files:
            if node.data_id in self._downloader.partials:
                if self.free_partial(node):
                    outcomes.append(Outcome(node.path, "freed", "the chunks fetched so far"))
                continue
            reason = self.request_drop(node, by_user)
            if reason:
                if reason not in (NOT_LOCAL, EMPTY):  # nothing to say about those
                    outcomes.append(Outcome(node.path, "kept", reason))
            else:
                asked.append(node.path)
        return asked, outcomes

    def free_partial(self, node: Node) -> int:
        """Drop the chunks a partly fetched file has so far; returns the bytes freed.

        This peer is not a holder of a version it has only in part, so nobody counts on
        these chunks and the tracker need not be asked. A file that must be filled (changed
        here), a damaged complete copy being mended, one this peer is listed as holding (a
        rename made elsewhere of bytes it had), and one open, pinned or being fetched right
        now keep theirs.
        """
        p = self._downloader.partials.get(node.data_id)  # type: ignore[arg-type]
        if p is None or not p.present or p.must_fill or p.repair or p.downloading \
                or self.peer_id in p.row.holders \
                or node.ino in self._inodes.open_count or self._inodes.busy(node.ino) or self.pinned_by(node.path):
            return 0
        freed = p.bytes_present
        old = p.data_id
        with self.store.transaction():
            new = self.store.new_data_file(node.size)
            self.store.update_node(node.ino, data_id=new)
            self.store.unindex(old)
            self.store.trash_add(old)
            self._freed.append(old)
            self._downloader.drop(old)
            self._downloader.add(new, p.row)
        self.after_commit()
        self._notifier.node_changed(node.ino, node.path)
        log.info("freed %d bytes of the partly fetched %s", freed, node.path)
        return freed

    def request_drop(self, node: Node, by_user: bool = False) -> str:
        """Ask the tracker to stop listing this peer as a holder of ``node``'s version; ''
        when asked (the bytes are freed once a row shows the tracker agreed), else why not."""
        reason = self.cannot_free(node, node.version)
        if reason:
            return reason
        self._waiters[node.path] = trio.Event()
        self._results.pop(node.path, None)
        if by_user:
            self._by_user.add(node.path)
        with self.store.transaction():
            self._claims.request_drop(node.path, node.version)
        return ""

    def _finish(self, outcome: Outcome) -> None:
        self._results[outcome.path] = outcome
        by_user = outcome.path in self._by_user
        self._by_user.discard(outcome.path)
        if outcome.result == "refused" and by_user:
            self._errors.note(f"unpin of {outcome.path} refused: {outcome.reason}; the file is kept")
        elif outcome.result != "freed":
            log.info("%s kept: %s", outcome.path, outcome.reason)
        waiter = self._waiters.get(outcome.path)
        if waiter is not None:
            waiter.set()

    def on_row(self, row: TableRow) -> None:
        """A table row arrived (inside the engine's transaction): note whether the tracker
        still lists us for a version we asked to withdraw from."""
        e = row.entry
        want = self._claims.drop_pending(e.path)
        if want is None:
            return
        if e.deleted or compare(e.version, want) is not Order.EQUAL:
            self._claims.drop_done(e.path)
            self._seen_without_us.pop(e.path, None)
            self._finish(Outcome(e.path, "kept", "a newer version replaced it"))
        elif self.peer_id in row.holders:
            self._seen_without_us.pop(e.path, None)  # listed (again): a grant must come after this
        else:
            self._seen_without_us[e.path] = row

    def on_answer(self, msg: DropAnswer) -> None:
        """The tracker answered one of our DROPs (on the link that sent it, after the HAVEs
        sent before it, and after the row of a grant)."""
        want = self._claims.drop_pending(msg.path)
        if want is None or want != msg.version:
            return  # an answer to an older request
        seen = self._seen_without_us.pop(msg.path, None)
        with self.store.transaction():
            self._claims.drop_done(msg.path)
            if not msg.granted:
                self._refused[msg.path] = dict(msg.version)
                outcome = Outcome(msg.path, "refused", msg.reason)
            else:
                outcome = self._free(msg.path, want, seen)
        self.after_commit()
        self._finish(outcome)

    def _free(self, path: str, want: dict[str, int], unlisted: TableRow | None) -> Outcome:
        """The tracker no longer lists us as a holder of ``path`` at ``want``: free the bytes,
        unless something changed here meanwhile (then keep them and be listed again)."""
        node = self.store.lookup_path(path)
        reason = self.cannot_free(node, want)
        if not reason and (unlisted is None or unlisted.entry.version != want):
            reason = "no table row confirmed the withdrawal"  # cannot happen: rows come first
            log.warning("%s: the tracker granted a withdrawal without a row saying so; keeping it", path)
        if reason:
            if node is not None and node.version == want and node.data_id not in self._downloader.partials:
                self._claims.have(path, want)
            return Outcome(path, "kept", reason)
        assert node is not None and node.data_id is not None and unlisted is not None
        row = unlisted  # the tracker's row: who holds the bytes now
        old = node.data_id
        new = self.store.new_data_file(node.size)
        self.store.update_node(node.ino, data_id=new)
        self.store.unindex(old)
        self.store.trash_add(old)  # deleted right after the commit (or at the next start)
        self._freed.append(old)
        self._claims.withdraw_have(path)  # a HAVE still queued here must not list us again
        self._downloader.add(new, row)
        self._notifier.node_changed(node.ino, node.path)  # later reads come to us, not the page cache
        log.info("freed the local copy of %s (%d bytes)", path, node.size)
        return Outcome(path, "freed")

    def after_commit(self) -> None:
        """Delete the data files freed by the transaction that just committed."""
        freed, self._freed = self._freed, []
        for data_id in freed:
            # a savepoint rolled back may have handed the file back to its node: check
            if self.store.node_with_data(data_id) is None and data_id in self.store.trash_ids():
                self.store.trash_discard(data_id)

    def peers_changed(self) -> None:
        """Another peer came or went: a refused eviction may succeed now."""
        if self._refused:
            self._refused.clear()
            self.wake.set()

    # -- least recently used files and the cache limit ------------------------------------

    def usage(self) -> int:
        """Bytes of file data held locally: complete files plus the chunks of partial ones."""
        partials = self._downloader.partials
        total = sum(size for _, size, data_id in self.store.file_sizes() if data_id not in partials)
        for p in partials.values():
            total += p.bytes_present
        return total

    def grew(self) -> None:
        """More file data is kept here: the cache limit may be exceeded."""
        self.wake.set()

    async def _evictor(self) -> None:
        while True:
            await self.wake.wait()
            self.wake = trio.Event()
            await trio.sleep(EVICT_SETTLE)
            try:
                await self.evict()
            except (OSError, sqlite3.Error) as exc:  # the mount must outlive a full disk
                self._errors.note(f"could not free cached files: {exc}")

    async def evict(self) -> None:
        """Free least recently used unpinned files until the data fits: complete ones through
        the tracker, the chunks of partly fetched ones at once."""
        used = self.usage()
        if used <= self.cache_size:
            return
        partials = self._downloader.partials
        candidates = []
        for path, size, data_id in self.store.file_sizes():
            p = partials.get(data_id)  # type: ignore[arg-type]
            if p is not None:
                size = p.bytes_present
            if size:
                candidates.append((self.uses.last.get(path, 0.0), path, size, p is not None))
        candidates.sort()
        asked = []
        for _, path, size, partial in candidates:
            if used <= self.cache_size:
                break
            node = self.store.lookup_path(path)
            if node is None:
                continue
            if partial:
                used -= self.free_partial(node)  # ours alone to drop: freed at once
                continue
            if self._claims.drop_pending(path) is not None:
                used -= size  # already on its way out
                continue
            if self._refused.get(path) == node.version:
                continue
            if not self.request_drop(node):
                log.info("cache over %d bytes: freeing %s (last used %s)", self.cache_size, path,
                         time.ctime(self.uses.last[path]) if path in self.uses.last else "never")
                asked.append(path)
                used -= size
        with trio.move_on_after(DROP_WAIT):
            for path in asked:
                await self._waiters[path].wait()
        if any(self._results.get(path, Outcome(path, "")).result == "freed" for path in asked) and self.usage() > self.cache_size:
            self.wake.set()  # freed some but not enough: go on with the next ones
