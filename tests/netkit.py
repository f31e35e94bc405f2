"""Protocol-level stand-ins for tests: join a tracker as a peer, serve or fetch chunks as one.

    me = identity("mallory")                      # in memory, cached by name
    link, accept = await join(host, port, tracker_fp, secret, me, addr=..., port=...)

Peers that serve chunks need their identity on disk (TLS reads it from files):
``identity_on_disk(tmp_path, "fake")``. ``PeerTLS`` keeps the trust of a stand-in peer
(the certificates the tracker lists), as a real peer's PeerPool does.
"""

from __future__ import annotations

from pathlib import Path

import trio

from syncfs.handshake import (
    HandshakeFailed,
    channel_binding,
    client_context,
    join_tracker,
    make_hello,
    p2p_hello,
    p2p_welcome,
    peer_id_of,
    server_context,
    tls_accept,
    tls_connect,
    trust,
)
from syncfs.identity import Identity
from syncfs.protocol.framing import DEFAULT_MAX_FRAME
from syncfs.protocol.messages import Accept, PeerInfo
from syncfs.wire import FramedStream

_IDENTITIES: dict[str, Identity] = {}
NAMES: dict[str, str] = {}  # peer id -> the name a test gave it


def identity(name: str) -> Identity:
    """An in-memory identity, the same for the same name within a test run."""
    if name not in _IDENTITIES:
        _IDENTITIES[name] = Identity.ephemeral(name)
        NAMES[_IDENTITIES[name].id] = name
    return _IDENTITIES[name]


def pid(name: str) -> str:
    """The peer id of the identity called ``name``."""
    return identity(name).id


def named(peer_ids) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
    """Peer ids back to the names the test gave them (unknown ids stay as they are)."""
    return tuple(NAMES.get(p, p) for p in peer_ids)


def identity_on_disk(directory: Path, name: str) -> Identity:
    return Identity.load_or_create(directory / name, name)


def tracker_fingerprint(state_dir: Path) -> str:
    """The fingerprint of the tracker whose state is in ``state_dir``."""
    return Identity.load_or_create(state_dir / "identity").id


async def open_tracker_tls(host: str, port: int, tracker_fp: str) -> tuple[FramedStream, bytes]:
    """TCP + TLS to a tracker, pinned to ``tracker_fp``; returns the link and the channel binding."""
    stream = await trio.open_tcp_stream(host, port)
    try:
        tls = await tls_connect(stream, client_context(), tracker_fp, "the tracker")
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return FramedStream(tls), channel_binding(tls)


async def join(tracker_host: str, tracker_port: int, tracker_fp: str, secret: bytes, me: Identity,
               **hello: object) -> tuple[FramedStream, Accept]:
    """Join the tracker as ``me``, as a peer's tracker link does; ``hello``: HELLO's fields
    (addr, port, last_seq)."""
    link, binding = await open_tracker_tls(tracker_host, tracker_port, tracker_fp)
    try:
        msg = make_hello("tracker", me.id, cert=me.cert_der, **hello)
        accept = await join_tracker(link, me, secret, tracker_fp, binding, msg)
    except BaseException:
        await link.aclose()
        raise
    link.max_frame = accept.max_frame
    return link, accept


class PeerTLS:
    """TLS for a stand-in peer: trusts exactly the peers it was told of (``learn``)."""

    def __init__(self, me: Identity) -> None:
        self.me = me
        self.server = server_context(me, mutual=True)
        self.client = client_context(me)
        self.known: dict[str, PeerInfo] = {}

    def learn(self, peers: tuple[PeerInfo, ...]) -> None:
        for p in peers:
            if p.cert and p.peer_id not in self.known:
                trust(self.server, p.cert)
            self.known[p.peer_id] = p

    async def accept(self, stream: trio.SocketStream) -> FramedStream:
        """Server side of a chunk link, through ACCEPT; raises HandshakeFailed if refused."""
        tls = await tls_accept(stream, self.server, "a peer")
        link = FramedStream(tls)
        client = peer_id_of(tls) or ""
        await p2p_welcome(link, client)
        if client not in self.known:
            raise HandshakeFailed(f"{client} is not a known peer")
        await link.send(Accept(max_frame=DEFAULT_MAX_FRAME))
        link.max_frame = DEFAULT_MAX_FRAME
        return link

    async def connect(self, info: PeerInfo, local_address: str | None = None) -> FramedStream:
        """Client side of a chunk link to ``info`` (pinned to its id), through ACCEPT."""
        stream = await trio.open_tcp_stream(info.addr, info.port, local_address=local_address)
        try:
            tls = await tls_connect(stream, self.client, info.peer_id, "a peer")
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        link = FramedStream(tls)
        try:
            await p2p_hello(link, self.me)
        except BaseException:
            await link.aclose()
            raise
        link.max_frame = DEFAULT_MAX_FRAME
        return link
