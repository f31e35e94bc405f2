"""TLS and the opening exchange of both links.

Every link is TLS 1.3 (``trio.SSLStream``); identities are self-signed certificates known
by their SHA-256 fingerprint (``syncfs.identity``).

Peer → tracker: the peer pins the tracker's fingerprint from the join token. Inside TLS it
sends ``HELLO`` with its certificate; the tracker answers ``CHALLENGE {nonce}``; the peer
answers ``AUTH {proof, sig}``: an HMAC of the share secret and a signature with its key,
both over a transcript of both fingerprints, both nonces and the TLS channel binding
(``syncfs.protocol.auth``). Only then does the tracker say anything about the share
(``ACCEPT``); a peer without the secret, with a revoked identity, or behind a proxy that
terminates TLS gets ``REJECT`` and nothing else.

Peer → peer: mutual TLS. Each side trusts exactly the certificates the tracker handed out
for the peers online now; the client checks the server is the peer it meant to reach, the
server checks the client is on the tracker's list. ``HELLO`` → ``ACCEPT`` then only
negotiates the protocol version and frame limit.
"""

import hashlib
import ssl

import trio

from . import identity as ident
from .identity import Identity
from .protocol import PROTO_NAME, PROTO_VERSION, auth
from .protocol.framing import DEFAULT_MAX_FRAME
from .protocol.messages import Accept, Auth, Challenge, Hello, Reject
from .wire import BulkReceive, FramedStream

HANDSHAKE_TIMEOUT = 10.0
TLS_TIMEOUT = 10.0


class HandshakeFailed(Exception):
    """The link was refused during TLS or the opening exchange; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class Refused(HandshakeFailed):
    """The other side answered REJECT; ``told`` is its reason, as sent."""

    def __init__(self, told: str) -> None:
        super().__init__(f"refused: {told}")
        self.told = told


class NotAdmitted(Refused):
    """The tracker refused this peer for a reason that trying again does not cure: a wrong
    share secret, a revoked identity, another protocol. ``cause`` names which."""

    def __init__(self, told: str, cause: str) -> None:
        super().__init__(told)
        self.cause = cause  # "secret", "revoked" or "protocol"


class WrongServer(HandshakeFailed):
    """The server's certificate is not the one expected (a man in the middle, or the wrong
    address or token)."""

    def __init__(self, what: str, expected: str, got: str | None) -> None:
        super().__init__(
            f"{what} presented certificate {got or 'none'}, expected {expected}: refused "
            "(a man in the middle, or the wrong address)"
        )
        self.what = what
        self.expected = expected
        self.got = got


# what the tracker tells a peer it refuses for good; the peer tells them apart by these
AUTH_FAILED = "authentication failed"
REVOKED = "this peer has been revoked"
UNSUPPORTED = "unsupported protocol"


def _rejected(told: str) -> Refused:
    if told == AUTH_FAILED:
        return NotAdmitted(told, "secret")
    if told == REVOKED:
        return NotAdmitted(told, "revoked")
    if told.startswith(UNSUPPORTED):
        return NotAdmitted(told, "protocol")
    return Refused(told)


# --------------------------------------------------------------------------- TLS


def _base_context(purpose: int, me: Identity | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(purpose)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if purpose == ssl.PROTOCOL_TLS_CLIENT:
        # certificates are self-signed and pinned by fingerprint, not by name
        ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if me is not None:
        if me.cert_path is None or me.key_path is None:
            raise ValueError("an identity kept in memory only cannot serve TLS")
        ctx.load_cert_chain(me.cert_path, me.key_path)
    return ctx


def client_context(me: Identity | None = None) -> ssl.SSLContext:
    """For connecting: the server is checked by fingerprint after the handshake
    (``tls_connect``); ``me`` is presented as a client certificate if given."""
    return _base_context(ssl.PROTOCOL_TLS_CLIENT, me)


def server_context(me: Identity, *, mutual: bool = False) -> ssl.SSLContext:
    """For accepting. ``mutual``: require a client certificate from the trust store, which
    starts empty; add certificates with ``trust``."""
    ctx = _base_context(ssl.PROTOCOL_TLS_SERVER, me)
    if mutual:
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def trust(ctx: ssl.SSLContext, cert_der: bytes) -> None:
    """Let ``ctx`` accept the self-signed certificate ``cert_der`` from now on."""
    ctx.load_verify_locations(cadata=cert_der)


def peer_id_of(stream: trio.SSLStream[trio.abc.Stream]) -> str | None:
    der = stream.getpeercert(binary_form=True)
    return hashlib.sha256(der).hexdigest() if der else None


def channel_binding(stream: trio.SSLStream[trio.abc.Stream]) -> bytes:
    """This TLS session's channel binding (the same on both ends, different per session)."""
    try:
        return stream.get_channel_binding("tls-unique") or b""
    except (ValueError, ssl.SSLError):
        return b""


