"""Proof of the share secret, bound to one TLS session (HMAC-SHA256).

A peer joining the tracker proves it knows the share secret without revealing it: it
sends ``HMAC(secret, transcript)`` where the transcript names both certificate
fingerprints (the peer's, the tracker's as the peer saw it in TLS), both nonces and the
TLS session's channel binding. A proof taken from one connection is worth nothing on
another, and one relayed by a man in the middle (who must present a certificate of its
own) names the wrong fingerprints. The same transcript is signed with the peer's key,
which proves the peer owns the certificate it sent.
"""

import hashlib
import hmac
import secrets
import struct

NONCE_SIZE = 32
PROOF_SIZE = 32
_LABEL = b"syncfs-join-v3"


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_SIZE)


def transcript(client_id: str, server_id: str, client_nonce: bytes, server_nonce: bytes,
               binding: bytes) -> bytes:
    """The bytes both sides prove and sign: every part length-prefixed, so none can shift."""
    parts = (_LABEL, client_id.encode(), server_id.encode(), client_nonce, server_nonce, binding)
    return b"".join(struct.pack(">H", len(p)) + p for p in parts)


def join_proof(secret: bytes, transcript_: bytes) -> bytes:
    # HMAC pads its key with zero bytes, so "s" and "s\0" would be one key: key it with a
    # fixed-length digest of the secret instead (v3; v2 keyed it with the secret itself)
    key = hashlib.sha256(_LABEL + b"/secret\0" + secret).digest()
    return hmac.digest(key, transcript_, hashlib.sha256)


def check(expected: bytes, got: bytes) -> bool:
    return hmac.compare_digest(expected, got)
