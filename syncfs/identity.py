"""Who a peer or tracker is: a key pair and a self-signed certificate, made on first start.

An identity's id is the SHA-256 fingerprint of its certificate (DER), in hex: the same
string ``openssl x509 -noout -fingerprint -sha256`` prints, without the colons. Peers use
it as their peer id; the join token carries the tracker's.
"""

import datetime
import hashlib
import logging
import os
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

log = logging.getLogger(__name__)

CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
VALID_DAYS = 100 * 365
SIGNATURE_HASH = hashes.SHA256()


class IdentityError(Exception):
    """The identity files exist but cannot be used."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def fingerprint(cert_der: bytes) -> str:
    return hashlib.sha256(cert_der).hexdigest()


class Identity:
    """A private key and its self-signed certificate, on disk (``cert_path``/``key_path``)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate,
                 cert_path: Path | None = None, key_path: Path | None = None) -> None:
        self.key = key
        self.cert = cert
        self.cert_der = cert.public_bytes(serialization.Encoding.DER)
        self.id = fingerprint(self.cert_der)
        self.cert_path = cert_path
        self.key_path = key_path

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(SIGNATURE_HASH))

    @classmethod
    def ephemeral(cls, name: str = "syncfs") -> "Identity":
        """A new identity kept in memory only (it cannot serve TLS: no files)."""
        key, cert = _make(name)
        return cls(key, cert)

    @classmethod
    def load_or_create(cls, directory: Path, name: str = "syncfs") -> "Identity":
        """The identity kept in ``directory`` (cert.pem, key.pem mode 0600), made if missing."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        cert_path, key_path = directory / CERT_FILE, directory / KEY_FILE
        if not key_path.exists():
            _create(cert_path, key_path, name)
        try:
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise IdentityError(directory, f"unusable identity: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
            raise IdentityError(directory, "the key does not match the certificate")
        return cls(key, cert, cert_path, key_path)


def _make(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    # a unique subject and key identifiers: OpenSSL finds a trusted certificate by its
    # subject, so two peers named alike must never be mistaken for one another
    unique = f"{name} {secrets.token_hex(8)}"
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, unique)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        # a self-signed trust anchor: peers put each other's certificates in their trust
        # store, so OpenSSL accepts exactly the certificates the tracker handed out
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _create(cert_path: Path, key_path: Path, name: str) -> None:
    key, cert = _make(name)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp_key = key_path.with_suffix(".tmp")
    fd = os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
        f.flush()
        os.fsync(f.fileno())
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp_key, key_path)  # the key last: its presence means the pair is whole
    log.info("created identity %s in %s", fingerprint(cert.public_bytes(serialization.Encoding.DER)), key_path.parent)


def verify_signature(cert_der: bytes, data: bytes, signature: bytes) -> bool:
    """True if ``signature`` over ``data`` was made with the key of ``cert_der``."""
    try:
        public = x509.load_der_x509_certificate(cert_der).public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey):
            return False
        public.verify(signature, data, ec.ECDSA(SIGNATURE_HASH))
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def cert_pem(cert_der: bytes) -> str:
    """PEM text of a DER certificate (for an SSLContext's trust store)."""
    return x509.load_der_x509_certificate(cert_der).public_bytes(serialization.Encoding.PEM).decode()
