"""Both ends of the hello / challenge / auth exchange that opens every link.

The client speaks first and reveals only its peer id and a nonce; the server proves it
knows the share secret before the client proves it does; only then does the server say
anything about the share (ACCEPT).
"""

from .protocol import PROTO_NAME, PROTO_VERSION, auth
from .protocol.messages import Accept, Auth, Challenge, Hello, Reject
from .wire import FramedStream

HANDSHAKE_TIMEOUT = 10.0


class HandshakeFailed(Exception):
    """The link was refused during the opening exchange; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


async def client_handshake(
    link: FramedStream, secret: bytes, hello: Hello
) -> tuple[Challenge, Accept]:
    """Run the client side; returns the server's challenge (for its id) and its ACCEPT."""
    await link.send(hello)
    reply = await link.receive_within(HANDSHAKE_TIMEOUT)
    if isinstance(reply, Reject):
        raise HandshakeFailed(f"refused: {reply.reason}")
    if not isinstance(reply, Challenge):
        raise HandshakeFailed(f"expected challenge, got {reply.TYPE}")
    if not auth.check(auth.server_proof(secret, hello.nonce, reply.nonce), reply.proof):
        raise HandshakeFailed("the server does not know the share secret")
    await link.send(Auth(auth.client_proof(secret, hello.nonce, reply.nonce)))
    answer = await link.receive_within(HANDSHAKE_TIMEOUT)
    if isinstance(answer, Reject):
        raise HandshakeFailed(f"refused: {answer.reason}")
    if not isinstance(answer, Accept):
        raise HandshakeFailed(f"expected accept, got {answer.TYPE}")
    return reply, answer


async def server_handshake(
    link: FramedStream, secret: bytes, role: str, server_id: str = "tracker"
) -> Hello:
    """Run the server side up to (not including) ACCEPT; returns the client's HELLO.

    The caller decides between ACCEPT and REJECT on what the HELLO says.
    """
    hello = await link.receive_within(HANDSHAKE_TIMEOUT)
    if not isinstance(hello, Hello):
        raise HandshakeFailed(f"expected hello, got {hello.TYPE}")
    if hello.proto != PROTO_NAME or hello.ver != PROTO_VERSION:
        reason = f"unsupported protocol {hello.proto!r} version {hello.ver}; this side speaks {PROTO_NAME} {PROTO_VERSION}"
        await link.send(Reject(reason))
        raise HandshakeFailed(reason)
    if hello.role != role:
        await link.send(Reject(f"this endpoint serves {role!r} links"))
        raise HandshakeFailed(f"client asked for role {hello.role!r}")
    nonce = auth.new_nonce()
    await link.send(Challenge(nonce, auth.server_proof(secret, hello.nonce, nonce), server_id))
    answer = await link.expect(Auth, HANDSHAKE_TIMEOUT)
    if not auth.check(auth.client_proof(secret, hello.nonce, nonce), answer.proof):  # type: ignore[attr-defined]
        await link.send(Reject("authentication failed"))
        raise HandshakeFailed(f"peer {hello.peer_id} failed authentication")
    return hello


def make_hello(role: str, peer_id: str, **extra: object) -> Hello:
    return Hello(PROTO_NAME, PROTO_VERSION, role, peer_id, auth.new_nonce(), **extra)  # type: ignore[arg-type]


__all__ = ["HandshakeFailed", "client_handshake", "server_handshake", "make_hello"]
