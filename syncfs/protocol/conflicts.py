"""Names of conflict copies: ``dir/name.sync-conflict-YYYYMMDD-HHMMSS-<origin>[-n].ext``.

Shared by the tracker, which keeps the loser of a concurrent change under such a name,
and by peers that set a version aside themselves (a watched directory replacing a file
that changed in the share meanwhile).
"""

import datetime

from .errors import BadPath
from .paths import MAX_PART_BYTES, MAX_PATH_BYTES, join, parent_of, validate_path

CONFLICT_MARK = ".sync-conflict-"
# A "suffix" longer than this is part of the name, not an extension worth keeping.
MAX_EXT_BYTES = 64
ORIGIN_CHARS = 7


def conflict_path(path: str, mtime_ns: int, origin: str, n: int = 0) -> str:
    """``dir/name.sync-conflict-YYYYMMDD-HHMMSS-<origin[:7]>[-n].ext`` for ``dir/name.ext``.

    The stem is cut (at a character boundary) so that the name stays within 255 bytes
    and the path within 4096; if even an empty stem does not fit under the parent, the
    copy goes to the top of the share instead, so that it is never lost.
    """
    parent = parent_of(path)
    name = path.rpartition("/")[2]
    stem, ext = split_ext(name)
    mark = f"{CONFLICT_MARK}{conflict_stamp(mtime_ns)}-{origin[:ORIGIN_CHARS]}"
    if n:
        mark += f"-{n}"
    for where in (parent, ""):
        room = MAX_PART_BYTES
        if where:
            room = min(room, MAX_PATH_BYTES - len(where.encode()) - 1)
        candidate = fit(stem, mark + ext, room)
        if candidate is not None:
            try:
                return validate_path(join(where, candidate))
            except BadPath:
                continue
    raise RuntimeError(f"cannot name a conflict copy of {path!r}")


def split_ext(name: str) -> tuple[str, str]:
    """``('notes', '.txt')`` for 'notes.txt'; no extension for 'Makefile' or '.bashrc'."""
    dot = name.rfind(".")
    if dot <= 0 or dot == len(name) - 1 or len(name[dot:].encode()) > MAX_EXT_BYTES:
        return name, ""
    return name[:dot], name[dot:]


def fit(stem: str, tail: str, room: int) -> str | None:
    """``stem + tail`` with ``stem`` cut so that the result takes at most ``room`` bytes."""
    budget = room - len(tail.encode())
    if budget < 1:
        return None
    raw = stem.encode()[:budget]
    cut = raw.decode("utf-8", "ignore")  # drops a character split by the cut
    if not cut:
        return None
    return cut + tail


def conflict_stamp(mtime_ns: int) -> str:
    """``YYYYMMDD-HHMMSS`` of ``mtime_ns`` in UTC, clamped to years 1..9999."""
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    low = datetime.datetime(1, 1, 1, tzinfo=datetime.UTC)
    high = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)
    seconds = mtime_ns // 1_000_000_000
    if seconds < (low - epoch).total_seconds():
        when = low
    elif seconds > (high - epoch).total_seconds():
        when = high
    else:
        when = epoch + datetime.timedelta(seconds=seconds)
    # strftime would not zero-pad years before 1000 on every platform
    return (
        f"{when.year:04d}{when.month:02d}{when.day:02d}-"
        f"{when.hour:02d}{when.minute:02d}{when.second:02d}"
    )
