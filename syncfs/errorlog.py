"""Recent errors worth showing to a person (``syncfs status``), also logged as warnings."""

import logging
import time

log = logging.getLogger(__name__)

KEEP = 20


class ErrorLog:
    """The last ``KEEP`` errors, each with the time it happened. Any part may note one."""

    def __init__(self) -> None:
        self.recent: list[tuple[float, str]] = []

    def note(self, message: str) -> None:
        log.warning("%s", message)
        self.recent.append((time.time(), message))
        del self.recent[:-KEEP]
