"""What a running peer is doing, as one JSON-able dict: computed when someone asks (``syncfs
status``, the tests, the benchmarks ask over the control socket), never written on a timer.

Pure: it reads the figures of the parts it is given and touches nothing else. Each part is
seen through a narrow Protocol naming exactly what is read of it, so the snapshot does not
depend on how the engine is put together.
"""

import dataclasses
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol


class PeerFigures(Protocol):
    """The peer as a whole (the engine)."""

    @property
    def mountpoint(self) -> str: ...
    @property
    def peer_id(self) -> str: ...
    @property
    def on_demand(self) -> bool: ...


class PauseFigures(Protocol):
    @property
    def paused(self) -> str: ...


class ErrorFigures(Protocol):
    @property
    def recent(self) -> Sequence[tuple[float, str]]: ...


class RulesFigures(Protocol):
    @property
    def errors(self) -> Sequence[str]: ...


class TallyFigures(Protocol):
    def as_dict(self) -> dict[str, object]:
        """count, by_rule (pattern: count) and the first few paths."""


class IgnoreFigures(Protocol):
    @property
    def rules(self) -> RulesFigures: ...
    def tally(self) -> TallyFigures:
        """The ignored paths, counted by the rule that ignores each (scans the tree)."""


class StoreFigures(Protocol):
    @property
    def root(self) -> Path: ...
    @property
    def last_seq(self) -> int: ...
    def outbox_len(self) -> int: ...
    def counts(self) -> dict[str, int]: ...
    def conflict_paths(self) -> list[str]: ...


class PoolFigures(Protocol):
    """The peer's links to other peers, and what came over them."""

    @property
    def peers(self) -> Collection[str]: ...
    @property
    def bytes_received(self) -> int: ...
    @property
    def received_from(self) -> Mapping[str, int]: ...
    def linked(self) -> list[str]: ...


class EntryFigures(Protocol):
    @property
    def size(self) -> int: ...
    @property
    def chunks(self) -> Sequence[object]: ...


class RowFigures(Protocol):
    @property
    def entry(self) -> EntryFigures: ...


class FillFigures(Protocol):
    @property
    def filling(self) -> bool: ...
    @property
    def last_error(self) -> str: ...


class PartialFigures(Protocol):
    """One file whose bytes are not all here yet."""

    @property
    def path(self) -> str: ...
    @property
    def row(self) -> RowFigures: ...
    @property
    def present(self) -> Collection[int]: ...
    @property
    def bytes_present(self) -> int: ...
    @property
    def downloading(self) -> bool: ...
    @property
    def fill(self) -> FillFigures: ...


class DownloadFigures(Protocol):
    @property
    def partials(self) -> Mapping[int, PartialFigures]: ...
    @property
    def bytes_local(self) -> int: ...


class CacheFigures(Protocol):
    """Pins and the cache limit of an --on-demand peer."""

    @property
    def pins(self) -> Collection[str]: ...
    @property
    def cache_size(self) -> int: ...
    def usage(self) -> int: ...


class ServerFigures(Protocol):
    @property
    def bytes_sent(self) -> int: ...


class LinkFigures(Protocol):
    """The link to the tracker."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def connected(self) -> bool: ...
    @property
    def last_error(self) -> str: ...
    @property
    def state(self) -> str: ...


@dataclasses.dataclass(frozen=True)
class StatusSources:
    """The parts a status is read from, handed over once by whoever builds the peer."""

    peer: PeerFigures
    fills: PauseFigures
    errors: ErrorFigures
    ignores: IgnoreFigures
    store: StoreFigures
    pool: PoolFigures
    downloads: DownloadFigures
    cache: CacheFigures
    server: ServerFigures
    link: LinkFigures
    log_file: str = ""


def snapshot(src: StatusSources, full: bool = True) -> dict[str, Any]:
    """What the peer is doing now. ``full`` adds figures that scan the whole tree (file
    counts, conflict copies, ignored paths, cache use): for a person's request, not for a script that
    asks many times a second."""
    peer, store, pool, cache = src.peer, src.store, src.pool, src.cache
    extra: dict[str, Any] = {}
    if full:
        counts = store.counts()
        extra = {"files": counts["files"], "dirs": counts["dirs"], "conflicts": store.conflict_paths(),
                 "ignored": src.ignores.tally().as_dict(), "cache_used": cache.usage()}
    return {
        **extra,
        "mountpoint": peer.mountpoint,
        "store": str(store.root),
        "log_file": src.log_file,
        "paused": src.fills.paused,
        "ignore_errors": src.ignores.rules.errors,
        "peer_id": peer.peer_id,
        "tracker": {"address": f"{src.link.host}:{src.link.port}", "connected": src.link.connected,
                    "state": src.link.state, "last_error": src.link.last_error, "last_seq": store.last_seq},
        "peers_online": sorted(pool.peers),
        "on_demand": peer.on_demand,
        "pinned": sorted(cache.pins),
        "cache_size": cache.cache_size,
        "outbox": store.outbox_len(),
        "links": pool.linked(),
        "bytes_received": pool.bytes_received,
        "bytes_received_from": dict(sorted(pool.received_from.items())),
        "bytes_sent": src.server.bytes_sent,
        "bytes_reused_locally": src.downloads.bytes_local,
        "stale": [
            {"path": p.path, "size": p.row.entry.size, "chunks": len(p.row.entry.chunks),
             "present": len(p.present), "bytes_present": p.bytes_present,
             "state": "downloading" if p.downloading else "stale",
             "filling": p.fill.filling, "last_error": p.fill.last_error}
            for p in src.downloads.partials.values()
        ],
        "errors": [{"time": t, "message": m} for t, m in src.errors.recent],
        "updated": time.time(),
    }
