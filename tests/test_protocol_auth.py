"""Proofs of the share secret, bound to both identities, both nonces and the TLS session."""

from hypothesis import given, settings
from hypothesis import strategies as st

from syncfs.protocol import auth

FAST = settings(max_examples=100, deadline=None)
secrets_ = st.binary(min_size=1, max_size=64)
nonces = st.binary(min_size=16, max_size=64)
ids = st.text("0123456789abcdef", min_size=64, max_size=64)
bindings = st.binary(min_size=0, max_size=64)


def test_nonces_are_fresh() -> None:
    seen = {auth.new_nonce() for _ in range(100)}
    assert len(seen) == 100
    assert all(len(n) == auth.NONCE_SIZE >= 16 for n in seen)


@FAST
@given(secrets_, ids, ids, nonces, nonces, bindings)
def test_proofs_verify_with_the_secret(secret, cid, sid, cn, sn, b) -> None:
    t = auth.transcript(cid, sid, cn, sn, b)
    assert auth.check(auth.join_proof(secret, t), auth.join_proof(secret, t))
    assert len(auth.join_proof(secret, t)) == auth.PROOF_SIZE


@FAST
@given(secrets_, secrets_, ids, ids, nonces, nonces, bindings)
def test_a_wrong_secret_fails(secret, other, cid, sid, cn, sn, b) -> None:
    if other == secret:
        return
    t = auth.transcript(cid, sid, cn, sn, b)
    assert not auth.check(auth.join_proof(secret, t), auth.join_proof(other, t))


def test_secrets_that_differ_only_by_trailing_zero_bytes_differ() -> None:
    # HMAC zero-pads its key: keyed with the bare secret, these proved the same
    t = auth.transcript("0" * 64, "0" * 64, bytes(16), bytes(16), b"")
    assert not auth.check(auth.join_proof(b"\x00", t), auth.join_proof(b"\x00\x00", t))
    assert not auth.check(auth.join_proof(b"s", t), auth.join_proof(b"s\x00", t))


@FAST
@given(secrets_, ids, ids, nonces, nonces, bindings, ids, nonces, bindings)
def test_proofs_are_bound_to_every_part(secret, cid, sid, cn, sn, b, x_id, x_nonce, x_b) -> None:
    proof = auth.join_proof(secret, auth.transcript(cid, sid, cn, sn, b))
    variants = [
        (x_id, sid, cn, sn, b), (cid, x_id, cn, sn, b), (cid, sid, x_nonce, sn, b),
        (cid, sid, cn, x_nonce, b), (cid, sid, cn, sn, x_b), (sid, cid, cn, sn, b),
        (cid, sid, sn, cn, b),
    ]
    for v in variants:
        if v != (cid, sid, cn, sn, b):
            assert not auth.check(auth.join_proof(secret, auth.transcript(*v)), proof)


def test_parts_cannot_shift_into_each_other() -> None:
    a = auth.transcript("ab", "c", b"n" * 16, b"m" * 16, b"")
    b = auth.transcript("a", "bc", b"n" * 16, b"m" * 16, b"")
    assert a != b
