"""The ``syncfs`` command: ``mount`` a share, run a ``tracker``."""

import argparse
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import config
from .config import ConfigError, MountConfig

if TYPE_CHECKING:
    from .invite import Invite

log = logging.getLogger(__name__)

READY = b"ready\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "tracker":
        from tracker.cli import main as tracker_main

        return tracker_main(argv[1:])
    parser = argparse.ArgumentParser(prog="syncfs", description="Keep one directory tree identical across machines.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("tracker", help="run the tracker (see: syncfs tracker --help)")
    m = sub.add_parser("mount", help="mount a share at DIR")
    m.add_argument("directory", nargs="?", help="mount point (an existing empty directory)")
    m.add_argument("--tracker", metavar="TOKEN",
                   help="the share's join token (syncfs tracker --print-invite); without it a local tracker is started")
    m.add_argument("--token", help="the join token (same as --tracker TOKEN)")
    m.add_argument("--allow-other", action="store_true", default=None,
                   help="let other users enter the mount (needs user_allow_other in /etc/fuse.conf unless root); "
                   "permissions are checked by the kernel either way")
    m.add_argument("--advertise", help="ADDR[:PORT] other peers reach this one's chunk server at (default: --listen)")
    m.add_argument("--listen", help="ADDR[:PORT] to serve chunks on and connect from (default: all addresses, a free port)")
    m.add_argument("--cache-dir", help="where the local store lives (default: under the XDG data directory)")
    m.add_argument("--secret", help="the share secret (default: the join token's, or the local tracker's)")
    m.add_argument("--config", help="a TOML file, or a key=value file such as config.dat")
    m.add_argument("--on-demand", action="store_true", default=None,
                   help="keep files online-only until they are read (default: sync everything)")
    m.add_argument("--fetch-timeout", type=float, help="seconds a read waits for missing chunks before EIO (default 30)")
    m.add_argument("--max-rate", help="limit downloads to this many bytes per second (e.g. 500K, 20M)")
    m.add_argument("--cache-size", metavar="SIZE",
                   help="with --on-demand: keep at most this much file data (e.g. 200M, 2G), freeing the least "
                   "recently used unpinned files that another online peer holds")
    m.add_argument("--foreground", action="store_true", help="stay attached instead of running in the background")
    m.add_argument("--log-file")
    m.add_argument("--log-level")
    m.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    st = sub.add_parser("status", help="what a running mount is doing")
    st.add_argument("directory", nargs="?", help="the mount point or a directory inside it")
    st.add_argument("--json", action="store_true", help="one JSON document, for scripts")
    st.add_argument("--once", action="store_true", help="print once, without live progress")
    pa = sub.add_parser("pause", help="stop background downloads and uploads of file contents")
    pa.add_argument("directory", nargs="?")
    pa.add_argument("--hard", action="store_true", help="reads of files not yet local fail too")
    re_ = sub.add_parser("resume", help="carry on with transfers")
    re_.add_argument("directory", nargs="?")
    pi = sub.add_parser("pin", help="keep files local (directories: everything in them), fetching what is missing")
    pi.add_argument("paths", nargs="+", metavar="PATH", help="files or directories inside a running mount")
    un = sub.add_parser("unpin", help="make files online-only again, freeing their space once another peer holds them")
    un.add_argument("paths", nargs="+", metavar="PATH", help="files or directories inside a running mount")
    args = parser.parse_args(argv)
    if args.command in ("status", "pause", "resume", "pin", "unpin"):
        from . import status_view

        if args.command in ("pin", "unpin"):
            return status_view.pin(args.paths, unpin=args.command == "unpin")
        if args.command == "status":
            return status_view.show_status(args.directory, args.json, args.once)
        if args.command == "pause":
            return status_view.pause(args.directory, args.hard)
        return status_view.resume(args.directory)
    try:
        cfg = config.build(
            {
                "directory": args.directory, "tracker": args.tracker, "listen": args.listen,
                "cache_dir": args.cache_dir, "secret": args.secret, "log_file": args.log_file,
                "log_level": args.log_level, "on_demand": args.on_demand, "fetch_timeout": args.fetch_timeout,
                "max_rate": config.parse_rate(args.max_rate) if args.max_rate else None,
                "cache_size": config.parse_size(args.cache_size) if args.cache_size else None,
                "token": args.token, "allow_other": args.allow_other, "advertise": args.advertise,
            },
            args.config,
        )
        if not cfg.directory:
            raise ConfigError("no mount point given (DIR, or 'directory' in the configuration)")
        mountpoint = Path(cfg.directory).expanduser().absolute()
        check_mountpoint(mountpoint)
        if args.foreground:
            from .mount import run_mount

            return run_mount(cfg, mountpoint, ready_fd=args.ready_fd)
        return spawn_background(argv, cfg, mountpoint)
    except ConfigError as exc:
        print(f"syncfs: {exc}", file=sys.stderr)
        return 2


def check_mountpoint(mountpoint: Path) -> None:
    if not mountpoint.exists():
        raise ConfigError(f"mount point {mountpoint} does not exist")
    if not mountpoint.is_dir():
        raise ConfigError(f"mount point {mountpoint} is not a directory")
    if os.path.ismount(mountpoint):
        raise ConfigError(f"{mountpoint} is already a mount point")
    if any(mountpoint.iterdir()):
        raise ConfigError(f"mount point {mountpoint} is not empty")


def spawn_background(argv: list[str], cfg: MountConfig, mountpoint: Path) -> int:
    """Start the mount as a detached process; return once it is live (0) or has failed (1)."""
    read_end, write_end = os.pipe()
    log_file = Path(cfg.log_file) if cfg.log_file else config.default_log_file(mountpoint)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "syncfs", *argv, "--foreground", "--ready-fd", str(write_end), "--log-file", str(log_file)]
    with open(os.devnull, "rb") as devnull, open(log_file, "ab") as out:
        child = subprocess.Popen(cmd, stdin=devnull, stdout=out, stderr=out, pass_fds=(write_end,), start_new_session=True)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read()
    if answer.startswith(READY):
        print(f"syncfs: {mountpoint} mounted (pid {child.pid}, log {log_file})")
        return 0
    child.wait()
    message = answer.decode(errors="replace").strip() or f"the mount process exited with {child.returncode}; see {log_file}"
    print(f"syncfs: {message}", file=sys.stderr)
    return 1


