"""Ignore rules: gitignore syntax, defaults that are never user data, bad lines reported,
and which pattern ignores a path."""

import pathspec
import pytest

from syncfs.ignore import DEFAULTS, IGNORE_FILE, IgnoreRules


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
    ("draft~", False, False),  # a backup is the user's data: it syncs
    ("tests/fixtures/backup~", False, False),
    (".#lock", False, True),
    (".DS_Store", False, True),
    ("pics/Thumbs.db", False, True),
    ("d/.syncfs-tmp.x1", False, True),
    ("keep.swp", False, False),  # re-included by '!keep.swp'
    (IGNORE_FILE, False, False),  # the rules themselves always sync
])
def test_rules(path, is_dir, ignored):
    rules = IgnoreRules.parse("build/\n*.log\n!keep.swp\n")
    assert rules.ignored(path, is_dir) is ignored


def test_no_file_means_defaults_only():
    rules = IgnoreRules.parse(None)
    assert rules.ignored("a.swp") and not rules.ignored("a.log")


def test_no_default_ignores_a_backup_or_a_hidden_file():
    rules = IgnoreRules.parse(None)
    for path in ("a~", "#a#", ".a", ".config/x", "a.bak", "a.orig", "a.tmp", "~$doc.docx", ".~lock.a.odt#"):
        assert rules.rule(path) is None, path
    assert "*~" not in DEFAULTS


@pytest.mark.parametrize("path, is_dir, rule", [
    ("b.swp", False, "*.swp"),
    (".a.txt.swp", False, "*.swp"),
    (".a.txt.swo", False, "*.swo"),
    (".a.txt.swn", False, ".*.sw?"),
    ("x/4913", False, "4913"),
    (".#notes.org", False, ".#*"),
    ("pics/.DS_Store", False, ".DS_Store"),
    ("build", True, "build/"),
    ("build/obj/main.o", False, "build/"),  # inside an ignored directory: that directory's rule
    ("build", False, None),  # a file named like a directory-only pattern
    ("debug.log", False, "*.log"),
    ("a.log", False, "a.*"),  # the last matching pattern names the rule, as in git
    ("keep.log", False, None),  # re-included by the later '!keep.log'
    ("keep.swp", False, None),
    ("notes.txt", False, None),
])
def test_rule_names_the_last_matching_pattern(path, is_dir, rule):
    rules = IgnoreRules.parse("build/\n*.log\n!keep.log\n\n# comment\na.*\n!keep.swp\n")
    assert rules.rule(path, is_dir) == rule


def test_negation_then_pattern_again_ignores():
    rules = IgnoreRules.parse("!*.swp\nlocal/*.swp\n")
    assert rules.rule("a.swp") is None
    assert rules.rule("local/a.swp") == "local/*.swp"


def test_tally_counts_by_rule():
    rules = IgnoreRules.parse("build/\n")
    paths = [("a.swp", False), ("d/.b.swp", False), ("build", True), ("build/x", False),
             ("keep~", False), ("src", True), (".DS_Store", False)]
    tally = rules.tally(paths, keep=3)
    assert tally.count == 5
    assert tally.by_rule == {"*.swp": 2, "build/": 2, ".DS_Store": 1}
    assert len(tally.paths) == 3
    assert tally.as_dict()["count"] == 5


def test_a_bad_line_is_reported_and_the_rest_apply():
    rules = IgnoreRules.parse("*.log\n!\nbuild/\n")
    assert rules.rule("x.log") == "*.log" and rules.rule("build", True) == "build/"


def test_rule_agrees_with_pathspec_on_every_path():
    """The quick pre-check never hides a match pathspec itself would make."""
    text = "build/\n*.log\n!keep.log\n/top.txt\ndocs/**/*.tmp\n[ab]?.bin\nnode_modules\n!important.swp\n"
    rules = IgnoreRules.parse(text)
    spec = pathspec.GitIgnoreSpec.from_lines([*DEFAULTS, *text.splitlines()])
    names = ["build", "x.log", "keep.log", "top.txt", "a.tmp", "ax.bin", "cx.bin", "node_modules",
             ".n.swp", "important.swp", "4913", ".#x", "plain", "x~", ".syncfs-tmp.1", "Thumbs.db"]
    for name in names:
        for prefix in ("", "docs/", "docs/deep/", "src/build/", "node_modules/"):
            path = prefix + name
            assert (rules.rule(path) is not None) == spec.match_file(path), path
            assert (rules.rule(path, True) is not None) == (spec.match_file(path + "/") or spec.match_file(path)), path
