"""The control channel from the ``syncfs`` command line to a running mount.

A UNIX socket (mode 0600) in the mount's store, speaking the wire protocol's framing: one
map with a 't' key per request and per answer. Mounts register themselves in the XDG state
directory so that a command can find the peer behind a mount point.
"""

import contextlib
import hashlib
import json
import logging
import os
import re
import socket
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import platformdirs
import trio

from .protocol.errors import ProtocolError
from .protocol.framing import HANDSHAKE_MAX_FRAME, FrameDecoder, encode_frame

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
REQUEST_TIMEOUT = 10.0
STALE_ENTRY_AGE = 60.0  # a registry entry of a dead process younger than this is left alone

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ControlError(Exception):
    """A control request could not be made or was refused; the message says why."""


def check_private_dir(path: Path) -> None:
    """Refuse a directory someone else could reach the socket through."""
    st = path.stat()
    if st.st_uid != os.getuid():
        raise ControlError(f"{path} is owned by uid {st.st_uid}, not by this user")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ControlError(f"{path} is writable by group or others; refusing to open a control socket there")


class _SocketAddress:
    """A path to bind or connect a UNIX socket to, short enough for sun_path (108 bytes).

    A deep store directory is reached through /proc/self/fd of an open directory, so the
    socket stays inside the store and keeps the directory's permissions.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> str:
        if len(os.fsencode(self.path)) < 100:
            return str(self.path)
        self._fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        return f"/proc/self/fd/{self._fd}/{self.path.name}"

    def __exit__(self, *_: object) -> None:
        if self._fd is not None:
            os.close(self._fd)


class ControlServer:
    def __init__(self, store_dir: Path, handler: Handler) -> None:
        self.path = store_dir / SOCKET_NAME
        self.handler = handler

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        check_private_dir(self.path.parent)
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            with _SocketAddress(self.path) as address:
                await sock.bind(address)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        sock.listen(16)
        listener = trio.SocketListener(sock)
        task_status.started()
        try:
            await trio.serve_listeners(self._serve, [listener])
        finally:
            with trio.CancelScope(shield=True):
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass

    async def _serve(self, stream: trio.SocketStream) -> None:
        decoder = FrameDecoder(HANDSHAKE_MAX_FRAME)
        try:
            with trio.fail_after(REQUEST_TIMEOUT):
                while True:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    decoder.feed(data)
                    for request in decoder.frames():
                        answer = await self._answer(request)
                        await stream.send_all(encode_frame(answer))
        except ProtocolError as exc:
            await _send_quietly(stream, {"t": "error", "error": str(exc)})
        except (trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await stream.aclose()

    async def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self.handler(request)
        except ControlError as exc:
            return {"t": "error", "error": str(exc)}


async def _send_quietly(stream: trio.SocketStream, payload: dict[str, Any]) -> None:
    try:
        await stream.send_all(encode_frame(payload))
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


def request(store_dir: Path, payload: dict[str, Any], timeout: float = REQUEST_TIMEOUT) -> dict[str, Any]:
    """Send one request to the mount whose store is ``store_dir``; blocking, for the CLI."""
    path = store_dir / SOCKET_NAME
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            with _SocketAddress(path) as address:
                s.connect(address)
            s.sendall(encode_frame(payload))
            decoder = FrameDecoder(16 * 1024 * 1024)
            while True:
                data = s.recv(65536)
                if not data:
                    raise ControlError("the mount closed the control connection")
                decoder.feed(data)
                for answer in decoder.frames():
                    if answer.get("t") == "error":
                        raise ControlError(str(answer.get("error")))
                    return answer
    except OSError as exc:
        raise ControlError(f"cannot reach the mount's control socket {path}: {exc.strerror or exc}") from None


# -- finding the mount behind a directory -----------------------------------------------------


def _registry() -> Path:
    return Path(platformdirs.user_state_dir("syncfs")) / "mounts"


def _key(mountpoint: Path) -> str:
    return hashlib.sha256(str(mountpoint).encode()).hexdigest()[:16]


_replaced: dict[Path, str] = {}  # entry -> the live mount's entry that register() replaced


def register(mountpoint: Path, store_dir: Path, log_file: str = "") -> Path:
    reg = _registry()
    reg.mkdir(parents=True, exist_ok=True, mode=0o700)
    entry = reg / f"{_key(mountpoint)}.json"
    with contextlib.suppress(OSError, ValueError):
        previous = entry.read_text()
        if _is_mount_process(json.loads(previous)):
            _replaced[entry] = previous  # a mount of the same directory: back when this one stops
    info = {"mountpoint": str(mountpoint), "store": str(store_dir), "pid": os.getpid(),
            "started": process_start_time(os.getpid()), "log": log_file}
    _write_entry(entry, json.dumps(info))
    return entry


def unregister(entry: Path) -> None:
    """Remove this process's registry entry (unless another mount of the same directory
    has replaced it meanwhile), or give it back to the mount it replaced if that still
    runs."""
    previous = _replaced.pop(entry, None)
    try:
        st = entry.stat()
        if json.loads(entry.read_text()).get("pid") != os.getpid():
            return
        if previous is not None and _is_mount_process(json.loads(previous)):
            _write_entry(entry, previous)
        else:
            _remove_if_unchanged(entry, st)
    except (OSError, ValueError):
        pass


def _write_entry(entry: Path, text: str) -> None:
    tmp = entry.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, entry)


def _entries() -> list[tuple[os.stat_result, Path, dict[str, Any]]]:
    """Every registry entry that can be read, oldest first."""
    reg = _registry()
    if not reg.is_dir():
        return []
    entries = []
    for entry in reg.glob("*.json"):
        try:
            st = entry.stat()
            info = json.loads(entry.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(info, dict):
            entries.append((st, entry, info))
    return sorted(entries, key=lambda e: e[0].st_mtime_ns)


def registered() -> list[dict[str, Any]]:
    """Mounts whose process is alive, oldest first. What processes that are gone left
    behind (killed or crashed, they could not remove it) is removed once it is
    STALE_ENTRY_AGE old, so that it does not pile up: a younger one may be a mount that is
    writing its entry now. An entry whose mount point is still mounted (dead) stays: it
    tells ``syncfs status`` and ``stop`` what happened there."""
    out: list[dict[str, Any]] = []
    mounted = syncfs_mount_points()
    for st, entry, info in _entries():
        if _is_mount_process(info):
            out.append(info)
        elif time.time() - st.st_mtime > STALE_ENTRY_AGE and info.get("mountpoint") not in mounted:
            _remove_if_unchanged(entry, st)
    reg = _registry()
    for tmp in reg.glob("*.tmp") if reg.is_dir() else ():  # left by a register() that was killed mid-way
        with contextlib.suppress(OSError):
            st = tmp.stat()
            if time.time() - st.st_mtime > STALE_ENTRY_AGE:
                _remove_if_unchanged(tmp, st)
    return out


def gone() -> list[tuple[Path, dict[str, Any]]]:
    """The entries (file, contents) of processes that ended without removing them."""
    return [(entry, info) for _, entry, info in _entries() if not _is_mount_process(info)]


def forget(entry: Path, info: dict[str, Any]) -> None:
    """Remove the entry of a process that is gone (unless a new mount has replaced it)."""
    with contextlib.suppress(OSError, ValueError):
        st = entry.stat()
        if json.loads(entry.read_text()) == info:
            _remove_if_unchanged(entry, st)


FUSE_TYPE = "fuse.syncfs"  # the type a syncfs mount has in /proc/self/mountinfo


def syncfs_mount_points() -> set[str]:
    """The paths at which /proc/self/mountinfo lists a syncfs FUSE mount (live or dead)."""
    found: set[str] = set()
    try:
        with open("/proc/self/mountinfo", errors="surrogateescape") as f:
            for line in f:
                fields = line.split()
                with contextlib.suppress(ValueError, IndexError):
                    if fields[fields.index("-") + 1] == FUSE_TYPE:
                        found.add(_unescape(fields[4]))
    except OSError:
        pass
    return found


def _unescape(field: str) -> str:
    """A mountinfo path: space, tab, newline and backslash are written as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _is_mount_process(info: dict[str, Any]) -> bool:
    """The entry's process is running: the same pid and start time (a pid alone may have
    been reused); an entry of an older build, without a start time, by its command line."""
    started = process_start_time(info.get("pid"))
    if started is None:
        return False
    if "started" in info:
        recorded: object = info["started"]
        return recorded == started
    try:
        return b"syncfs" in Path(f"/proc/{int(info['pid'])}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False


def _remove_if_unchanged(path: Path, seen: os.stat_result) -> None:
    """Remove ``path`` unless it was replaced since ``seen`` (a mount registering anew)."""
    with contextlib.suppress(OSError):
        now = path.stat()
        if (now.st_ino, now.st_mtime_ns) == (seen.st_ino, seen.st_mtime_ns):
            path.unlink()


def alive(pid: object) -> bool:
    """Running, and not just a zombie waiting for its parent."""
    return process_start_time(pid) is not None


def process_start_time(pid: object) -> str | None:
    """When process ``pid`` started (field 22 of /proc/PID/stat, in clock ticks since boot),
    or None if it is not running or is a zombie (the state after the ')')."""
    if not isinstance(pid, int | str):
        return None  # a registry entry's pid is whatever JSON the file held
    try:
        fields = Path(f"/proc/{int(pid)}/stat").read_text().rpartition(")")[2].split()
    except (OSError, ValueError):
        return None
    return None if not fields or fields[0] == "Z" else fields[19]


def find_mount(directory: Path | None) -> dict[str, Any]:
    """The registered mount that holds ``directory`` (default: the only running one)."""
    mounts = registered()
    if directory is None:
        if len(mounts) == 1:
            return mounts[0]
        if not mounts:
            raise ControlError("no syncfs mount is running")
        raise ControlError("several mounts are running; name one: " + ", ".join(m["mountpoint"] for m in mounts))
    target = directory.expanduser().absolute()
    for m in mounts:
        mp = Path(m["mountpoint"])
        if target == mp or mp in target.parents:
            return m
    raise ControlError(f"no running syncfs mount holds {target}")
