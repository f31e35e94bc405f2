"""Extended attributes: the ``user.*`` ones a program sets (they sync like the content), and
syncfs's own read-only ``user.syncfs.*`` ones (state, version, holders) plus ``pinned``."""

import errno
import json

from .commits import LocalCommits
from .downloads import Downloader
from .errors import FsError
from .ignores import ShareIgnores
from .inodes import Inodes
from .notices import Notifier
from .pinning import Pinning
from .protocol.entries import MAX_XATTR_VALUE, MAX_XATTRS, Kind, check_xattr
from .protocol.errors import ProtocolError
from .store import Node, Store

XATTR_PREFIX = "user.syncfs."
XATTR_STATE = XATTR_PREFIX + "state"
XATTR_VERSION = XATTR_PREFIX + "version"
XATTR_HOLDERS = XATTR_PREFIX + "holders"
XATTR_PINNED = XATTR_PREFIX + "pinned"


class Xattrs:
    def __init__(self, store: Store, inodes: Inodes, commits: LocalCommits, downloader: Downloader,
                 pinning: Pinning, ignores: ShareIgnores, notifier: Notifier) -> None:
        self._store = store
        self._inodes = inodes
        self._commits = commits
        self._downloader = downloader
        self._pinning = pinning
        self._ignores = ignores
        self._notifier = notifier
        self.peer_id = store.peer_id

    def names(self, ino: int) -> list[str]:
        node = self._inodes.node(ino)
        virtual = [XATTR_STATE, XATTR_VERSION] + ([XATTR_HOLDERS] if node.kind is Kind.FILE else [])
        if node.kind is not Kind.SYMLINK:
            virtual.append(XATTR_PINNED)
        return virtual + sorted(node.xattrs)

    def get(self, ino: int, name: str) -> bytes:
        node = self._inodes.node(ino)
        if name == XATTR_STATE:
            return self.file_state(node).encode()
        if name == XATTR_VERSION:
            return json.dumps(dict(sorted(node.version.items()))).encode()
        if name == XATTR_PINNED and node.kind is not Kind.SYMLINK:
            return b"1" if self._pinning.pinned_by(node.path) is not None else b"0"
        if name == XATTR_HOLDERS and node.kind is Kind.FILE:
            partial = self._downloader.partials.get(node.data_id) if node.data_id is not None else None
            holders = partial.row.holders if partial is not None else (self.peer_id,)
            return "\n".join(holders).encode()
        try:
            return node.xattrs[name]
        except KeyError:
            raise FsError(errno.ENODATA) from None

    def file_state(self, node: Node) -> str:
        """ignored (kept on this peer by an ignore rule: neither sent nor updated), synced,
        stale (not all local), downloading, pinned (complete, and kept local), or conflict
        (a conflict copy)."""
        if self._ignores.ignored(node.path, node.kind):
            return "ignored"
        partial = self._downloader.partials.get(node.data_id) if node.data_id is not None else None
        if partial is not None:
            return "downloading" if partial.downloading else "stale"
        if self._pinning.pinned_by(node.path) is not None:
            return "pinned"
        if ".sync-conflict-" in node.name:
            return "conflict"
        return "synced"

    def set(self, ino: int, name: str, value: bytes | None) -> None:
        """Set (or with None remove) a user.* attribute; it syncs like the content does."""
        node = self._inodes.node(ino)
        if name == XATTR_PINNED and node.kind is not Kind.SYMLINK:
            # removing the attribute unpins, like setting it to 0
            self._pinning.set_from_xattr(node, b"0" if value is None else value)
            self._notifier.node_changed(ino, node.path)
            return
        if name.startswith(XATTR_PREFIX):
            raise FsError(errno.EPERM, f"{name} is maintained by syncfs")
        if not name.startswith("user."):
            raise FsError(errno.ENOTSUP, "only user.* attributes are stored")
        if node.kind is Kind.SYMLINK:
            raise FsError(errno.EPERM)
        xattrs = dict(node.xattrs)
        if value is None:
            if xattrs.pop(name, None) is None:
                raise FsError(errno.ENODATA)
        else:
            try:
                check_xattr(name, value)
            except ProtocolError as exc:
                raise FsError(errno.E2BIG if len(value) > MAX_XATTR_VALUE else errno.ERANGE, str(exc)) from None
            if name not in xattrs and len(xattrs) >= MAX_XATTRS:
                raise FsError(errno.ENOSPC, "too many extended attributes")
            xattrs[name] = value
        with self._store.transaction():
            self._store.update_node(ino, xattrs=xattrs)
            if self._inodes.busy(ino):
                self._commits.queue_content(ino)  # published with the pending content commit
            else:
                self._commits.commit(self._store.get(ino))
