"""The opt-in handler timing (syncfs/profiling.py, SYNCFS_PROFILE): off costs nothing, on
records every call, failures included, and dumps a JSON summary."""

import errno
import json
from collections.abc import Callable
from pathlib import Path

import pyfuse3
import pytest
import trio

from syncfs import fs, profiling
from syncfs.errors import FsError


def test_off_without_the_variable() -> None:
    assert profiling.from_environment({}) is None
    assert profiling.from_environment({profiling.ENV: ""}) is None


def test_translated_adds_nothing_when_off() -> None:
    # the module was imported without SYNCFS_PROFILE (tests never set it)
    assert fs._PROFILE is None

    async def handler() -> int:
        return 1

    wrapped = fs.translated(handler)
    assert wrapped.__wrapped__ is handler  # type: ignore[attr-defined]  # the plain translator


def test_summary_counts_failures_and_quantiles() -> None:
    times = profiling.HandlerTimes()
    for i in range(1, 101):
        times.record("lookup", i / 1000, failed=i % 10 == 0)
    times.record("mkdir", 1.0)
    s = times.summary()
    assert list(s) == ["lookup", "mkdir"]  # busiest first (5.05 s against 1 s)
    look = s["lookup"]
    assert look["count"] == 100 and look["errors"] == 10
    assert look["total"] == pytest.approx(5.05)
    assert look["mean"] == pytest.approx(0.0505)
    assert look["p50"] == pytest.approx(0.050)
    assert look["p99"] == pytest.approx(0.099)
    assert look["max"] == pytest.approx(0.1)
    assert s["mkdir"]["p99"] == s["mkdir"]["max"] == 1.0


def test_timed_records_each_call_and_its_failure() -> None:
    times = profiling.HandlerTimes()

    async def ok(x: int) -> int:
        await trio.sleep(0)
        return x * 2

    async def refused() -> None:
        raise FsError(errno.ENOENT)

    timed_ok = times.timed("ok", fs.translated(ok))
    timed_refused = times.timed("refused", fs.translated(refused))

    async def main() -> None:
        assert await timed_ok(21) == 42
        assert await timed_ok(1) == 2
        with pytest.raises(pyfuse3.FUSEError):
            await timed_refused()

    trio.run(main)
    s = times.summary()
    assert (s["ok"]["count"], s["ok"]["errors"]) == (2, 0)
    assert (s["refused"]["count"], s["refused"]["errors"]) == (1, 1)
    assert s["ok"]["max"] >= s["ok"]["p50"] > 0


def test_dump_at_exit_to_the_named_file(tmp_path: Path) -> None:
    registered: list[Callable[[], None]] = []
    times = profiling.from_environment({profiling.ENV: str(tmp_path / "prof-%p.json")}, at_exit=registered.append)
    assert times is not None and len(registered) == 1
    times.record("getattr", 0.002)
    registered[0]()
    (out,) = tmp_path.glob("prof-*.json")
    data = json.loads(out.read_text())
    assert out.name == f"prof-{data['pid']}.json"
    assert data["handlers"]["getattr"]["count"] == 1
    assert not list(tmp_path.glob("*.tmp"))
