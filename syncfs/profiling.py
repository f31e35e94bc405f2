"""Opt-in timing of the FUSE request handlers (issue 19: where metadata operations spend
their time).

With ``SYNCFS_PROFILE=FILE`` in the environment of a mounting process, every handler that
``fs.translated`` wraps is timed (``time.perf_counter`` around the whole handler, errors
included), and at exit a JSON summary is written to FILE (``%p`` in it becomes the pid):
per handler its count, errors, total, mean, p50, p99 and max, in seconds. Without the
variable ``translated`` returns its wrapper untouched, so the instrumentation costs nothing.

The time is what the handler spends in this process's event loop, from its first step to
its reply; the wait in the kernel's queue and in trio's run queue is not in it.
"""

import atexit
import json
import logging
import math
import os
import time
from array import array
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

log = logging.getLogger(__name__)

ENV = "SYNCFS_PROFILE"
T = TypeVar("T")
P = ParamSpec("P")


def _quantile(ordered: "array[float]", q: float) -> float:
    """The ``q`` quantile of sorted values (nearest rank)."""
    rank = max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))
    return ordered[rank]


class HandlerTimes:
    """Durations of requests by handler name, and their failures."""

    def __init__(self) -> None:
        self._seconds: dict[str, array[float]] = {}
        self._errors: dict[str, int] = {}

    def record(self, name: str, seconds: float, *, failed: bool = False) -> None:
        self._seconds.setdefault(name, array("d")).append(seconds)
        if failed:
            self._errors[name] = self._errors.get(name, 0) + 1

    def timed(self, name: str, fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        """``fn`` with each call's duration recorded under ``name``."""

        async def timing(*args: P.args, **kwargs: P.kwargs) -> T:
            t0 = time.perf_counter()
            failed = True
            try:
                out = await fn(*args, **kwargs)
                failed = False
                return out
            finally:
                self.record(name, time.perf_counter() - t0, failed=failed)

        return timing

    def summary(self) -> dict[str, dict[str, float]]:
        """Per handler: count, errors, total, mean, p50, p99, max (seconds), busiest first."""
        out: dict[str, dict[str, float]] = {}
        for name, seconds in sorted(self._seconds.items(), key=lambda kv: -sum(kv[1])):
            ordered = array("d", sorted(seconds))
            total = sum(ordered)
            out[name] = {
                "count": len(ordered), "errors": self._errors.get(name, 0), "total": total,
                "mean": total / len(ordered), "p50": _quantile(ordered, 0.5),
                "p99": _quantile(ordered, 0.99), "max": ordered[-1],
            }
        return out

    def dump(self, path: Path) -> None:
        """Write the summary to ``path`` (whole or not at all)."""
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(json.dumps({"pid": os.getpid(), "handlers": self.summary()}, indent=1))
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("could not write the profile %s: %s", path, exc)


def from_environment(environ: Mapping[str, str] = os.environ,
                     at_exit: Callable[[Callable[[], None]], object] = atexit.register) -> HandlerTimes | None:
    """A recorder dumped at exit (``at_exit``) to ``$SYNCFS_PROFILE``, or None when that is unset."""
    target = environ.get(ENV, "")
    if not target:
        return None
    times = HandlerTimes()
    path = Path(target.replace("%p", str(os.getpid())))
    at_exit(lambda: times.dump(path))
    return times
