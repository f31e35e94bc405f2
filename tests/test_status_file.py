"""The status file is a view: failing to write it (a full disk, its directory gone) is
logged once and retried, and never ends the peer."""

import json
import logging

import pytest
import trio

from syncfs import status

pytestmark = pytest.mark.timeout(30)


def test_a_status_file_that_cannot_be_written_is_retried(tmp_path, monkeypatch, caplog):
    counter = iter(range(1_000_000))
    monkeypatch.setattr(status, "snapshot", lambda *a, **k: {"n": next(counter), "updated": 0})
    where = tmp_path / "gone"
    path = where / "status.json"

    async def main():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(status.write_status, path, None, None, None)
            with trio.fail_after(10):
                while not any(r.levelno == logging.WARNING for r in caplog.records):
                    await trio.sleep(status.INTERVAL)  # the directory does not exist yet
                where.mkdir()
                while not path.exists():
                    await trio.sleep(status.INTERVAL)
            nursery.cancel_scope.cancel()

    with caplog.at_level(logging.INFO, logger="syncfs.status"):
        trio.run(main)
    assert "n" in json.loads(path.read_text())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "could not write the status file" in warnings[0].getMessage()
    assert any("written again" in r.getMessage() for r in caplog.records)
