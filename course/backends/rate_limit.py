"""A sliding one-second window over the moments messages start, shared by the whole pool."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

JITTER_MARGIN = 0.05


class RateLimiter:
    """At most `rate` sends in any one-second window (or one per 1/rate s when rate < 1)."""

    def __init__(
        self,
        rate: float,
        margin: float = JITTER_MARGIN,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.capacity = max(1, int(rate)) if rate >= 1 else 1
        base = 1.0 if rate >= 1 else 1.0 / rate if rate > 0 else 0.0
        # The limit is the server's to count: messages arrive there a few milliseconds
        # after they start here, and unevenly, so the window kept here is a little longer.
        self.period = base * (1 + margin)
        self._sent: deque[float] = deque()
        self._clock, self._sleep = clock, sleep

    def ready(self) -> bool:
        """Whether one more send would fit in the window now."""
        if self.period == 0:
            return True
        self._forget(self._clock())
        return len(self._sent) < self.capacity

    def wait(self) -> None:
        """Return when one more send fits in the window (one thread drives the pool)."""
        if self.period == 0:
            return
        now = self._clock()
        while True:
            self._forget(now)
            if len(self._sent) < self.capacity:
                break
            # max(): float rounding must not turn the wait into a run of zero sleeps.
            self._sleep(max(self._sent[0] + self.period - now, 1e-6))
            now = self._clock()
        self._sent.append(now)

    def _forget(self, now: float) -> None:
        """Drop the sends that have left the window."""
        while self._sent and now - self._sent[0] >= self.period:
            self._sent.popleft()


class Backoff:
    """Paces the pool after a server asks to slow down (421, 4.7.x, "too much mail").

    Nothing new starts for `delay` seconds; then one message at a time goes as a probe
    until the server accepts one, and full speed resumes. Each refusal in a row doubles
    the delay, up to `cap`.
    """

    def __init__(self, first: float = 1.0, cap: float = 30.0) -> None:
        self.first, self.cap = first, cap
        self.delay = 0.0
        self.until = 0.0

    @property
    def probing(self) -> bool:
        return self.delay > 0

    def throttled(self, now: float) -> float:
        """Back off; returns how long. Refusals that arrive while already backing off were
        of messages sent before it began: only a refused probe doubles the delay."""
        if now < self.until:
            return self.until - now
        self.delay = min(self.cap, self.delay * 2) if self.delay else self.first
        self.until = now + self.delay
        return self.delay

    def passed(self) -> None:
        """The server accepted a message: back to full speed."""
        self.delay = self.until = 0.0

    def remaining(self, now: float) -> float:
        return max(0.0, self.until - now)

    def may_start(self, in_flight: int, now: float) -> bool:
        """Whether a new message may start, with `in_flight` messages under way."""
        return now >= self.until and (not self.probing or in_flight == 0)
