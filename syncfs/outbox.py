"""The durable outbox: local changes waiting for the tracker to accept them."""

from . import store as store_mod
from .protocol.entries import Entry
from .protocol.versions import Order, compare
from .wakeup import Wakeup


class Outbox:
    """Local changes are added inside the transaction that records them, and leave once the
    tracker lists a version that includes them. The tracker link sends what is in it."""

    def __init__(self, store: "store_mod.Store") -> None:
        self._store = store
        self.changed = Wakeup()

    def add(self, entry: Entry) -> None:
        self._store.outbox_add(entry)
        self.changed.set()

    def has(self, path: str) -> bool:
        return self._store.outbox_has(path)

    def after(self, after_id: int, limit: int) -> list[tuple[int, Entry]]:
        return self._store.outbox_after(after_id, limit)

    def ack(self, entry: Entry) -> None:
        """The tracker lists ``entry``: what it includes need not be sent again."""
        done = [
            i for i, e in self._store.outbox_for(entry.path)
            if compare(entry.version, e.version) in (Order.EQUAL, Order.AFTER)
        ]
        if done:
            self._store.outbox_remove(done)
