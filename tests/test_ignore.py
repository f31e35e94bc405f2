"""Ignore rules: gitignore syntax, defaults users expect, bad lines reported."""

import pytest

from syncfs.ignore import IGNORE_FILE, IgnoreRules


@pytest.mark.parametrize("path, is_dir, ignored", [
    ("build", True, True),
    ("build/out.o", False, True),
    ("src/build/deep/x", False, True),
    ("debug.log", False, True),
    ("logs/today.log", False, True),
    ("notes.txt", False, False),
    ("src", True, False),
    (".notes.txt.swp", False, True),  # vim swap files by default
    ("dir/4913", False, True),  # vim's probe file
    ("draft~", False, True),
    (".#lock", False, True),
    (".DS_Store", False, True),
    ("pics/Thumbs.db", False, True),
    ("keep.swp", False, False),  # re-included by '!keep.swp'
    (IGNORE_FILE, False, False),  # the rules themselves always sync
])
def test_rules(path, is_dir, ignored):
    rules = IgnoreRules.parse("build/\n*.log\n!keep.swp\n")
    assert rules.ignored(path, is_dir) is ignored


def test_no_file_means_defaults_only():
    rules = IgnoreRules.parse(None)
    assert rules.ignored("a.swp") and not rules.ignored("a.log")
