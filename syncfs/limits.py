"""Bounds on connections that have not yet proved who they are."""

import collections
import contextlib
import logging
from collections.abc import Iterator

import trio

log = logging.getLogger(__name__)


class HandshakeSlots:
    """Connections still in their opening handshake, bounded in total and per address.

    When a bound is reached the *oldest* such connection is closed to make room, not the
    new one: a real peer finishes its handshake in milliseconds, so connections left idle
    by an attacker can hold slots only until someone else needs them, never lock others out.
    """

    def __init__(self, total: int, per_address: int) -> None:
        self.total = total
        self.per_address = per_address
        self._pending: collections.OrderedDict[trio.CancelScope, str] = collections.OrderedDict()
        self._per: collections.Counter[str] = collections.Counter()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._pending)

    def _evict_oldest(self, address: str | None) -> None:
        for scope, addr in self._pending.items():
            if address is None or addr == address:
                self._remove(scope)
                scope.cancel()
                self.evicted += 1
                return

    def _remove(self, scope: trio.CancelScope) -> None:
        addr = self._pending.pop(scope, None)
        if addr is not None:
            self._per[addr] -= 1
            if not self._per[addr]:
                del self._per[addr]

    @contextlib.contextmanager
    def hold(self, address: str) -> Iterator[trio.CancelScope]:
        """A cancel scope for the handshake of a connection from ``address``; it is cancelled
        if the connection is evicted. Enter it around the handshake."""
        if self._per[address] >= self.per_address:
            self._evict_oldest(address)
        if len(self._pending) >= self.total:
            self._evict_oldest(None)
        scope = trio.CancelScope()
        self._pending[scope] = address
        self._per[address] += 1
        try:
            yield scope
        finally:
            self._remove(scope)
