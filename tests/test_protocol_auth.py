"""Challenge-response proofs over the share secret."""

from hypothesis import given, settings
from hypothesis import strategies as st

from syncfs.protocol import auth

FAST = settings(max_examples=100, deadline=None)
secrets_ = st.binary(min_size=1, max_size=64)
nonces = st.binary(min_size=16, max_size=64)


def test_nonces_are_fresh() -> None:
    seen = {auth.new_nonce() for _ in range(100)}
    assert len(seen) == 100
    assert all(len(n) == auth.NONCE_SIZE >= 16 for n in seen)


@FAST
@given(secrets_, nonces, nonces)
def test_proofs_verify_with_the_secret(secret: bytes, cn: bytes, sn: bytes) -> None:
    assert auth.check(auth.server_proof(secret, cn, sn), auth.server_proof(secret, cn, sn))
    assert auth.check(auth.client_proof(secret, cn, sn), auth.client_proof(secret, cn, sn))
    assert len(auth.server_proof(secret, cn, sn)) == 32


@FAST
@given(secrets_, nonces, nonces)
def test_server_and_client_proofs_differ(secret: bytes, cn: bytes, sn: bytes) -> None:
    # a server's proof can never be replayed as a client's, even with the nonces swapped
    server = auth.server_proof(secret, cn, sn)
    assert server != auth.client_proof(secret, cn, sn)
    assert server != auth.client_proof(secret, sn, cn)


@FAST
@given(secrets_, secrets_, nonces, nonces)
def test_a_wrong_secret_fails(secret: bytes, other: bytes, cn: bytes, sn: bytes) -> None:
    if other == secret:
        return
    assert not auth.check(auth.server_proof(secret, cn, sn), auth.server_proof(other, cn, sn))
    assert not auth.check(auth.client_proof(secret, cn, sn), auth.client_proof(other, cn, sn))


@FAST
@given(secrets_, nonces, nonces, nonces)
def test_proofs_are_bound_to_both_nonces(secret: bytes, cn: bytes, sn: bytes, x: bytes) -> None:
    proof = auth.server_proof(secret, cn, sn)
    if x != cn:
        assert not auth.check(auth.server_proof(secret, x, sn), proof)
    if x != sn:
        assert not auth.check(auth.server_proof(secret, cn, x), proof)


def test_check_refuses_different_lengths() -> None:
    proof = auth.client_proof(b"s", b"c" * 32, b"s" * 32)
    assert not auth.check(proof, proof[:-1])
    assert not auth.check(proof, b"")
