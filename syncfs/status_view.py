"""``syncfs status``: ask a running mount what it does and show it, once or, while files
download on a terminal, as live progress bars."""

import json
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from . import deadmount
from .control import ControlError, find_mount, request

REFRESH = 0.25


def summary(s: dict[str, Any]) -> Text:
    t = s["tracker"]
    link = "connected" if t["connected"] else f"not connected ({t['last_error'] or 'connecting'})"
    stale = s["stale"]
    downloading = sum(1 for f in stale if f["state"] == "downloading")
    lines = [
        f"mount      {s['mountpoint']}  (peer {s['peer_id'][:16]})",
        f"tracker    {t['address']}: {link}; last sequence applied {t['last_seq']}",
        f"peers      {len(s['peers_online'])} online"
        + (f": {', '.join(p[:16] for p in s['peers_online'])}" if s["peers_online"] else ""),
        f"files      {s['files']} ({s['files'] - len(stale)} complete, {len(stale) - downloading} stale, "
        f"{downloading} downloading); {s['dirs']} directories",
        f"outbox     {s['outbox']} change(s) waiting for the tracker",
        f"transfers  {'PAUSED (' + s['paused'] + ')' if s['paused'] else 'running'}; "
        f"received {s['bytes_received']:,} B, sent {s['bytes_sent']:,} B, reused locally {s['bytes_reused_locally']:,} B",
    ]
    if s.get("pinned") or s.get("cache_size"):
        cache = f"; cache {s['cache_used']:,} of {s['cache_size']:,} B" if s.get("cache_size") else ""
        lines.append(f"pinned     {len(s['pinned'])}: " + ", ".join(p or "/" for p in s["pinned"][:5]) + cache)
    if s["conflicts"]:
        lines.append(f"conflicts  {len(s['conflicts'])}: " + ", ".join(s["conflicts"][:5]))
    if s.get("ignored", {}).get("count"):
        rules = sorted(s["ignored"]["by_rule"].items(), key=lambda r: -r[1])
        lines.append(f"ignored    {s['ignored']['count']} kept on this peer only: "
                     + ", ".join(f"{n} by {rule!r}" for rule, n in rules[:5]))
    for err in s["errors"][-5:]:
        lines.append(f"error      {time.strftime('%H:%M:%S', time.localtime(err['time']))} {err['message']}")
    if s.get("log_file"):
        lines.append(f"log        {s['log_file']}")
    return Text("\n".join(lines))


def show_status(directory: str | None, as_json: bool, once: bool) -> int:
    try:
        mount = find_mount(Path(directory) if directory else None)
    except ControlError as exc:
        left = deadmount.named(directory)
        if not left:
            print(f"syncfs: {exc}", file=sys.stderr)
        for one in left:
            fix = "syncfs stop DIR cleans it up; syncfs mount DIR cleans it and mounts again" if one.dead_mount \
                else "start it again"
            print(f"syncfs: {one.describe()}\n  ({fix})".replace("DIR", str(one.path)), file=sys.stderr)
        return 1
    store = Path(mount["store"])
    try:
        s = request(store, {"t": "status"})
    except ControlError as exc:
        print(f"syncfs: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(s, indent=2))
        return 0
    console = Console(markup=False, highlight=False)
    if not console.is_terminal:
        # piped or redirected: whole lines, never cut or wrapped at some assumed width
        console = Console(markup=False, highlight=False, soft_wrap=True)
    active = [f for f in s["stale"] if f["state"] == "downloading"]
    if once or not active or not console.is_terminal:
        console.print(summary(s))
        for f in s["stale"]:
            console.print(Text(f"  {f['state']:<12} {f['path']}  {f['bytes_present']:,}/{f['size']:,} B"
                               + (f"  ({f['last_error']})" if f["last_error"] else "")))
        return 0
    progress = Progress(
        TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=console,
    )
    tasks: dict[str, Any] = {}
    with Live(Group(summary(s), progress), console=console, refresh_per_second=8) as live:
        while True:
            for f in s["stale"]:
                if f["path"] not in tasks:
                    tasks[f["path"]] = progress.add_task(f["path"], total=f["size"])
                progress.update(tasks[f["path"]], completed=f["bytes_present"])
            current = {f["path"] for f in s["stale"]}
            for path, task in tasks.items():
                if path not in current:
                    progress.update(task, completed=progress.tasks[task].total)
            live.update(Group(summary(s), progress))
            if not any(f["state"] == "downloading" for f in s["stale"]):
                return 0
            time.sleep(REFRESH)
            try:
                s = request(store, {"t": "status"})
            except ControlError as exc:
                console.print(f"syncfs: {exc}")
                return 1
