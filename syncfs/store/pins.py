"""What the cache limit of an --on-demand mount works with: pinned paths (kept local), when
each file was last used, and the sizes of the files held."""

from .db import StoreBase, in_subtree


class PinsMixin(StoreBase):
    """A pin covers its path and everything below it."""

    def pins(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT path FROM pins")}

    def pin_add(self, path: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO pins (path) VALUES (?)", (path,))

    def pin_remove_under(self, path: str) -> None:
        """Forget the pins of ``path`` and of everything below it ("" is the root: all)."""
        where, params = in_subtree(path)
        self.db.execute(f"DELETE FROM pins WHERE {where}", params)

    def pin_move(self, old: str, new: str) -> None:
        where, params = in_subtree(old)
        self.db.execute(f"UPDATE pins SET path = ? || substr(path, ?) WHERE {where}", (new, len(old) + 1, *params))

    def last_uses(self) -> dict[str, float]:
        return dict(self.db.execute("SELECT path, t FROM last_use").fetchall())

    def save_last_uses(self, uses: dict[str, float]) -> None:
        self.db.executemany("INSERT OR REPLACE INTO last_use (path, t) VALUES (?, ?)", list(uses.items()))
        self.db.execute("DELETE FROM last_use WHERE path NOT IN (SELECT path FROM nodes)")

    def file_sizes(self) -> list[tuple[str, int, int | None]]:
        """(path, size, data_id) of every file: what the cache limit counts."""
        return self.db.execute("SELECT path, size, data_id FROM nodes WHERE kind = 'file'").fetchall()
