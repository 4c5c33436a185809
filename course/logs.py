"""Logging to stderr for the long-running commands, with repeated lines rate-limited.

A flood (thousands of failed accepts, thousands of malformed requests) repeats the same
line many times a second; unchecked, it wrote hundreds of megabytes in under a minute.
The first few of each kind are written, then one summary per window says how many were
left out.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Final

FORMAT: Final = "%(asctime)s %(levelname)s %(message)s"
_KINDS_REMEMBERED: Final = 1024


class RepeatFilter(logging.Filter):
    """Let through `burst` records of one kind per `window` seconds; count the rest.

    A record's kind is its logger, level and message template (the arguments may differ:
    "connection from %s refused" is one kind whoever connects). When a window with dropped
    records ends, the next record of that kind carries a note saying how many there were.
    """

    def __init__(
        self,
        *,
        burst: int = 5,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        # kind -> [window start, records let through in it, records dropped in it]
        self._kinds: dict[tuple[str, int, str], list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        with self._lock:
            state = self._kinds.get(kind)
            if state is None or now - state[0] >= self.window:
                dropped = int(state[2]) if state else 0
                if len(self._kinds) >= _KINDS_REMEMBERED and state is None:
                    self._kinds.clear()  # a bound, not an LRU: forgetting costs a few extra lines
                self._kinds[kind] = [now, 1, 0]
                if dropped:
                    record.msg = f"{record.msg} [{dropped} more like this in the last window]"
                return True
            if state[1] < self.burst:
                state[1] += 1
                return True
            state[2] += 1
            return False


def log_to_stderr() -> None:
    """INFO and up to stderr, each kind of line rate-limited (see RepeatFilter)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RepeatFilter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    # APScheduler logs every job run at INFO; our own tick line says what matters.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
