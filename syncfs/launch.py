"""What a peer process and the command that starts it share: the line a background peer
sends its parent once it runs, its logging, and the local tracker it joins by default.
Apart from the command line, so that the peer does not import the command line."""

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from . import config
from .config import ConfigError, MountConfig
from .invite import BadToken, Invite, parse

READY = b"ready\n"  # then one line per warning for the user (e.g. the tracker is out of reach)


def ensure_local_tracker() -> Invite:
    """The embedded default: a tracker on this machine, started in the background if none
    runs; returns its join token (from the ``invite`` file it writes on start)."""
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
        handler = logging.FileHandler(cfg.log_file, errors="backslashreplace")  # file names need not be UTF-8
    else:
        handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(cfg.log_level.upper())


def current_log_file() -> str:
    """The file the process logs to, or '' when it logs to the terminal."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            return handler.baseFilename
    return ""
