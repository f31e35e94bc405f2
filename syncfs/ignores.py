"""The ignore rules in force for this share: the defaults and the share's ``.syncfsignore``,
read again whenever that file changes here or arrives complete from another peer."""

from .downloads import Downloader
from .errorlog import ErrorLog
from .ignore import IGNORE_FILE, IgnoreRules, Tally
from .protocol.entries import Kind
from .store import Store


class ShareIgnores:
    def __init__(self, store: Store, downloader: Downloader, errors: ErrorLog) -> None:
        self._store = store
        self._downloader = downloader
        self._errors = errors
        self.rules = IgnoreRules.parse(None)

    def ignored(self, path: str, kind: Kind) -> bool:
        return self.rules.ignored(path, kind is Kind.DIR)

    def rule(self, path: str, kind: Kind) -> str | None:
        """The pattern that keeps ``path`` local, or None if it syncs."""
        return self.rules.rule(path, kind is Kind.DIR)

    def tally(self) -> Tally:
        """The ignored paths in the share here, counted by the pattern that ignores each.

        Counted when asked (a full ``syncfs status``), from the tree in the store: one
        indexed scan, and a quick check that most paths pass with one regex. A count kept
        up to date as paths change would have to follow every create, rename, delete and
        every change of the rules themselves (which re-decide every path at once).
        """
        return self.rules.tally(self._store.all_paths())

    def changed(self, path: str) -> None:
        """``path`` changed: if it is the ignore file, its rules hold from now on."""
        if path == IGNORE_FILE:
            self.reload()

    def reload(self) -> None:
        node = self._store.lookup_path(IGNORE_FILE)
        text = None
        if node is not None and node.kind is Kind.FILE and node.data_id is not None \
                and node.data_id not in self._downloader.partials:
            try:
                text = self._store.data_path(node.data_id).read_text("utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                self._errors.note(f"cannot read {IGNORE_FILE}: {exc}; only the default rules apply")
        self.rules = IgnoreRules.parse(text)
        for error in self.rules.errors:
            self._errors.note(error)