async def _tls_handshake(tls: trio.SSLStream[trio.abc.Stream], what: str) -> None:
    try:
        with trio.fail_after(TLS_TIMEOUT):
            await tls.do_handshake()
    except trio.TooSlowError:
        raise HandshakeFailed(f"TLS handshake with {what} timed out") from None
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
        cause = exc.__cause__ or exc
        raise HandshakeFailed(f"TLS handshake with {what} failed: {cause or type(cause).__name__}") from None


def _transport(stream: trio.abc.Stream, bulk: bool) -> trio.abc.Stream:
    # bulk: chunk links; the tracker's links carry small messages and keep trio's reads
    return BulkReceive(stream) if bulk and isinstance(stream, trio.SocketStream) else stream


async def tls_connect(stream: trio.abc.Stream, ctx: ssl.SSLContext, expect_id: str, what: str, *,
                      bulk: bool = False) -> trio.SSLStream[trio.abc.Stream]:
    """TLS client over ``stream``; the server's certificate must have fingerprint ``expect_id``."""
    tls = trio.SSLStream(_transport(stream, bulk), ctx, server_hostname=None)
    await _tls_handshake(tls, what)
    got = peer_id_of(tls)
    if got != expect_id:
        await trio.aclose_forcefully(tls)
        raise WrongServer(what, expect_id, got)
    return tls


async def tls_accept(stream: trio.abc.Stream, ctx: ssl.SSLContext, what: str, *,
                     bulk: bool = False) -> trio.SSLStream[trio.abc.Stream]:
    tls = trio.SSLStream(_transport(stream, bulk), ctx, server_side=True)
    await _tls_handshake(tls, what)
    return tls


# --------------------------------------------------------------------------- tracker link


async def join_tracker(link: FramedStream, me: Identity, secret: bytes, tracker_id: str,
                       binding: bytes, hello: Hello) -> Accept:
    """Peer side: prove the share secret to the tracker (already pinned by TLS)."""
    # the tracker is authenticated by its certificate: its frames may be large at once
    link.max_frame = DEFAULT_MAX_FRAME
    await link.send(hello)
    reply = await link.receive_within(HANDSHAKE_TIMEOUT)
    if isinstance(reply, Reject):
        raise _rejected(reply.reason)
    if not isinstance(reply, Challenge):
        raise HandshakeFailed(f"expected challenge, got {reply.TYPE}")
    t = auth.transcript(me.id, tracker_id, hello.nonce, reply.nonce, binding)
    await link.send(Auth(auth.join_proof(secret, t), me.sign(t)))
    return await _expect_accept(link)


