"""Domain errors the front ends translate (the FUSE layer into FUSEError)."""

import errno
import os


class FsError(Exception):
    """A filesystem operation failed with ``errno``; the message says why."""

    def __init__(self, code: int, why: str = "") -> None:
        super().__init__(code, why)
        self.errno = code
        self.why = why

    def __str__(self) -> str:
        return f"{errno.errorcode.get(self.errno, self.errno)}: {self.why or os.strerror(self.errno)}"


def first_error(group: BaseExceptionGroup) -> BaseException:
    """The first leaf of a (nested) exception group: what a single-task failure raised."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
