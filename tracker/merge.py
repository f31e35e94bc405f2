"""The tracker's merge decisions: pure functions from (incoming entry, current row) to writes.

Nothing here touches SQLite or the network. ``decide`` is the whole rule set:

- no current row, or the incoming version dominates it: the incoming entry replaces it;
- the incoming version is equal or older: nothing happens (a resent outbox is idempotent);
- concurrent versions (a conflict): both sides survive somewhere. The winner stays at the
  path with the merged version (which dominates both, so every peer accepts it); a losing
  file or symlink moves to a ``name.sync-conflict-YYYYMMDD-HHMMSS-<peer>.ext`` path in the
  same directory. An edit beats a concurrent delete; a dir beats a file.

The winner of a conflict depends only on the two entries and their origins, never on the
order they arrived in, so every arrival order produces the same table.
"""

import dataclasses
from collections.abc import Callable, Collection, Mapping

import msgpack

from syncfs.protocol import versions
from syncfs.protocol.conflicts import CONFLICT_MARK, conflict_path, conflict_stamp  # noqa: F401 - used by tests
from syncfs.protocol.entries import Entry, Kind


@dataclasses.dataclass(frozen=True)
class Stored:
    """What the tracker keeps for one path, apart from its sequence number.

    ``origin`` is the peer that made the entry's last change; ``holders`` the peers that
    hold this version completely.
    """

    entry: Entry
    origin: str
    holders: tuple[str, ...]


Lookup = Callable[[str], Stored | None]


def decide(incoming: Entry, peer_id: str, current: Stored | None, lookup: Lookup) -> list[Stored]:
    """The rows to write for ``incoming`` from ``peer_id``, in the order they get their seqs.

    ``current`` is the row at ``incoming.path`` (None if there is none); ``lookup`` answers
    for any other path (it is used to place a conflict copy). An empty list means the
    update is ignored. A conflict copy comes before the winner.
    """
    holders = holders_for(incoming, peer_id, current)
    new = Stored(dataclasses.replace(incoming, held_by=()), peer_id, holders)
    if current is None:
        return [new]
    order = versions.compare(incoming.version, current.entry.version)
    if order is versions.Order.AFTER:
        return [new]
    if order is not versions.Order.CONCURRENT:
        return []
    return resolve_conflict(new, current, lookup)


def holders_for(incoming: Entry, peer_id: str, current: Stored | None) -> tuple[str, ...]:
    """Who holds ``incoming``: its sender, unless the sender says it does not (a chmod or
    rename of a file it has not fetched yet); then whoever held the same bytes here, else
    the holders the sender names (those of the row it renamed)."""
    if incoming.held:
        return (peer_id,)
    if current is not None and not current.entry.deleted and current.entry.chunks == incoming.chunks \
            and current.holders:
        return current.holders
    return tuple(dict.fromkeys(h for h in incoming.held_by if h != peer_id))


def resolve_conflict(a: Stored, b: Stored, lookup: Lookup) -> list[Stored]:
    """Merge two concurrent rows at the same path; symmetric in ``a`` and ``b``."""
    merged = versions.merge(a.entry.version, b.entry.version)
    if a.entry.deleted != b.entry.deleted:
        live = b if a.entry.deleted else a
        return [with_version(live, merged)]
    winner, loser = (a, b) if beats(a, b) else (b, a)
    out = []
    if not winner.entry.deleted and loser.entry.kind is not Kind.DIR:
        out.append(conflict_copy(loser, lookup))
    out.append(with_version(winner, merged))
    return out


def beats(a: Stored, b: Stored) -> bool:
    """True if ``a`` wins a conflict against ``b``: a strict total order on rows.

    A dir beats a non-dir; then the newer mtime; then the larger origin; then, so that
    the order is total even for two entries from one peer, the larger wire encoding.
    """
    return rank(a) > rank(b)


def rank(s: Stored) -> tuple[bool, int, str, bytes]:
    e = s.entry
    return (e.kind is Kind.DIR, e.mtime_ns, s.origin, canonical(e))


def canonical(entry: Entry) -> bytes:
    wire = entry.to_wire()
    wire["version"] = sorted(wire["version"].items())
    return msgpack.packb(wire, use_bin_type=True)


def with_version(s: Stored, version: Mapping[str, int]) -> Stored:
    return dataclasses.replace(s, entry=dataclasses.replace(s.entry, version=dict(version)))


def conflict_copy(loser: Stored, lookup: Lookup) -> Stored:
    """The loser of a conflict as a new entry at a free conflict path next to its own.

    A live entry at a candidate path makes it taken; a tombstone there does not, and the
    copy's version is merged over the tombstone's so that every peer accepts it.
    """
    for n in range(1_000_000):
        path = conflict_path(loser.entry.path, loser.entry.mtime_ns, loser.origin, n)
        there = lookup(path)
        if there is None or there.entry.deleted:
            # {origin: 1} over nothing; over a tombstone, one more than it for the origin,
            # so the copy strictly dominates it and every peer accepts it
            version = versions.bump(there.entry.version if there else {}, loser.origin)
            entry = dataclasses.replace(loser.entry, path=path, version=version)
            return Stored(entry, loser.origin, loser.holders)
    raise RuntimeError(f"no free conflict path for {loser.entry.path!r}")


def add_holder(current: Stored | None, peer_id: str, version: Mapping[str, int]) -> Stored | None:
    """The row with ``peer_id`` as a holder if it completed the current version, else None."""
    if current is None or current.entry.deleted:
        return None
    if versions.compare(current.entry.version, version) is not versions.Order.EQUAL:
        return None
    if peer_id in current.holders:
        return None
    return dataclasses.replace(current, holders=(*current.holders, peer_id))


def drop_holder(current: Stored | None, peer_id: str, version: Mapping[str, int],
                online: Collection[str]) -> Stored | str:
    """The row without ``peer_id`` among its holders, or why that is refused.

    A peer may stop holding the current version of a path only while another holder of it
    is online (``online``: the peers connected now): the tracker sees every withdrawal in
    turn, so of two peers that free the same version at once the second is refused, and
    the last copy never goes. A peer that is not a holder gets the row unchanged (a
    repeated request after a lost link): it was never counted on.
    """
    if current is None or current.entry.deleted:
        return "the path is not in the table (deleted?)"
    if versions.compare(current.entry.version, version) is not versions.Order.EQUAL:
        return "a newer version replaced it"
    if peer_id not in current.holders:
        return current
    others = [h for h in current.holders if h != peer_id]
    if not any(h in online for h in others):
        if others:
            return "no other holder is online (this is the only copy reachable now)"
        return "this peer holds the only copy"
    return dataclasses.replace(current, holders=tuple(others))
