"""Version vectors: {peer_id: counter}, compared by causal order."""

import enum
from collections.abc import Mapping

VersionVector = Mapping[str, int]


class Order(enum.Enum):
    EQUAL = "equal"
    BEFORE = "before"  # a happened before b: b dominates a
    AFTER = "after"  # a dominates b
    CONCURRENT = "concurrent"


def compare(a: VersionVector, b: VersionVector) -> Order:
    a_bigger = b_bigger = False
    for key in a.keys() | b.keys():
        x, y = a.get(key, 0), b.get(key, 0)
        if x > y:
            a_bigger = True
        elif y > x:
            b_bigger = True
    if a_bigger and b_bigger:
        return Order.CONCURRENT
    if a_bigger:
        return Order.AFTER
    if b_bigger:
        return Order.BEFORE
    return Order.EQUAL


def dominates(a: VersionVector, b: VersionVector) -> bool:
    """True if ``a`` is strictly newer than ``b``."""
    return compare(a, b) is Order.AFTER


def bump(v: VersionVector, peer_id: str) -> dict[str, int]:
    """The version a local change by ``peer_id`` on top of ``v`` gets."""
    out = dict(v)
    out[peer_id] = out.get(peer_id, 0) + 1
    return out


def merge(a: VersionVector, b: VersionVector) -> dict[str, int]:
    """The least vector that is at least both ``a`` and ``b``."""
    return {k: max(a.get(k, 0), b.get(k, 0)) for k in a.keys() | b.keys()}
