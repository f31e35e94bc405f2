"""What the peer core tells its front end, in the share's terms.

A remote change, a completed download or a repair makes something a front end shows stale:
a name in a directory, or a node's attributes and bytes. The core sends a ``Notice`` for
each on a bounded channel made by the composition root; the front end's own task turns them
into kernel cache invalidations (FUSE) or into paths to reconcile (a watched directory), never
inside a request handler. A notice names both the path and the inode, so neither front end
has to turn one back into the other.
"""

import dataclasses
import enum
import logging

import trio

log = logging.getLogger(__name__)

QUEUE = 10_000


class NoticeKind(enum.Enum):
    NAME = "name"  # the entry ``name`` in directory ``ino`` appeared, went or was replaced
    NODE = "node"  # the attributes or bytes of node ``ino`` changed
    COMPLETE = "complete"  # every byte of file ``ino`` is local now


@dataclasses.dataclass(frozen=True)
class Notice:
    kind: NoticeKind
    path: str  # the share path the notice is about (for NAME: the entry's own path)
    ino: int  # for NAME: the directory's inode
    name: str = ""  # for NAME: the entry's name in that directory


class Notifier:
    """The sending side. Never blocks: a front end that falls behind loses invalidations
    (the kernel's attribute timeout bounds how long they stay stale), said once per burst."""

    def __init__(self, send: trio.MemorySendChannel[Notice] | None) -> None:
        self._send = send
        self._overflowing = False

    def name_changed(self, parent_ino: int, name: str, path: str) -> None:
        """A remote change added or removed ``path`` (``name`` in ``parent_ino``): its cached
        name and its directory's listing are stale."""
        self._emit(Notice(NoticeKind.NAME, path, parent_ino, name))
        self._emit(Notice(NoticeKind.NODE, path.rpartition("/")[0], parent_ino))

    def node_changed(self, ino: int, path: str) -> None:
        self._emit(Notice(NoticeKind.NODE, path, ino))

    def completed(self, ino: int, path: str) -> None:
        self._emit(Notice(NoticeKind.COMPLETE, path, ino))

    def _emit(self, notice: Notice) -> None:
        if self._send is None:
            return
        try:
            self._send.send_nowait(notice)
        except trio.WouldBlock:
            if not self._overflowing:
                log.warning("front end notification queue full; cached attributes may stay stale briefly")
            self._overflowing = True
        except trio.BrokenResourceError:
            pass  # the front end has ended
        else:
            self._overflowing = False


def notice_channel() -> tuple[trio.MemorySendChannel[Notice], trio.MemoryReceiveChannel[Notice]]:
    return trio.open_memory_channel[Notice](QUEUE)
