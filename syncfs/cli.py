"""The ``syncfs`` command: ``mount`` a share, run a ``tracker``."""

import argparse
import errno
import logging
import os
import subprocess
import sys
from pathlib import Path

from . import config, fstab
from .config import ConfigError, MountConfig
from .launch import READY

log = logging.getLogger(__name__)

def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if fstab.is_helper_call(argv):  # mount -t fuse.syncfs / fstab: syncfs SOURCE DIR -o OPTS
        try:
            call = fstab.mount_args(argv)
        except fstab.OptionError as exc:
            print(f"syncfs: {exc}", file=sys.stderr)
            return 2
        argv = call.argv
        for note in call.notes:
            print(f"syncfs: note: {note}", file=sys.stderr)
    if argv and argv[0] == "tracker":
        from tracker.cli import main as tracker_main

        return tracker_main(argv[1:])
    parser = argparse.ArgumentParser(prog="syncfs", description="Keep one directory tree identical across machines.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("tracker", help="run the tracker (see: syncfs tracker --help)")
    m = sub.add_parser("mount", help="mount a share at DIR", usage="syncfs mount DIR [options]",
                       description="Mount the share at DIR and keep it in sync; returns once it is mounted "
                       "(the mount runs on in the background unless --foreground).")
    m.add_argument("directory", nargs="?", metavar="DIR",
                   help="mount point: an existing empty directory (required; may come from 'directory' in --config)")
    _peer_options(m)
    m.add_argument("--allow-other", action="store_true", default=None,
                   help="let other users enter the mount (needs user_allow_other in /etc/fuse.conf unless root); "
                   "permissions are checked by the kernel either way")
    m.add_argument("--on-demand", action="store_true", default=None,
                   help="keep files online-only until they are read (default: sync everything)")
    m.add_argument("--cache-size", metavar="SIZE",
                   help="with --on-demand: keep at most this much file data (e.g. 200M, 2G), freeing the least "
                   "recently used unpinned files that another online peer holds")
    w = sub.add_parser("sync", help="keep an ordinary directory in the share (for hosts without FUSE)",
                       usage="syncfs sync DIR [options]")
    w.add_argument("directory", nargs="?", metavar="DIR",
                   help="the directory to keep in the share, which may hold files already "
                   "(required; may come from 'directory' in --config)")
    _peer_options(w)
    st = sub.add_parser("status", help="what a running mount is doing")
    st.add_argument("directory", nargs="?", metavar="DIR", help="the mount point or a directory inside it")
    st.add_argument("--json", action="store_true", help="one JSON document, for scripts")
    st.add_argument("--once", action="store_true", help="print once, without live progress")
    pa = sub.add_parser("pause", help="stop background downloads and uploads of file contents")
    pa.add_argument("directory", nargs="?", metavar="DIR", help="the mount point (default: the only running mount)")
    pa.add_argument("--hard", action="store_true", help="reads of files not yet local fail too")
    re_ = sub.add_parser("resume", help="carry on with transfers")
    re_.add_argument("directory", nargs="?", metavar="DIR", help="the mount point (default: the only running mount)")
    so = sub.add_parser("stop", help="stop a running mount (it unmounts) or watched directory")
    so.add_argument("directory", nargs="?", metavar="DIR", help="the mount point or watched directory (default: the only running one); a dead mount (its process was killed) is cleaned up")
    pi = sub.add_parser("pin", help="keep files local (directories: everything in them), fetching what is missing")
    pi.add_argument("paths", nargs="+", metavar="PATH", help="files or directories inside a running mount")
    un = sub.add_parser("unpin", help="make files online-only again, freeing their space once another peer holds them")
    un.add_argument("paths", nargs="+", metavar="PATH", help="files or directories inside a running mount")
    sub.add_parser("service", help="a systemd unit that mounts DIR at login and after a crash (see: syncfs service --help)")
    if argv and argv[0] == "service":
        from .service import main as service_main

        return service_main(argv[1:], lambda mount_args: parser.parse_args(["mount", *mount_args]))
    args = parser.parse_args(argv)
    if args.command in ("status", "pause", "resume", "stop", "pin", "unpin"):
        if args.command == "status":
            from .status_view import show_status

            return show_status(args.directory, args.json, args.once)
        from . import commands

        if args.command in ("pin", "unpin"):
            return commands.pin(args.paths, unpin=args.command == "unpin")
        if args.command == "pause":
            return commands.pause(args.directory, args.hard)
        if args.command == "stop":
            return commands.stop(args.directory)
        return commands.resume(args.directory)
    try:
        cfg = config.build(
            {
                "directory": args.directory, "tracker": args.tracker, "listen": args.listen,
                "cache_dir": args.cache_dir, "secret": args.secret, "log_file": args.log_file,
                "log_level": args.log_level, "on_demand": getattr(args, "on_demand", None),
                "fetch_timeout": args.fetch_timeout, "keep_replaced": args.keep_replaced,
                "max_rate": config.parse_rate(args.max_rate) if args.max_rate else None,
                "cache_size": config.parse_size(args.cache_size) if getattr(args, "cache_size", None) else None,
                "token": args.token, "allow_other": getattr(args, "allow_other", None), "advertise": args.advertise,
                "local_tracker_port": args.local_tracker_port,
            },
            args.config,
        )
        if not cfg.directory:
            raise ConfigError("no directory given (DIR, or 'directory' in the configuration)")
        directory = Path(cfg.directory).expanduser().absolute()
        if args.command == "sync":
            check_sync_dir(directory)
            if args.foreground:
                from .sync import run_sync

                return run_sync(cfg, directory, ready_fd=args.ready_fd)
            return spawn_background(argv, cfg, directory, "kept in the share")
        check_mountpoint(directory)
        if args.foreground:
            from .mount import run_mount

            return run_mount(cfg, directory, ready_fd=args.ready_fd)
        return spawn_background(argv, cfg, directory, "mounted")
    except ConfigError as exc:
        print(f"syncfs: {exc}", file=sys.stderr)
        return 2


def _peer_options(p: argparse.ArgumentParser) -> None:
    """The options every kind of peer takes (a mount, a watched directory)."""
    p.add_argument("--tracker", metavar="TOKEN",
                   help="the share's join token (syncfs tracker --print-invite); without it a local tracker is started")
    p.add_argument("--token", metavar="TOKEN", help="the join token (same as --tracker TOKEN)")
    p.add_argument("--local-tracker-port", type=int, metavar="PORT",
                   help="without --tracker: the port of the local tracker on 127.0.0.1 (default 7370)")
    p.add_argument("--advertise", metavar="ADDR[:PORT]", help="ADDR[:PORT] other peers reach this one's chunk server at (default: --listen)")
    p.add_argument("--listen", metavar="ADDR[:PORT]", help="ADDR[:PORT] to serve chunks on and connect from (default: all addresses, a free port)")
    p.add_argument("--cache-dir", metavar="DIR", help="where the local store lives (default: under the XDG data directory)")
    p.add_argument("--secret", metavar="SECRET", help="the share secret (default: the join token's, or the local tracker's)")
    p.add_argument("--config", metavar="FILE", help="a TOML file, or a key=value file such as config.dat")
    p.add_argument("--fetch-timeout", type=float, metavar="SECONDS", help="seconds a read waits for missing chunks before EIO (default 30)")
    p.add_argument("--keep-replaced", type=float, metavar="SECONDS",
                   help="how long the bytes of a version replaced here stay fetchable by peers "
                        "still reading it (default 60)")
    p.add_argument("--max-rate", metavar="RATE", help="limit downloads to this many bytes per second (e.g. 500K, 20M)")
    p.add_argument("--foreground", action="store_true", help="stay attached instead of running in the background")
    p.add_argument("--log-file", metavar="FILE",
                   help="where the peer logs (default: in the background, a file under the XDG state directory, "
                   "named by 'syncfs status'; with --foreground, the terminal)")
    p.add_argument("--log-level", metavar="LEVEL", type=str.upper, choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                   help="how much to log: DEBUG, INFO (the default), WARNING or ERROR; DEBUG adds every commit "
                   "and transfer")
    p.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)


