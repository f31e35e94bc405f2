"""Shared fixtures: a real tracker, and a cluster of a tracker plus FUSE peers.

    def test_something(cluster):
        p1, p2 = cluster.start_peers(2)
        (p1.mnt / "a.txt").write_text("hi")
        wait_same_tree([p1, p2])

Teardown unmounts and kills everything the fixture started, then fails the test if a
process logged an ERROR/CRITICAL record or a traceback it did not expect; expect one with
``cluster.expect_log(pattern)`` / ``proc.expect_log(pattern)`` or ``@pytest.mark.allow_log_errors`` (all) /
``@pytest.mark.allow_log_errors("pattern", ...)``. See ``harness.py``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# The tests import syncfs and tracker from this checkout even in a venv where the project
# is not installed (with `pip install -e .` this changes nothing).
ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
# ... and so do the programs the tests run (`python -m syncfs status`, ...), whichever
# checkout the venv's editable install points at
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p)
# ... and keep their registry of running mounts (and default logs) in this session's own
# directory: the user's would collect an entry for every mount of every test run
_STATE_HOME = tempfile.mkdtemp(prefix="syncfs-test-state-")
os.environ["XDG_STATE_HOME"] = _STATE_HOME
from harness import Cluster, LogCheck, TrackerProc, require_fuse  # noqa: E402


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_STATE_HOME, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "allow_log_errors(*patterns): let process logs contain ERROR records or tracebacks "
        "(all of them, or those matching any of the regex patterns)",
    )


def _apply_marker(request: pytest.FixtureRequest, logs: LogCheck) -> None:
    for marker in request.node.iter_markers("allow_log_errors"):
        if not marker.args:
            logs.allow_all = True
        for pattern in marker.args:
            logs.expect_log(pattern)


@contextlib.contextmanager
def _checked_logs(request: pytest.FixtureRequest, logs: LogCheck) -> Iterator[None]:
    """Run the body, whose own cleanup must be bounded; then check the logs."""
    _apply_marker(request, logs)
    yield
    try:
        logs.check()
    except AssertionError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def tracker(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[TrackerProc]:
    """A started tracker on 127.0.0.11 (``.address`` is HOST:PORT); needs no FUSE.

    Its log is checked on teardown; allow errors with ``tracker.expect_log(pattern)``.
    """
    proc = TrackerProc(tmp_path / "tracker")
    logs = LogCheck()
    logs.procs.append(proc)
    with _checked_logs(request, logs):
        try:
            proc.start()
            yield proc
        finally:
            try:
                proc.stop()
            finally:
                proc.kill()


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A started tracker and no peers yet: ``cluster.start_peers(n)`` mounts n of them."""
    require_fuse()
    c = Cluster(tmp_path)
    with _checked_logs(request, c.logs):
        try:
            c.tracker.start()
            yield c
        finally:
            c.close()
