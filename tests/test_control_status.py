"""The status of a running peer is computed when asked, over the control socket, from the
figures of the parts it is given; a status that cannot be read (a store that fails) is
refused with a reason and never ends the peer."""

import logging
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio

from syncfs.control import ControlError, ControlServer, request
from syncfs.control_handler import ControlHandler
from syncfs.status import StatusSources, snapshot

pytestmark = pytest.mark.timeout(30)


class FakeStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.last_seq = 7
        self.failures = 0  # how many of the next reads of the tree fail

    def outbox_len(self) -> int:
        return 2

    def counts(self) -> dict[str, int]:
        if self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("disk I/O error")
        return {"files": 3, "dirs": 1, "symlinks": 0}

    def conflict_paths(self) -> list[str]:
        return ["a.sync-conflict-1"]


class FakeIgnores:
    rules = SimpleNamespace(errors=[])

    def __init__(self) -> None:
        self.scans = 0

    def tally(self) -> SimpleNamespace:
        self.scans += 1
        return SimpleNamespace(as_dict=lambda: {"count": 2, "by_rule": {"*.swp": 2}, "paths": ["a.swp", "b.swp"]})


class FakeCache:
    pins = {"b", "a"}
    cache_size = 1000

    def usage(self) -> int:
        return 600


class FakeTransfers:
    on_demand = True

    def __init__(self) -> None:
        self.paused = ""

    def set_paused(self, mode: str) -> None:
        self.paused = mode


def sources(root: Path) -> StatusSources:
    entry = SimpleNamespace(size=300, chunks=[object(), object(), object()])
    partial = SimpleNamespace(path="big", row=SimpleNamespace(entry=entry), present={0}, bytes_present=100,
                              downloading=True, fill=SimpleNamespace(filling=True, last_error=""))
    peer = SimpleNamespace(mountpoint="/mnt", peer_id="me", on_demand=True)
    pool = SimpleNamespace(peers={"q": None, "p": None}, bytes_received=100, received_from={"q": 60, "p": 40},
                           linked=lambda: ["p"])
    return StatusSources(
        peer=peer, fills=SimpleNamespace(paused=""), errors=SimpleNamespace(recent=[(1.0, "oops")]),
        ignores=FakeIgnores(), store=FakeStore(root), pool=pool,
        downloads=SimpleNamespace(partials={5: partial}, bytes_local=9), cache=FakeCache(),
        server=SimpleNamespace(bytes_sent=50),
        link=SimpleNamespace(host="h", port=1, connected=True, state="connected", last_error=""), log_file="/log",
    )


def test_a_snapshot_is_built_from_the_figures_of_the_parts_given(tmp_path: Path) -> None:
    s = snapshot(sources(tmp_path))
    s.pop("updated")
    assert s == {
        "files": 3, "dirs": 1, "conflicts": ["a.sync-conflict-1"], "cache_used": 600,
        "ignored": {"count": 2, "by_rule": {"*.swp": 2}, "paths": ["a.swp", "b.swp"]},
        "mountpoint": "/mnt", "store": str(tmp_path), "log_file": "/log", "paused": "", "ignore_errors": [],
        "peer_id": "me", "tracker": {"address": "h:1", "connected": True, "state": "connected", "last_error": "", "last_seq": 7},
        "peers_online": ["p", "q"], "on_demand": True, "pinned": ["a", "b"], "cache_size": 1000, "outbox": 2,
        "links": ["p"], "bytes_received": 100, "bytes_received_from": {"p": 40, "q": 60}, "bytes_sent": 50,
        "bytes_reused_locally": 9,
        "stale": [{"path": "big", "size": 300, "chunks": 3, "present": 1, "bytes_present": 100,
                   "state": "downloading", "filling": True, "last_error": ""}],
        "errors": [{"time": 1.0, "message": "oops"}],
    }
    src = sources(tmp_path)
    brief = snapshot(src, full=False)
    assert not {"files", "dirs", "conflicts", "cache_used", "ignored"} & set(brief)
    assert src.ignores.scans == 0  # a brief status never scans the tree for ignored paths


def test_a_status_that_cannot_be_read_is_refused_and_the_peer_goes_on(tmp_path: Path, caplog) -> None:
    src = sources(tmp_path)
    src.store.failures = 1
    transfers = FakeTransfers()
    handler = ControlHandler(transfers, pins=SimpleNamespace(), status=src)
    answers: list[object] = []

    def ask(payload: dict) -> object:
        try:
            return request(tmp_path, payload)
        except ControlError as exc:
            return exc

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(ControlServer(tmp_path, handler).run)
            for payload in ({"t": "status"}, {"t": "status"}, {"t": "status", "brief": True}, {"t": "pause"}):
                answers.append(await trio.to_thread.run_sync(ask, payload))
            nursery.cancel_scope.cancel()

    with caplog.at_level(logging.WARNING, logger="syncfs.control_handler"):
        trio.run(main)
    failed, full, brief, paused = answers
    assert isinstance(failed, ControlError) and "could not read the status: disk I/O error" in str(failed)
    assert [r.getMessage() for r in caplog.records] == ["could not read the status: disk I/O error"]
    assert isinstance(full, dict) and full["t"] == "status" and full["files"] == 3
    assert isinstance(brief, dict) and "files" not in brief and brief["outbox"] == 2
    assert paused == {"t": "ok", "paused": "soft"} and transfers.paused == "soft"
