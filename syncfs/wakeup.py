"""A level-triggered wake-up that one owner sets and any number of tasks wait on."""

import trio


class Wakeup:
    """``set()`` wakes every task waiting on the event taken before it. A waiter takes
    ``next()`` before it looks at the state it waits on, so no change is missed between
    looking and waiting."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def set(self) -> None:
        self._event.set()
        self._event = trio.Event()

    def next(self) -> trio.Event:
        return self._event
