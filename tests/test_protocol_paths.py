"""validate_path: which relative paths may name an entry of the share."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncfs.protocol.errors import BadPath, ProtocolError
from syncfs.protocol.paths import (
    MAX_PART_BYTES,
    MAX_PATH_BYTES,
    is_within,
    join,
    parent_of,
    validate_path,
)

FAST = settings(max_examples=200, deadline=None)

part_chars = st.characters(exclude_categories=["Cs"], exclude_characters="/\0")
good_parts = st.text(alphabet=part_chars, min_size=1, max_size=30).filter(
    lambda p: p not in (".", "..") and len(p.encode()) <= MAX_PART_BYTES
)
good_paths = st.lists(good_parts, min_size=1, max_size=8).map("/".join)


@pytest.mark.parametrize(
    "path",
    [
        "a",
        "a/b/c.txt",
        ".hidden",
        "..dots",
        "a/...",
        "spaces in name",
        "ünïcødé/日本語",
        "x" * MAX_PART_BYTES,
        "/".join(["y" * 200] * 20),  # 4019 bytes
        "é" * (MAX_PART_BYTES // 2),
    ],
)
def test_good_paths(path: str) -> None:
    assert validate_path(path) == path


@pytest.mark.parametrize(
    "path, why",
    [
        ("", "empty"),
        ("/", "absolute"),
        ("/etc/passwd", "absolute"),
        ("..", "'..' part"),
        ("../x", "'..' part"),
        ("a/../b", "'..' part"),
        ("a/..", "'..' part"),
        (".", "'.' part"),
        ("./a", "'.' part"),
        ("a/./b", "'.' part"),
        ("a//b", "empty part"),
        ("a/", "empty part"),
        ("a\0b", "NUL"),
        ("\0", "NUL"),
        ("x" * (MAX_PART_BYTES + 1), "part longer"),
        ("é" * (MAX_PART_BYTES // 2 + 1), "part longer"),
        ("a/" + "x" * (MAX_PART_BYTES + 1), "part longer"),
        ("/".join(["y" * 200] * 21), "longer than 4096"),
        ("a/\udcff", "UTF-8"),
    ],
)
def test_bad_paths(path: str, why: str) -> None:
    with pytest.raises(BadPath, match=why) as info:
        validate_path(path)
    assert isinstance(info.value, ProtocolError)
    assert info.value.path == path


@pytest.mark.parametrize("value", [None, b"a/b", 1, 1.5, True, ["a"], {"a": 1}, ("a",)])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(BadPath, match="not a string"):
        validate_path(value)


def test_length_limit_is_in_bytes() -> None:
    path = "/".join(["é" * 100] * 30)  # 3029 chars, 6029 bytes
    assert len(path) < MAX_PATH_BYTES < len(path.encode())
    with pytest.raises(BadPath):
        validate_path(path)


@FAST
@given(good_paths)
def test_generated_good_paths_are_accepted(path: str) -> None:
    if len(path.encode()) <= MAX_PATH_BYTES:
        assert validate_path(path) == path


@FAST
@given(
    st.lists(good_parts, max_size=4),
    st.sampled_from(["", ".", "..", "a\0", "\0"]),
    st.lists(good_parts, max_size=4),
)
def test_a_bad_part_anywhere_is_refused(before: list[str], bad: str, after: list[str]) -> None:
    with pytest.raises(BadPath):
        validate_path("/".join([*before, bad, *after]))


@FAST
@given(good_paths)
def test_absolute_versions_are_refused(path: str) -> None:
    with pytest.raises(BadPath):
        validate_path("/" + path)


@FAST
@given(st.text(max_size=50) | st.binary(max_size=10) | st.integers() | st.none())
def test_anything_is_accepted_or_bad_path(value: object) -> None:
    try:
        assert validate_path(value) == value
    except BadPath:
        pass


def test_helpers() -> None:
    assert parent_of("a/b/c") == "a/b"
    assert parent_of("a") == ""
    assert join("", "a") == "a" and join("a/b", "c") == "a/b/c"
    assert is_within("a/b", "a") and is_within("a", "a")
    assert not is_within("ab", "a") and not is_within("a", "a/b")