def check_sync_dir(directory: Path) -> None:
    # not made here: a mistyped name would otherwise fill a new directory with the share
    if not directory.exists():
        raise ConfigError(f"{directory} does not exist: create it first (mkdir), then run syncfs sync again")
    if not directory.is_dir():
        raise ConfigError(f"{directory} is not a directory")
    if os.path.ismount(directory) and _is_syncfs_mount(directory):
        raise ConfigError(f"{directory} is a syncfs mount: watch an ordinary directory")


def _is_syncfs_mount(directory: Path) -> bool:
    try:
        with open("/proc/self/mounts") as mounts:
            return any(line.split()[1] == str(directory) and "syncfs" in line.split()[2] for line in mounts)
    except OSError:
        return False


def check_mountpoint(mountpoint: Path) -> None:
    """Refuse a mount point syncfs cannot mount on; clean up a dead one that a syncfs
    process left behind (killed or crashed), saying so on stderr."""
    from . import deadmount

    left = deadmount.at(mountpoint)
    if left is not None:
        try:
            how = deadmount.clean(left)
        except deadmount.CleanupFailed as exc:
            raise ConfigError(f"{exc}; unmount it by hand (fusermount3 -uz {mountpoint}), then mount again") from None
        pid = f" (pid {left.pid})" if left.pid is not None else ""
        print(f"syncfs: {mountpoint} was a dead mount: its syncfs process{pid} had ended without unmounting; "
              f"cleaned it up ({how}) and mounting again", file=sys.stderr)
    try:
        if not mountpoint.exists():
            raise ConfigError(f"mount point {mountpoint} does not exist")
        if not mountpoint.is_dir():
            raise ConfigError(f"mount point {mountpoint} is not a directory")
        if os.path.ismount(mountpoint):
            raise ConfigError(f"{mountpoint} is already a mount point"
                              + (" (a running syncfs mount: syncfs stop it first)" if _is_syncfs_mount(mountpoint) else ""))
        if any(mountpoint.iterdir()):
            raise ConfigError(f"mount point {mountpoint} is not empty")
    except OSError as exc:
        hint = ""
        if exc.errno in (errno.ENOTCONN, errno.ECONNABORTED):
            hint = (f": a dead mount of another program, or inside one; unmount it (fusermount3 -uz "
                    f"{exc.filename or mountpoint}), then mount again")
        raise ConfigError(f"cannot use mount point {mountpoint}: {exc.strerror or exc}{hint}") from None


def spawn_background(argv: list[str], cfg: MountConfig, mountpoint: Path, done: str) -> int:
    """Start the peer as a detached process; return once it is live (0) or has failed (1)."""
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
        for line in answer[len(READY):].decode(errors="replace").splitlines():
            print(f"syncfs: {line}", file=sys.stderr)  # warnings of a start that went ahead
        print(f"syncfs: {mountpoint} {done} (pid {child.pid}, log {log_file})")
        return 0
    child.wait()
    message = answer.decode(errors="replace").strip() or f"the syncfs process exited with {child.returncode}; see {log_file}"
    print(f"syncfs: {message}", file=sys.stderr)
    return 1
