"""Errors raised by the sans-I/O protocol code."""


class ProtocolError(Exception):
    """The other side sent something that breaks the protocol; the link is closed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class FrameTooLarge(ProtocolError):
    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"frame of {length} bytes exceeds the limit of {limit}")
        self.length = length
        self.limit = limit


class BadPath(ProtocolError):
    def __init__(self, path: object, why: str) -> None:
        super().__init__(f"refused path {path!r}: {why}")
        self.path = path
        self.why = why
