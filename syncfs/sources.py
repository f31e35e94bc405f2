"""Whom to ask for a chunk, and what their answers prove: pure decisions, no I/O.

A chunk is asked for from two kinds of peers. *Holders* are the peers the table names as
having the version. *Helpers* are peers that are not holders but announced the chunk
(HAS_CHUNKS: they are fetching the same version); asking them first spares the holders.

Only a holder's MISSING says something about the version: when every holder is online,
usable and answers MISSING, the version is *lost* (its bytes are gone from the share, and
waiting will not bring them back). Any other failure (a holder offline, unreachable,
quarantined, sending garbage; a helper answering MISSING) leaves it merely unavailable.
"""

import dataclasses
from collections.abc import Collection, Mapping, Sequence

# a peer that sent a corrupt chunk is not asked again for this long
BAD_PEER_QUARANTINE = 300.0


@dataclasses.dataclass(frozen=True)
class Plan:
    """The peers to ask for one chunk.

    ``helpers``: usable peers that announced it; ``holders``: usable online holders;
    ``elsewhere``: every holder the row names except this peer (usable or not);
    ``named``: the row names holders at all (a row that names nobody is never lost).
    """

    helpers: tuple[str, ...]
    holders: tuple[str, ...]
    elsewhere: tuple[str, ...]
    named: bool

    def order(self, turn: int) -> list[str]:
        """Helpers first, then holders; each group rotated by ``turn`` so that successive
        fetches spread over the peers."""
        return _rotate(self.helpers, turn) + _rotate(self.holders, turn)

    def nobody(self) -> bool:
        return not self.helpers and not self.holders

    def lost(self, missing_from: Collection[str]) -> bool:
        """Whether the answers so far prove the version lost: ``missing_from`` is the set
        of peers that answered MISSING (helpers among them prove nothing)."""
        if self.nobody():
            # only this peer is named (and lacks it): nobody else can have it
            return self.named and not self.elsewhere
        return (bool(self.holders) and len(self.holders) == len(self.elsewhere)
                and all(h in missing_from for h in self.holders))


def plan(want: bytes, holders: Sequence[str], *, me: str, online: Collection[str],
         announced: Mapping[str, Collection[bytes]], shunned: Collection[str]) -> Plan:
    """Whom to ask for chunk ``want`` of a row naming ``holders``.

    ``online``: the peers listed now; ``announced``: what each peer announced;
    ``shunned``: peers not to ask now (quarantined, or already failed this download).
    """
    elsewhere = tuple(h for h in holders if h != me)

    def usable(pid: str) -> bool:
        return pid in online and pid not in shunned

    candidates = tuple(h for h in elsewhere if usable(h))
    helpers = tuple(p for p, known in announced.items()
                    if want in known and p not in elsewhere and p != me and usable(p))
    if not holders and not helpers:
        # a row that names nobody (the conflict copy of a rename of a file its sender
        # had not fetched): whoever has these bytes under another name may answer
        helpers = tuple(p for p in online if p != me and usable(p))
    return Plan(helpers, candidates, elsewhere, bool(holders))


def _rotate(peers: tuple[str, ...], turn: int) -> list[str]:
    if not peers:
        return []
    start = turn % len(peers)
    return list(peers[start:] + peers[:start])


class Quarantine:
    """Peers that sent a corrupt chunk, not asked again until their time is up."""

    def __init__(self, period: float = BAD_PEER_QUARANTINE) -> None:
        self.period = period
        self._until: dict[str, float] = {}

    def add(self, pid: str, now: float) -> None:
        self._until[pid] = now + self.period

    def holds(self, pid: str, now: float) -> bool:
        return self._until.get(pid, 0.0) > now

    def held(self, now: float) -> set[str]:
        return {pid for pid, until in self._until.items() if until > now}
