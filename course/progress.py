"""Progress for long work: a live line on a terminal, silence when output is piped."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Call with a running count; redraws at most ten times a second, only on a TTY."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self._last = 0.0
        self._shown = False

    def __call__(self, count: int, note: str = "") -> None:
        now = time.monotonic()
        if not self.enabled or now - self._last < 0.1:
            return
        self._last = now
        self._shown = True
        self.stream.write(f"\r\x1b[K{self.label}: {count:,}{' ' + note if note else ''}")
        self.stream.flush()

    def done(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
