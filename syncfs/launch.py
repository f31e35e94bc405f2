"""What a peer process and the command that starts it share: the line a background peer
sends its parent once it runs, and its logging. Apart from the command line, so that the
peer does not import the command line. (The local tracker it joins by default:
``local_tracker``.)"""

import logging
from pathlib import Path

from .config import MountConfig

READY = b"ready\n"  # then one line per warning for the user (e.g. the tracker is out of reach)


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
