"""Mutual challenge-response over the share secret (HMAC-SHA256).

The client sends a nonce in HELLO; the server answers with its own nonce and a proof
bound to both nonces; the client checks it before it proves itself. Neither side
reveals the secret, and a side that lacks it learns nothing but two random nonces.
"""

import hashlib
import hmac
import secrets

NONCE_SIZE = 32


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_SIZE)


def server_proof(secret: bytes, client_nonce: bytes, server_nonce: bytes) -> bytes:
    return hmac.digest(secret, b"syncfs-server\0" + client_nonce + server_nonce, hashlib.sha256)


def client_proof(secret: bytes, client_nonce: bytes, server_nonce: bytes) -> bytes:
    return hmac.digest(secret, b"syncfs-client\0" + server_nonce + client_nonce, hashlib.sha256)


def check(expected: bytes, got: bytes) -> bool:
    return hmac.compare_digest(expected, got)