async def admit_peer(link: FramedStream, tracker_id: str, secret: bytes, binding: bytes,
                     revoked: "set[str] | frozenset[str]") -> Hello:
    """Tracker side, up to (not including) ACCEPT; returns the peer's HELLO.

    The peer's id is the fingerprint of the certificate it sent, whose key signed the
    transcript. Refusals are sent as REJECT and raised as HandshakeFailed.
    """
    hello = await _expect_hello(link, "tracker")
    if not hello.cert or ident.fingerprint(hello.cert) != hello.peer_id:
        await _refuse(link, AUTH_FAILED, f"{hello.peer_id[:16]} sent no matching certificate")
    nonce = auth.new_nonce()
    await link.send(Challenge(nonce, tracker_id))
    answer = await link.expect(Auth, HANDSHAKE_TIMEOUT)
    assert isinstance(answer, Auth)
    t = auth.transcript(hello.peer_id, tracker_id, hello.nonce, nonce, binding)
    if not ident.verify_signature(hello.cert, t, answer.sig):
        await _refuse(link, AUTH_FAILED, f"peer {hello.peer_id} did not sign with its certificate's key")
    if not auth.check(auth.join_proof(secret, t), answer.proof):
        await _refuse(link, AUTH_FAILED, f"peer {hello.peer_id} failed authentication (wrong share secret, or a proxy in between)")
    if hello.peer_id in revoked:
        await _refuse(link, REVOKED, f"revoked peer {hello.peer_id} refused")
    return hello


# --------------------------------------------------------------------------- peer links


async def p2p_hello(link: FramedStream, me: Identity) -> Accept:
    """Client side of a chunk link (TLS already checked the server's identity)."""
    await link.send(make_hello("p2p", me.id))
    return await _expect_accept(link)


async def _expect_accept(link: FramedStream) -> Accept:
    """The server's last word of an opening: ACCEPT, or REJECT as HandshakeFailed."""
    answer = await link.receive_within(HANDSHAKE_TIMEOUT)
    if isinstance(answer, Reject):
        raise _rejected(answer.reason)
    if not isinstance(answer, Accept):
        raise HandshakeFailed(f"expected accept, got {answer.TYPE}")
    return answer


async def p2p_welcome(link: FramedStream, client_id: str) -> Hello:
    """Server side of a chunk link, up to ACCEPT; ``client_id`` came from mutual TLS."""
    hello = await _expect_hello(link, "p2p")
    if hello.peer_id != client_id:
        await _refuse(link, "peer id does not match the certificate", f"{client_id[:16]} said it was {hello.peer_id[:16]}")
    return hello


async def _expect_hello(link: FramedStream, role: str) -> Hello:
    hello = await link.receive_within(HANDSHAKE_TIMEOUT)
    if not isinstance(hello, Hello):
        raise HandshakeFailed(f"expected hello, got {hello.TYPE}")
    if hello.proto != PROTO_NAME or hello.ver != PROTO_VERSION:
        reason = f"{UNSUPPORTED} {hello.proto!r} version {hello.ver}; this side speaks {PROTO_NAME} {PROTO_VERSION}"
        await _refuse(link, reason, reason)
    if hello.role != role:
        await _refuse(link, f"this endpoint serves {role!r} links", f"client asked for role {hello.role!r}")
    return hello


async def _refuse(link: FramedStream, told: str, logged: str) -> None:
    await link.send(Reject(told))
    raise HandshakeFailed(logged)


def make_hello(role: str, peer_id: str, *, addr: str = "", port: int = 0, last_seq: int = 0,
               cert: bytes = b"") -> Hello:
    return Hello(PROTO_NAME, PROTO_VERSION, role, peer_id, auth.new_nonce(), addr=addr, port=port,
                 last_seq=last_seq, cert=cert)


__all__ = [
    "AUTH_FAILED", "REVOKED", "UNSUPPORTED", "HandshakeFailed", "NotAdmitted", "Refused", "WrongServer", "admit_peer", "channel_binding", "client_context", "join_tracker",
    "make_hello", "p2p_hello", "p2p_welcome", "peer_id_of", "server_context", "tls_accept",
    "tls_connect", "trust",
]
