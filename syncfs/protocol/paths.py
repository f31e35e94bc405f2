"""Validation of the relative paths that name entries in the share."""

# re-exported: what validate_path raises, so its callers catch it from here
from .errors import BadPath as BadPath

MAX_PATH_BYTES = 4096
MAX_PART_BYTES = 255


def validate_path(path: object) -> str:
    """Return ``path`` if it is a safe relative POSIX path inside the share, else raise BadPath.

    Safe means: a non-empty str, no leading '/', no empty, '.' or '..' parts, no NUL,
    valid UTF-8 (surrogates refused), at most 4096 bytes overall and 255 per part.
    """
    if not isinstance(path, str):
        raise BadPath(path, "not a string")
    if not path:
        raise BadPath(path, "empty")
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        raise BadPath(path, "not valid UTF-8") from None
    if len(encoded) > MAX_PATH_BYTES:
        raise BadPath(path, f"longer than {MAX_PATH_BYTES} bytes")
    if "\0" in path:
        raise BadPath(path, "contains NUL")
    if path.startswith("/"):
        raise BadPath(path, "absolute")
    for part in path.split("/"):
        if part == "":
            raise BadPath(path, "empty part")
        if part in (".", ".."):
            raise BadPath(path, f"'{part}' part")
        if len(part.encode("utf-8")) > MAX_PART_BYTES:
            raise BadPath(path, f"a part longer than {MAX_PART_BYTES} bytes")
    return path


def parent_of(path: str) -> str:
    """The parent path of ``path`` ('' for a top-level name)."""
    head, _, _ = path.rpartition("/")
    return head


def join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def is_within(path: str, top: str) -> bool:
    """True if ``path`` is ``top`` or lies below it."""
    return path == top or path.startswith(top + "/")
