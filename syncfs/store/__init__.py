"""The local store of one mount: metadata in SQLite, file contents in sparse data files.

Layout under the store directory: ``state.db`` (WAL) and ``data/<data_id>``, one file per
content version of a file. A remote version is written into a fresh data file and made
current in one transaction, so a crash leaves every file at its old or its new version.

One module per group of tables, each a mixin over ``StoreBase`` (the connection):
``tree`` (nodes, tombstones), ``content`` (data files, chunk index, trash, dirty inodes),
``queues`` (outbox, partials, deferred rows, HAVE and DROP claims), ``pins`` (pins, last
uses) and ``mirror_records`` (a watched directory's ``Seen`` records).
"""

from .content import ContentMixin
from .db import ROOT_INO, SCHEMA_VERSION, StoreBusy, StoreTooNew
from .mirror_records import MirrorRecordsMixin
from .pins import PinsMixin
from .queues import QueuesMixin, SavedPartial
from .tree import Node, NotFound, TreeMixin

__all__ = [
    "ROOT_INO", "SCHEMA_VERSION", "Node", "NotFound", "SavedPartial", "Store", "StoreBusy", "StoreTooNew",
]


class Store(TreeMixin, ContentMixin, QueuesMixin, PinsMixin, MirrorRecordsMixin):
    """Metadata and data files of one mount. Single-threaded use from the event loop; the
    data-file I/O that runs in worker threads is in ``syncfs.datafiles``."""
