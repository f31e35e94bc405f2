"""Ignore rules: ``.syncfsignore`` at the share's root, in gitignore syntax, plus defaults.

Ignored paths stay local to a peer: their changes are not announced and remote changes
to them are not applied. The defaults hold only what is never anyone's data: editor swap
and lock files, desktop droppings and syncfs's own temporary files. Backups such as
``notes.txt~`` are data and sync. A ``!pattern`` line in the file re-includes a default.

As in git, the last pattern that matches a path decides: a ``!`` pattern re-includes
what an earlier one ignored. ``rule`` names the pattern that ignores a path, for the
``ignored`` state and the counts in ``syncfs status``.
"""

import dataclasses
import logging
import re
from collections.abc import Iterable

import pathspec

log = logging.getLogger(__name__)

IGNORE_FILE = ".syncfsignore"
DEFAULTS = (
    ".*.sw?", "*.swp", "*.swo", "*.swx",  # vim swap files (the last match names the rule)
    "4913",  # vim's probe file before a save
    ".#*",  # emacs lock files
    ".DS_Store",
    "Thumbs.db",
    ".syncfs-tmp.*",  # a watched directory's files being written
)

_GROUP = re.compile(r"\(\?P<\w+>")
_PLAIN_FLAGS = re.compile("").flags


@dataclasses.dataclass
class Tally:
    """How many paths the rules ignore, by the pattern that ignores each."""

    count: int = 0
    by_rule: dict[str, int] = dataclasses.field(default_factory=dict)
    paths: list[str] = dataclasses.field(default_factory=list)  # the first few, for a person

    def add(self, path: str, rule: str, keep: int) -> None:
        self.count += 1
        self.by_rule[rule] = self.by_rule.get(rule, 0) + 1
        if len(self.paths) < keep:
            self.paths.append(path)

    def as_dict(self) -> dict[str, object]:
        return {"count": self.count, "by_rule": dict(sorted(self.by_rule.items())), "paths": sorted(self.paths)}


def _any_include(spec: pathspec.GitIgnoreSpec) -> "re.Pattern[str] | None":
    """One regex matching whatever some ignoring pattern of ``spec`` matches (None: cannot
    tell, try every pattern). A path it does not match is ignored by no pattern."""
    parts = []
    for p in spec.patterns:
        regex = getattr(p, "regex", None)
        if p.include and isinstance(regex, re.Pattern) and isinstance(regex.pattern, str) \
                and regex.flags == _PLAIN_FLAGS:
            parts.append(f"(?:{_GROUP.sub('(?:', regex.pattern)})")
        elif p.include:
            return None
    try:
        return re.compile("|".join(parts) or "(?!)")
    except re.error:
        return None


@dataclasses.dataclass
class IgnoreRules:
    spec: pathspec.GitIgnoreSpec
    errors: list[str]

    def __post_init__(self) -> None:
        # one regex for "could any pattern ignore this?": most paths are answered by it
        # alone, so a tally of a big tree need not try every pattern on every path
        self._maybe = _any_include(self.spec)

    @classmethod
    def parse(cls, text: str | None) -> "IgnoreRules":
        """Rules from the file's text (None: no file); a bad line is reported and skipped."""
        lines = list(DEFAULTS)
        errors = []
        for n, line in enumerate((text or "").splitlines(), 1):
            try:
                pathspec.GitIgnoreSpec.from_lines([line])
            except (ValueError, TypeError) as exc:
                errors.append(f"{IGNORE_FILE}:{n}: {line!r}: {exc}")
                continue
            lines.append(line)
        for e in errors:
            log.warning("%s", e)
        return cls(pathspec.GitIgnoreSpec.from_lines(lines), errors)

    def rule(self, path: str, is_dir: bool = False) -> str | None:
        """The pattern that ignores ``path`` (the last one matching it), or None if it syncs."""
        if path == IGNORE_FILE:
            return None  # the rules themselves are synced
        candidates = (path + "/", path) if is_dir else (path,)
        for candidate in candidates:
            if self._maybe is not None and not self._maybe.match(candidate):
                continue
            result = self.spec.check_file(candidate)
            if result.include and result.index is not None:
                return str(self.spec.patterns[result.index].pattern)
        return None

    def ignored(self, path: str, is_dir: bool = False) -> bool:
        return self.rule(path, is_dir) is not None

    def tally(self, paths: Iterable[tuple[str, bool]], keep: int = 20) -> Tally:
        """Count the ignored ones among ``paths`` (path, is a directory) by rule."""
        tally = Tally()
        for path, is_dir in paths:
            rule = self.rule(path, is_dir)
            if rule is not None:
                tally.add(path, rule, keep)
        return tally
