"""The ignore rules in force for this share: the defaults and the share's ``.syncfsignore``,
read again whenever that file changes here or arrives complete from another peer."""

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from .downloads import Downloader
from .errorlog import ErrorLog
from .ignore import IGNORE_FILE, IgnoreRules, Tally
from .protocol.entries import Kind
from .store import Store

Paths = Callable[[], Iterable[tuple[str, bool]]]


class ShareIgnores:
    def __init__(self, store: Store, downloader: Downloader, errors: ErrorLog) -> None:
        self._store = store
        self._downloader = downloader
        self._errors = errors
        self.rules = IgnoreRules.parse(None)
        self._paths: Paths = store.all_paths
        self._on_reload: list[Callable[[], None]] = []

    def ignored(self, path: str, kind: Kind) -> bool:
        return self.rules.ignored(path, kind is Kind.DIR)

    def rule(self, path: str, kind: Kind) -> str | None:
        """The pattern that keeps ``path`` local, or None if it syncs."""
        return self.rules.rule(path, kind is Kind.DIR)

    def tally(self) -> Tally:
        """The ignored paths of the share here, counted by the pattern that ignores each.

        Counted when asked (a full ``syncfs status``, never a brief one), from the tree in
        the store or the directory a front end keeps (``count_in``): one pass, in which one
        regex clears most paths. A count kept up to date instead would have to follow every
        create, rename and delete, and every change of the rules (which re-decide all paths
        at once), for a figure that a person asks for now and then.
        """
        return self.rules.tally(self._paths())

    def count_in(self, paths: Paths) -> None:
        """Count ignored paths among ``paths()`` rather than the store's tree: for a front end
        whose ignored files never enter the store (a watched directory)."""
        self._paths = paths

    def on_reload(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after the rules are read again. That may be inside a transaction
        of the store's: the callback reads and queues work, it opens no transaction."""
        self._on_reload.append(callback)

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
        for callback in self._on_reload:
            callback()


def tree_paths(root: Path) -> Iterator[tuple[str, bool]]:
    """(path relative to ``root``, is a directory) of everything below ``root``; symbolic
    links are not followed, and what vanishes meanwhile is passed over."""
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            with os.scandir(os.path.join(root, rel) if rel else root) as entries:
                for entry in entries:
                    path = f"{rel}/{entry.name}" if rel else entry.name
                    try:
                        is_dir = entry.is_dir(follow_symlinks=False)
                    except OSError:
                        continue
                    if is_dir:
                        stack.append(path)
                    yield path, is_dir
        except OSError:
            continue
