"""What to do with a change the tracker accepted, given what this peer has: pure decisions."""

import enum

from .protocol.entries import Entry, Kind
from .protocol.versions import Order, compare


class Action(enum.Enum):
    IGNORE = "ignore"  # we already have this version or a newer one
    APPLY = "apply"  # the remote version replaces ours
    WAIT = "wait"  # we hold a concurrent change the tracker has not seen: it will resolve it
    DEFER = "defer"  # the file is open for writing here: apply after the writer closes it


def decide(remote: Entry, local_version: dict[str, int], *, pending: bool, busy: bool) -> Action:
    """Decide for one remote entry.

    ``local_version`` is the version of what this peer shows at the path (or of its
    tombstone); ``pending`` says our outbox still holds a change for the path; ``busy``
    says a local program has the file open with unsaved writes.
    """
    order = compare(remote.version, local_version)
    if order in (Order.EQUAL, Order.BEFORE):
        return Action.IGNORE
    if order is Order.CONCURRENT and pending:
        return Action.WAIT
    if busy:
        return Action.DEFER
    return Action.APPLY


class FileChange(enum.Enum):
    ATTRIBUTES = "attributes"  # same bytes, same mtime: update the node in place
    RENUMBER = "renumber"  # same bytes, new mtime: a new inode on the same data file
    CONTENT = "content"  # other bytes: a new inode with a new (stale) data file


def file_change(local: Entry | None, remote: Entry) -> FileChange:
    """How a remote file version lands on what this peer has at its path (``local``, the
    entry of the node there, or None). With the writeback cache the kernel keeps its own
    mtime of a file it knows and ignores ours, so a new mtime needs a new inode."""
    if local is None or local.kind is not Kind.FILE or local.chunks != remote.chunks:
        return FileChange.CONTENT
    return FileChange.ATTRIBUTES if local.mtime_ns == remote.mtime_ns else FileChange.RENUMBER


def delete_keeps_dir(kind: Kind, has_children: bool) -> bool:
    """A remote delete of a directory that still holds entries the deleter did not know of
    keeps it (and says so with a version on top of both)."""
    return kind is Kind.DIR and has_children


def own_counter_kept(base: dict[str, int], known: dict[str, int], peer_id: str) -> dict[str, int]:
    """The base for a local change: ``base``, but our own counter never goes back, even if
    the caller's base missed a change this peer committed (and the tracker may hold) since."""
    mine = known.get(peer_id, 0)
    return {**base, peer_id: mine} if mine > base.get(peer_id, 0) else base


LOST_CONFIRM = 10.0  # seconds a version must stay unfetchable from every holder before it is dropped


def lost_verdict(*, every_holder_missing: bool, has_holders: bool, repair: bool,
                 lost_since: float | None, now: float) -> tuple[bool, float | None]:
    """Whether a version that could not be fetched is lost for good: every holder named
    answered that it no longer has the bytes, for ``LOST_CONFIRM`` seconds (a link that broke
    mid-answer looks the same once). A row naming no holder is never lost (an offline peer
    may have the bytes), nor is a repair of a damaged local copy. Returns (drop it now, the
    new ``lost_since``)."""
    if not (every_holder_missing and has_holders and not repair):
        return False, None
    if lost_since is None:
        return False, now
    return now - lost_since >= LOST_CONFIRM, lost_since
