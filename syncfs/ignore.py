"""Ignore rules: ``.syncfsignore`` at the share's root, in gitignore syntax, plus defaults.

Ignored paths stay local to a peer: their changes are not announced and remote changes
to them are not applied. The defaults cover the editor and desktop droppings nobody wants
synced; a ``!pattern`` line in the file re-includes any of them.
"""

import dataclasses
import logging

import pathspec

log = logging.getLogger(__name__)

IGNORE_FILE = ".syncfsignore"
DEFAULTS = (
    "*.swp", "*.swo", "*.swx", ".*.sw?",  # vim swap files
    "4913",  # vim's probe file before a save
    "*~",  # backup files
    ".#*",  # emacs lock files
    ".DS_Store",
    "Thumbs.db",
    ".syncfs-tmp.*",  # a watched directory's files being written
)


@dataclasses.dataclass
class IgnoreRules:
    spec: pathspec.GitIgnoreSpec
    errors: list[str]

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

    def ignored(self, path: str, is_dir: bool = False) -> bool:
        if path == IGNORE_FILE:
            return False  # the rules themselves are synced
        if is_dir and self.spec.match_file(path + "/"):
            return True
        return self.spec.match_file(path)
