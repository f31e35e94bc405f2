"""Version vectors: causal comparison, merge and bump, checked as properties."""

from hypothesis import given, settings
from hypothesis import strategies as st

from syncfs.protocol.versions import Order, bump, compare, dominates, merge

FAST = settings(max_examples=300, deadline=None)

PEERS = ["a", "b", "c", "d"]
vectors = st.dictionaries(st.sampled_from(PEERS), st.integers(0, 5), max_size=4)

INVERSE = {
    Order.EQUAL: Order.EQUAL,
    Order.BEFORE: Order.AFTER,
    Order.AFTER: Order.BEFORE,
    Order.CONCURRENT: Order.CONCURRENT,
}


def at_least(a: dict[str, int], b: dict[str, int]) -> bool:
    return compare(a, b) in (Order.AFTER, Order.EQUAL)


def test_examples() -> None:
    assert compare({}, {}) is Order.EQUAL
    assert compare({"a": 1}, {}) is Order.AFTER
    assert compare({}, {"a": 1}) is Order.BEFORE
    assert compare({"a": 1}, {"b": 1}) is Order.CONCURRENT
    assert compare({"a": 2, "b": 1}, {"a": 1, "b": 1}) is Order.AFTER
    assert compare({"a": 0}, {}) is Order.EQUAL  # a missing counter is 0
    assert merge({"a": 2, "b": 1}, {"b": 3, "c": 1}) == {"a": 2, "b": 3, "c": 1}
    assert bump({"a": 2}, "b") == {"a": 2, "b": 1}
    assert bump({"a": 2}, "a") == {"a": 3}


@FAST
@given(vectors)
def test_reflexive(a: dict[str, int]) -> None:
    assert compare(a, a) is Order.EQUAL
    assert not dominates(a, a)


@FAST
@given(vectors, vectors)
def test_antisymmetric(a: dict[str, int], b: dict[str, int]) -> None:
    assert compare(b, a) is INVERSE[compare(a, b)]
    assert not (dominates(a, b) and dominates(b, a))
    assert dominates(a, b) == (compare(a, b) is Order.AFTER)


@FAST
@given(vectors, vectors, vectors)
def test_transitive(a: dict[str, int], b: dict[str, int], c: dict[str, int]) -> None:
    if dominates(a, b) and dominates(b, c):
        assert dominates(a, c)
    if at_least(a, b) and at_least(b, c):
        assert at_least(a, c)


@FAST
@given(vectors, vectors)
def test_merge_is_the_least_upper_bound(a: dict[str, int], b: dict[str, int]) -> None:
    m = merge(a, b)
    assert at_least(m, a) and at_least(m, b)
    assert compare(m, merge(b, a)) is Order.EQUAL
    for key in m:
        assert m[key] == max(a.get(key, 0), b.get(key, 0))
    if compare(a, b) is Order.CONCURRENT:
        assert dominates(m, a) and dominates(m, b)
    if at_least(a, b):
        assert compare(m, a) is Order.EQUAL


@FAST
@given(vectors, vectors, vectors)
def test_merge_is_associative_and_idempotent(a: dict, b: dict, c: dict) -> None:
    assert merge(merge(a, b), c) == merge(a, merge(b, c))
    assert merge(a, a) == a


@FAST
@given(vectors, st.sampled_from(PEERS))
def test_bump_dominates(v: dict[str, int], peer: str) -> None:
    before = dict(v)
    bumped = bump(v, peer)
    assert v == before  # the input is not changed
    assert dominates(bumped, v)
    assert bumped[peer] == v.get(peer, 0) + 1
    assert {k: n for k, n in bumped.items() if k != peer} == {
        k: n for k, n in v.items() if k != peer
    }


@FAST
@given(vectors, vectors, st.sampled_from(PEERS), st.sampled_from(PEERS))
def test_concurrent_bumps_conflict(base: dict, other: dict, p: str, q: str) -> None:
    """Two peers that change the same version independently are concurrent."""
    if p != q:
        assert compare(bump(base, p), bump(base, q)) is Order.CONCURRENT
    # whoever has seen both dominates both after a bump
    m = bump(merge(bump(base, p), bump(base, q)), p)
    assert dominates(m, bump(base, p)) and dominates(m, bump(base, q))
