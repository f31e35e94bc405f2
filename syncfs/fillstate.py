"""The background-fill state of one stale version: an explicit machine.

::

    IDLE ──start──> FILLING ──ended──> IDLE
      ^               │
      │             failed (retry at now + backoff, doubling to RETRY_MAX)
      │               v
      └────news──── WAITING ──start (once due)──> FILLING

    any state ──cancel──> CANCELLED (replaced, deleted or truncated: absorbing)

``news`` (holders or peers changed, a chunk found damaged, space came back) makes a waiting
version due at once. Pure: times come in as arguments, and every transition is recorded in
``events`` so that tests read what a sequence of calls did.
"""

import dataclasses
import enum

RETRY_INITIAL = 0.5
RETRY_MAX = 10.0


class FillState(enum.Enum):
    IDLE = "idle"  # due: never tried, ended without completing (paused), or told of news
    FILLING = "filling"  # a background fill runs
    WAITING = "waiting"  # the last fill failed: due again at ``retry_at``
    CANCELLED = "cancelled"  # replaced, deleted or truncated: no chunk is written any more


class FillEvent(enum.Enum):
    START = "start"
    ENDED = "ended"
    FAILED = "failed"
    NEWS = "news"
    CANCEL = "cancel"


S, E = FillState, FillEvent
TRANSITIONS: dict[tuple[FillState, FillEvent], FillState] = {
    (S.IDLE, E.START): S.FILLING,
    (S.IDLE, E.NEWS): S.IDLE,
    (S.FILLING, E.ENDED): S.IDLE,
    (S.FILLING, E.FAILED): S.WAITING,
    (S.FILLING, E.NEWS): S.FILLING,
    (S.WAITING, E.START): S.FILLING,
    (S.WAITING, E.NEWS): S.IDLE,
}
for _state in FillState:
    TRANSITIONS[(_state, E.CANCEL)] = S.CANCELLED
    if _state is not S.CANCELLED:
        continue
    for _event in FillEvent:
        TRANSITIONS[(_state, _event)] = S.CANCELLED  # whatever still runs finds it cancelled


class BadTransition(Exception):
    def __init__(self, state: FillState, event: FillEvent) -> None:
        super().__init__(state, event)
        self.state = state
        self.event = event

    def __str__(self) -> str:
        return f"no fill transition from {self.state.value} on {self.event.value}"


@dataclasses.dataclass
class FillMachine:
    state: FillState = FillState.IDLE
    retry_at: float = 0.0
    backoff: float = RETRY_INITIAL
    attempted: bool = False  # had a first fill (which copies every chunk found locally)
    last_error: str = ""
    lost_since: float | None = None  # since when every holder says it lacks the bytes
    events: list[tuple[FillEvent, FillState]] = dataclasses.field(default_factory=list)

    def _fire(self, event: FillEvent) -> None:
        try:
            self.state = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise BadTransition(self.state, event) from None
        self.events.append((event, self.state))
        del self.events[:-16]  # a short history, for tests and debugging

    def due(self, now: float) -> bool:
        """Whether a background fill may start now."""
        return self.state is S.IDLE or (self.state is S.WAITING and self.retry_at <= now)

    def start(self) -> None:
        self._fire(E.START)

    def ended(self) -> None:
        """The fill returned: complete, or stopped by a pause."""
        self._fire(E.ENDED)
        self.attempted = True

    def failed(self, why: str, now: float) -> None:
        """The fill could not get every chunk: try again after the backoff."""
        self._fire(E.FAILED)
        self.attempted = True
        self.last_error = why
        self.retry_at = now + self.backoff
        self.backoff = min(self.backoff * 2, RETRY_MAX)

    def crashed(self, now: float) -> None:
        """The fill failed unexpectedly (a disk error, a bug): try again after RETRY_MAX."""
        self._fire(E.FAILED)
        self.attempted = True
        self.retry_at = now + RETRY_MAX

    def news(self) -> None:
        self._fire(E.NEWS)
        self.retry_at = 0.0

    def cancel(self) -> None:
        self._fire(E.CANCEL)

    @property
    def filling(self) -> bool:
        return self.state is S.FILLING

    @property
    def cancelled(self) -> bool:
        return self.state is S.CANCELLED
