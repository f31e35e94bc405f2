"""Command line of the tracker: ``python -m tracker`` or ``syncfs tracker``."""

import argparse
import logging
import os
import secrets
import signal
import sys
from pathlib import Path

import platformdirs
import trio

from .server import DEFAULT_INTERVAL, TrackerServer
from .state import StateError, TrackerState

log = logging.getLogger(__name__)

DEFAULT_PORT = 7370
SECRET_FILE = "secret"


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
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="TCP port (0: any free port)"
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
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    parser.add_argument("--log-file", type=Path, default=None, help="log here, not stderr")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be within 0..65535")
    if not 0 < args.interval < 1e6:
        parser.error("--interval must be a positive number of seconds")
    if args.secret is not None and not args.secret:
        parser.error("--secret must not be empty")
    return args


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


async def serve(server: TrackerServer) -> None:
    """Run ``server`` until SIGTERM or SIGINT; print the listening line once bound."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.run)
            print(f"syncfs tracker listening on {server.host}:{port}", flush=True)
            async for signum in signals:
                log.info("got %s: shutting down", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        setup_logging(args.log_level, args.log_file)
    except (ValueError, OSError) as exc:
        print(f"syncfs tracker: {exc}", file=sys.stderr)
        return 2
    state_dir: Path = args.state_dir or default_state_dir()
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        secret = args.secret.encode() if args.secret is not None else load_secret(state_dir)
        state = TrackerState(state_dir)
    except (OSError, SecretError, StateError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    server = TrackerServer(state, secret, host=args.host, port=args.port, interval=args.interval)
    try:
        trio.run(serve, server)
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
    log.info("tracker stopped")
    return 0
