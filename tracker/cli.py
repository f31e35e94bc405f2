"""Command line of the tracker: ``python -m tracker`` or ``syncfs tracker``."""

import argparse
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import platformdirs
import trio

from syncfs.identity import Identity, IdentityError
from syncfs.invite import BadToken, Invite, parse
from syncfs.local_tracker import (
    IDENTITY_DIR,
    INVITE_FILE,
    remove_pid_file,
    running_pid,
    write_pid_file,
)

from .server import DEFAULT_INTERVAL, TrackerServer
from .state import StateError, TrackerState

log = logging.getLogger(__name__)

DEFAULT_PORT = 7370
SECRET_FILE = "secret"
UNSPECIFIED = ("", "0.0.0.0", "::")


class SecretError(Exception):
    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def default_state_dir() -> Path:
    return Path(platformdirs.user_data_dir("syncfs")) / "tracker"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="syncfs tracker", description="Run the syncfs tracker for one share."
    )
    parser.add_argument("--host", default=None, help="address to listen on (default 0.0.0.0)")
    parser.add_argument(
        "--port", type=int, default=None, help=f"TCP port (default {DEFAULT_PORT}; 0: any free port)"
    )
    parser.add_argument(
        "--state-dir", type=Path, default=None, help="where tracker.db and the secret live"
    )
    parser.add_argument(
        "--secret",
        default=None,
        help="the share secret (default: the 'secret' file in the state dir, "
        "created with a random token on first start)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL,
        help="heartbeat interval in seconds; a peer silent for 3 intervals is dropped",
    )
    parser.add_argument(
        "--advertise",
        default=None,
        metavar="HOST",
        help="the address peers reach this tracker at, for the join token "
        "(default: --host, or this machine's name when --host is a wildcard)",
    )
    parser.add_argument(
        "--print-invite",
        action="store_true",
        help="print the join token (tracker address, its certificate fingerprint and the "
        "share secret) of the tracker of --state-dir, as it advertises itself, and exit; "
        "--host/--port/--advertise/--secret given here change those parts of it",
    )
    parser.add_argument(
        "--stop",
        action="store_true",
        help="stop the tracker running with --state-dir (e.g. the one syncfs mount started) and exit",
    )
    parser.add_argument(
        "--exit-when-idle",
        type=float,
        default=None,
        metavar="SECONDS",
        help="exit once no peer has been connected for SECONDS (the local tracker that syncfs "
        "mount starts by itself uses 10)",
    )
    parser.add_argument(
        "--revoke",
        metavar="PEER_ID",
        action="append",
        default=[],
        help="refuse this peer from now on (a running tracker drops it within a second); "
        "repeatable",
    )
    parser.add_argument(
        "--list-peers", action="store_true", help="list the peers ever admitted, and exit"
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    parser.add_argument("--log-file", type=Path, default=None, help="log here, not stderr")
    args = parser.parse_args(argv)
    args.explicit = {k for k in ("host", "port", "advertise", "secret") if getattr(args, k) is not None}
    args.host = "0.0.0.0" if args.host is None else args.host
    args.port = DEFAULT_PORT if args.port is None else args.port
    if not 0 <= args.port <= 65535:
        parser.error("--port must be within 0..65535")
    if not 0 < args.interval < 1e6:
        parser.error("--interval must be a positive number of seconds")
    if args.secret is not None and not args.secret:
        parser.error("--secret must not be empty")
    if args.exit_when_idle is not None and not 0 < args.exit_when_idle < 1e6:
        parser.error("--exit-when-idle must be a positive number of seconds")
    return args


def invite_for(args: argparse.Namespace, port: int, identity: Identity, secret: bytes) -> Invite:
    host = args.advertise or (socket.getfqdn() if args.host in UNSPECIFIED else args.host)
    return Invite(host, port, identity.id, secret.decode("utf-8", "replace"))


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_secret(state_dir: Path) -> bytes:
    """The share secret from ``state_dir/secret``, created (mode 0600) if missing."""
    path = state_dir / SECRET_FILE
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_bytes().strip()
        if not secret:
            raise SecretError(path, "the secret file is empty") from None
        return secret
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
        f.flush()
        os.fsync(f.fileno())
    log.info("created a new share secret in %s", path)
    return token.encode()


def setup_logging(level: str, log_file: Path | None) -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    handler: logging.Handler = (
        logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(numeric)


async def serve(server: TrackerServer, on_bound: "Callable[[int], None] | None" = None) -> None:
    """Run ``server`` until SIGTERM or SIGINT (or it ends itself, idle); print the listening
    line once bound."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(_run_then_end, server, nursery.cancel_scope)
            print(f"syncfs tracker listening on {server.host}:{port}", flush=True)
            if on_bound is not None:
                on_bound(port)
            async for signum in signals:
                log.info("got %s: shutting down", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


async def _run_then_end(server: TrackerServer, scope: trio.CancelScope, *,
                        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    await server.run(task_status=task_status)
    scope.cancel()  # it ended by itself (idle): so does the tracker


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        setup_logging(args.log_level, args.log_file)
    except (ValueError, OSError) as exc:
        print(f"syncfs tracker: {exc}", file=sys.stderr)
        return 2
    state_dir: Path = args.state_dir or default_state_dir()
    if args.stop:
        return stop(state_dir)
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        first_start = not (state_dir / IDENTITY_DIR).exists()
        identity = Identity.load_or_create(state_dir / IDENTITY_DIR, "syncfs tracker")
        secret = args.secret.encode() if args.secret is not None else load_secret(state_dir)
        state = TrackerState(state_dir)
    except (OSError, SecretError, StateError, IdentityError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    if args.print_invite or args.revoke or args.list_peers:
        try:
            return _offline_command(args, state_dir, state, identity, secret)
        finally:
            state.close()

    def on_bound(port: int) -> None:
        invite = invite_for(args, port, identity, secret)
        write_private(state_dir / INVITE_FILE, f"{invite}\n")
        write_pid_file(state_dir)
        if first_start:
            print(f"join token (give it to the peers of this share; it is a password):\n"
                  f"  {invite}", flush=True)

    server = TrackerServer(state, secret, identity=identity, host=args.host, port=args.port,
                           interval=args.interval, exit_when_idle=args.exit_when_idle)
    try:
        trio.run(serve, server, on_bound)
    except KeyboardInterrupt:
        pass  # a SIGINT before the signal receiver was in place
    except BaseExceptionGroup as group:
        cannot_listen, rest = group.split(OSError)
        if cannot_listen is None or rest is not None:
            raise
        log.error("cannot listen on %s:%d: %s", args.host, args.port, cannot_listen.exceptions[0])
        return 1
    finally:
        state.close()
        remove_pid_file(state_dir)
    log.info("tracker stopped")
    return 0


def _offline_command(args: argparse.Namespace, state_dir: Path, state: TrackerState, identity: Identity,
                     secret: bytes) -> int:
    for peer_id in args.revoke:
        known = state.revoke(peer_id.strip().lower())
        print(f"revoked {peer_id}" + ("" if known else " (never admitted: refused if it tries)"))
    if args.list_peers:
        for peer_id, revoked in state.admitted():
            print(f"{peer_id}{'  revoked' if revoked else ''}")
    if args.print_invite:
        print(advertised_invite(args, state_dir, identity, secret))
    return 0


def advertised_invite(args: argparse.Namespace, state_dir: Path, identity: Identity, secret: bytes) -> Invite:
    """The token of the tracker of ``state_dir``: the one it wrote when it last listened
    (its --host/--port/--advertise and secret), with the parts given on this command line
    changed; before its first start, the token these options would give."""
    try:
        written: Invite | None = parse((state_dir / INVITE_FILE).read_text())
    except (OSError, BadToken):
        written = None
    if written is None or written.fingerprint != identity.id:
        if "port" not in args.explicit:
            print(f"syncfs tracker: no tracker has listened with {state_dir} yet: this token assumes "
                  f"port {args.port}", file=sys.stderr)
        return invite_for(args, args.port, identity, secret)
    host = written.host
    if "advertise" in args.explicit or ("host" in args.explicit and args.host not in UNSPECIFIED):
        host = invite_for(args, args.port, identity, secret).host
    port = args.port if "port" in args.explicit else written.port
    shared = secret.decode("utf-8", "replace") if "secret" in args.explicit else written.secret
    return Invite(host, port, identity.id, shared)


def stop(state_dir: Path, timeout: float = 10.0) -> int:
    """``--stop``: SIGTERM the tracker running with ``state_dir`` and wait until it is gone."""
    pid = running_pid(state_dir)
    if pid is None:
        print(f"syncfs tracker: no tracker runs with state dir {state_dir}", file=sys.stderr)
        return 1
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while running_pid(state_dir) == pid:
        if time.monotonic() > deadline:
            print(f"syncfs tracker: pid {pid} still runs after {timeout:g} s", file=sys.stderr)
            return 1
        time.sleep(0.05)
    print(f"syncfs tracker: stopped the tracker of {state_dir} (pid {pid})")
    return 0
