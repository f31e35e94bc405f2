"""What a watched directory held, path by path, when it last agreed with the share: the
``Seen`` records that ``syncfs.mirror`` decides with."""

from ..mirror import Seen
from ..protocol.entries import Kind
from .db import StoreBase, in_subtree, pack_version, unpack_version


class MirrorRecordsMixin(StoreBase):
    """At most one ``Seen`` per path."""

    def seen(self, path: str) -> Seen | None:
        row = self.db.execute(
            "SELECT path, kind, ino, size, mtime_ns, mode, content, version, xattrs FROM mirror WHERE path=?", (path,)
        ).fetchone()
        if row is None:
            return None
        path, kind, ino, size, mtime_ns, mode, content, version, xattrs = row
        return Seen(path, Kind(kind), ino, size, mtime_ns, mode, content, unpack_version(version), xattrs)

    def put_seen(self, s: Seen) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO mirror (path, kind, ino, size, mtime_ns, mode, content, version, xattrs)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (s.path, s.kind.value, s.ino, s.size, s.mtime_ns, s.mode, s.content, pack_version(s.version), s.xattrs),
        )

    def forget_seen(self, path: str, subtree: bool = True) -> None:
        """Forget ``path`` and (unless not ``subtree``) everything recorded below it."""
        if not subtree:
            self.db.execute("DELETE FROM mirror WHERE path=?", (path,))
            return
        where, params = in_subtree(path)
        self.db.execute(f"DELETE FROM mirror WHERE {where}", params)

    def move_seen(self, old: str, new: str) -> None:
        """Record what was seen at ``old`` and below as seen at ``new``, in place of what
        was recorded there."""
        self.forget_seen(new)
        where, params = in_subtree(old)
        self.db.execute(f"UPDATE mirror SET path = ? || substr(path, ?) WHERE {where}", (new, len(old) + 1, *params))

    def seen_paths(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT path FROM mirror")]
