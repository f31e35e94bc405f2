"""``syncfs pause``, ``resume``, ``stop``, ``pin`` and ``unpin``: ask a running mount to do
something, and say what it did."""

import os
import sys
import time
from pathlib import Path
from typing import Any

from . import deadmount
from .control import ControlError, alive, find_mount, request


def pause(directory: str | None, hard: bool) -> int:
    return _command(directory, {"t": "pause", "hard": hard})


def resume(directory: str | None) -> int:
    return _command(directory, {"t": "resume"})


def stop(directory: str | None, timeout: float = 30.0) -> int:
    """Ask a running peer to end (a mount unmounts) and wait until its process is gone;
    clean up what one that is gone left behind (a dead mount point)."""
    try:
        mount = find_mount(Path(directory) if directory else None)
    except ControlError as exc:
        return _clean_leftover(directory, exc)
    try:
        answer = request(Path(mount["store"]), {"t": "stop"})
    except ControlError as exc:
        print(f"syncfs: {exc}", file=sys.stderr)
        return 1
    deadline = time.monotonic() + timeout
    while alive(answer["pid"]):
        if time.monotonic() > deadline:
            print(f"syncfs: {mount['mountpoint']}: pid {answer['pid']} is still running after {timeout:g}s",
                  file=sys.stderr)
            return 1
        time.sleep(0.05)
    print(f"syncfs: {mount['mountpoint']}: stopped")
    return 0


def _clean_leftover(directory: str | None, not_running: ControlError) -> int:
    """``syncfs stop`` where no process runs: a dead mount is unmounted, a registry entry
    of a process that is gone is forgotten, each said with what its log last said."""
    left = deadmount.named(directory)
    if not left:
        print(f"syncfs: {not_running}", file=sys.stderr)
        return 1
    if len(left) > 1:
        print("syncfs: no syncfs mount is running; several were left behind by processes that are gone, "
              "name one: " + ", ".join(str(one.path) for one in left), file=sys.stderr)
        return 1
    one = left[0]
    print(f"syncfs: {one.describe()}")
    try:
        how = deadmount.clean(one)
    except deadmount.CleanupFailed as exc:
        print(f"syncfs: {exc}", file=sys.stderr)
        return 1
    if one.dead_mount:
        print(f"syncfs: {one.path}: unmounted the dead mount ({how}); nothing committed is lost, "
              "and mounting again resumes what was downloading")
    else:
        print(f"syncfs: {one.path}: was not running; forgot it")
    return 0


def _command(directory: str | None, payload: dict[str, Any]) -> int:
    try:
        mount = find_mount(Path(directory) if directory else None)
        answer = request(Path(mount["store"]), payload)
    except ControlError as exc:
        print(f"syncfs: {exc}", file=sys.stderr)
        return 1
    state = f"paused ({answer['paused']})" if answer["paused"] else "running"
    print(f"syncfs: {mount['mountpoint']}: transfers {state}")
    return 0


def share_paths(paths: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The running mount that holds ``paths`` and their paths relative to its root.

    Every path must lie inside the same mount; a path outside it is refused before
    anything is asked of the mount.
    """
    targets = [Path(os.path.abspath(os.path.expanduser(p))) for p in paths]  # '..' resolved
    mount = find_mount(targets[0])
    root = Path(mount["mountpoint"])
    rel = []
    for given, t in zip(paths, targets, strict=True):
        if t != root and root not in t.parents:
            raise ControlError(f"{given} is outside the share mounted at {root}")
        rel.append("" if t == root else t.relative_to(root).as_posix())
    return mount, rel


def pin(paths: list[str], unpin: bool = False) -> int:
    """``syncfs pin|unpin PATH...``: exit 0 when done, 1 on an error or a refused unpin."""
    try:
        mount, rel = share_paths(paths)
        answer = request(Path(mount["store"]), {"t": "unpin" if unpin else "pin", "paths": rel})
    except ControlError as exc:
        print(f"syncfs: {exc}", file=sys.stderr)
        return 1
    names = ", ".join(p or "/" for p in rel)
    if not unpin:
        fetching = answer["fetching"]
        line = f"syncfs: pinned {names} ({answer['files']} file(s)"
        if not answer["on_demand"]:
            line += "; this mount keeps every file anyway"
        elif fetching:
            line += f", {len(fetching)} being fetched"
        print(line + ")")
        return 0
    print(f"syncfs: unpinned {names}" + (f"; {answer['note']}" if answer.get("note") else ""))
    status = 0
    for o in answer["outcomes"]:
        print(f"  {o['result']:<8} {o['path']}" + (f": {o['reason']}" if o["reason"] else ""))
        if o["result"] == "refused":
            status = 1
    return status