def ensure_local_tracker() -> "Invite":
    """The embedded default: a tracker on this machine, started in the background if none
    runs; returns its join token (from the ``invite`` file it writes on start)."""
    from .invite import BadToken, parse

    host = config.LOCAL_TRACKER_HOST
    port = int(os.environ.get("SYNCFS_LOCAL_TRACKER_PORT", config.DEFAULT_TRACKER_PORT))
    state = config.local_tracker_dir()
    if not _reachable(host, port):
        state.mkdir(parents=True, exist_ok=True)
        with open(os.devnull, "rb") as devnull, open(state / "tracker.log", "ab") as out:
            child = subprocess.Popen(
                [sys.executable, "-m", "tracker", "--host", host, "--port", str(port), "--state-dir", str(state)],
                stdin=devnull, stdout=out, stderr=out, start_new_session=True,
            )
        (state / "tracker.pid").write_text(f"{child.pid}\n")
        deadline = time.monotonic() + 15
        while not _reachable(host, port):
            if time.monotonic() > deadline:
                raise ConfigError(f"the local tracker did not start; see {state / 'tracker.log'}")
            time.sleep(0.05)
    invite_file = state / "invite"
    deadline = time.monotonic() + 15
    while True:
        try:
            invite = parse(invite_file.read_text())
        except (OSError, BadToken):
            invite = None
        if invite is not None and invite.port == port:
            return invite
        if time.monotonic() > deadline:
            raise ConfigError(
                f"a tracker runs on {host}:{port} but {invite_file} holds no join token for it "
                "(restart it, or pass --tracker TOKEN)"
            )
        time.sleep(0.05)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def setup_logging(cfg: MountConfig) -> None:
    handler: logging.Handler
    if cfg.log_file:
        Path(cfg.log_file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(cfg.log_file)
    else:
        handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(cfg.log_level.upper())


