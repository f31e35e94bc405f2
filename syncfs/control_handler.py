"""What a running peer answers on its control socket (see control.py): one request map in,
one answer map out."""

import logging
import os
import sqlite3
from collections.abc import Callable
from typing import Any, Protocol

from .control import ControlError
from .pinning import PinError, check_paths
from .status import StatusSources, snapshot

log = logging.getLogger(__name__)


class Transfers(Protocol):
    """What ``pause`` and ``resume`` change."""

    @property
    def on_demand(self) -> bool: ...
    def set_paused(self, mode: str) -> None: ...


class Pins(Protocol):
    def pin(self, paths: list[str]) -> dict[str, Any]: ...
    async def unpin(self, paths: list[str]) -> dict[str, Any]: ...


class ControlHandler:
    """Answers the command line's requests to a running peer."""

    def __init__(self, transfers: Transfers, pins: Pins, status: StatusSources,
                 on_stop: Callable[[], None] = lambda: None) -> None:
        self.transfers = transfers
        self.pins = pins
        self.status = status
        self.on_stop = on_stop

    async def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        t = request.get("t")
        if t == "status":
            try:
                # brief: without the figures that scan the tree, for scripts that ask often
                return {"t": "status", **snapshot(self.status, full=request.get("brief") is not True)}
            except (OSError, sqlite3.Error) as exc:
                # the status is only a view: failing to read it must not take the peer down
                log.warning("could not read the status: %s", exc)
                raise ControlError(f"could not read the status: {exc}") from None
        if t == "pause":
            mode = "hard" if request.get("hard") is True else "soft"
            # Downloads stop; uploads go on, or this peer's own new writes could not reach
            # anyone while it is paused.
            self.transfers.set_paused(mode)
            return {"t": "ok", "paused": mode}
        if t == "resume":
            self.transfers.set_paused("")
            return {"t": "ok", "paused": ""}
        if t == "stop":
            self.on_stop()  # the answer goes out before the loop winds down
            return {"t": "ok", "pid": os.getpid()}
        if t in ("pin", "unpin"):
            try:
                paths = check_paths(request.get("paths"))
                if t == "pin":
                    return {"t": "ok", "on_demand": self.transfers.on_demand, **self.pins.pin(paths)}
                return {"t": "ok", "on_demand": self.transfers.on_demand, **await self.pins.unpin(paths)}
            except PinError as exc:
                raise ControlError(str(exc)) from None
        raise ControlError(f"unknown control command {str(t)[:40]!r}")
