"""What to do with a change the tracker accepted, given what this peer has: pure decisions."""

import enum

from .protocol.entries import Entry
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
