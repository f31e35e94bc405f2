"""This peer's claims to the tracker about the bytes it holds: HAVE (it holds a version
completely, so list it as a holder) and DROP (it wants to free its copy, which the tracker
grants unless it is the last one).

Both are durable: a claim stays in the store until a table row or an answer settles it, so a
restart or a new tracker link sends it again. ``ClaimSender`` decides, per link, which claims
that link has not carried yet; it is pure and sends HAVEs before DROPs, so that the tracker
never sees an older HAVE after a DROP and lists us again for bytes we have freed.
"""

from . import store as store_mod
from .protocol.messages import Drop, Have, TableRow
from .wakeup import Wakeup


class Claims:
    def __init__(self, store: "store_mod.Store", peer_id: str) -> None:
        self._store = store
        self._peer_id = peer_id
        self._drop_serial: dict[str, int] = {}  # requests per path: a new one is sent anew
        self.changed = Wakeup()

    # -- HAVE ------------------------------------------------------------------------------

    def have(self, path: str, version: dict[str, int]) -> None:
        """This peer holds ``path`` at ``version`` completely: kept until the tracker lists it."""
        self._store.have_put(path, version)
        self.changed.set()

    def settle_have(self, row: TableRow) -> None:
        """A table row for a path with a HAVE pending: settled once it lists us, or names
        another version (nothing more to say about the old one)."""
        have = self._store.pending_have(row.entry.path)
        if have is not None and (have != row.entry.version or self._peer_id in row.holders):
            self._store.have_settled(row.entry.path)

    def withdraw_have(self, path: str) -> None:
        """The bytes are being freed: a HAVE still queued must not list us again."""
        self._store.have_settled(path)

    # -- DROP ------------------------------------------------------------------------------

    def request_drop(self, path: str, version: dict[str, int]) -> None:
        self._store.drop_put(path, version)
        self._drop_serial[path] = self._drop_serial.get(path, 0) + 1
        self.changed.set()

    def drop_pending(self, path: str) -> dict[str, int] | None:
        return self._store.drop_pending(path)

    def drop_done(self, path: str) -> None:
        self._store.drop_done(path)

    # -- for the link ------------------------------------------------------------------------

    def pending(self) -> tuple[list[Have], list[tuple[str, dict[str, int], int]]]:
        """Every unsettled claim: the HAVEs, and each DROP with its request serial."""
        drops = [(path, version, self._drop_serial.get(path, 0)) for path, version in self._store.pending_drops()]
        return self._store.pending_haves(), drops


class ClaimSender:
    """What one tracker link has sent of the claims; ``due`` gives what it must send now."""

    def __init__(self) -> None:
        self._haves: set[tuple[str, bytes]] = set()
        self._drops: set[tuple[str, bytes]] = set()

    def due(self, haves: list[Have], drops: list[tuple[str, dict[str, int], int]]) -> list[Have | Drop]:
        out: list[Have | Drop] = []
        for have in haves:
            key = (have.path, _version_key(have.version))
            if key not in self._haves:
                self._haves.add(key)
                out.append(have)
        # keyed by request too: a path refused before may be asked again later
        pending = {(path, _version_key(version) + b"#%d" % serial): (path, version)
                   for path, version, serial in drops}
        self._drops &= pending.keys()
        for key, (path, version) in pending.items():
            if key not in self._drops:
                self._drops.add(key)
                out.append(Drop(path, version))
        return out


def _version_key(version: dict[str, int]) -> bytes:
    return repr(sorted(version.items())).encode()
