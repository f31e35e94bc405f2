"""Join tokens: everything a peer needs to join a share, in one copyable string.

    syncfs://SECRET@HOST:PORT/TRACKER_FINGERPRINT

The secret is percent-encoded; an IPv6 host is in brackets. Whoever holds a token can
join the share: treat it like a password.
"""

import dataclasses
import re
from urllib.parse import quote, unquote, urlsplit

SCHEME = "syncfs"
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


class BadToken(ValueError):
    """The text is not a join token; the message says what is wrong with it."""


@dataclasses.dataclass(frozen=True)
class Invite:
    host: str
    port: int
    fingerprint: str
    secret: str

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{SCHEME}://{quote(self.secret, safe='')}@{host}:{self.port}/{self.fingerprint}"


def looks_like_token(text: str) -> bool:
    return text.startswith(f"{SCHEME}://")


def parse(text: str) -> Invite:
    text = text.strip()
    if not looks_like_token(text):
        raise BadToken(f"a join token starts with {SCHEME}:// (the tracker prints one with --print-invite)")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise BadToken(f"malformed join token: {exc}") from None
    if not parts.hostname or port is None:
        raise BadToken("the join token names no tracker HOST:PORT")
    if parts.password is not None or not parts.username:
        raise BadToken("the join token holds no share secret")
    fingerprint = parts.path.strip("/").lower()
    if not _FINGERPRINT.fullmatch(fingerprint):
        raise BadToken("the join token's tracker fingerprint is not 64 hex digits")
    secret = unquote(parts.username)
    return Invite(parts.hostname, port, fingerprint, secret)
