"""SpamAssassin verdicts for the preview, scored in the background.

A run takes seconds (most of it SpamAssassin loading its rules), too long to hold a page
for. So the preview asks for verdicts, shows "scoring" meanwhile, and the open page
reloads when `generation` moves. One run at a time; the lessons of a build are scored
together in one run.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping

from course.checks.spam import SpamAssassin, SpamVerdict
from course.errors import CourseError

PENDING = "scoring in the background; the page reloads when it is done"
NOT_INSTALLED = "spamassassin is not installed (Debian: apt-get install spamassassin)"
KEPT = 256  # verdicts remembered; older ones are scored again if asked for

# (course version, day) for a lesson as the sample subscriber; ("inbox", key) for a message.
Key = tuple[str, int | str]


class SpamScorer:
    """Scores batches of messages off the request path and remembers the verdicts."""

    def __init__(self, judge: SpamAssassin | None) -> None:
        self._judge = judge
        self._lock = threading.Lock()
        self._verdicts: OrderedDict[Key, SpamVerdict | str] = OrderedDict()
        self._queue: list[dict[Key, bytes]] = []
        self._running = False
        self.generation = 0  # moves each time a run finishes

    def verdict(self, key: Key) -> SpamVerdict | str:
        """The verdict for `key`, PENDING while it is being scored, or why there is none."""
        if self._judge is None:
            return NOT_INSTALLED
        with self._lock:
            return self._verdicts.get(key, "not scored")

    def request(self, messages: Mapping[Key, bytes]) -> None:
        """Score these messages (each under its key) unless already scored or queued."""
        if self._judge is None:
            return
        with self._lock:
            wanted = {k: v for k, v in messages.items() if k not in self._verdicts}
            if not wanted:
                return
            for key in wanted:
                self._verdicts[key] = PENDING
            self._queue.append(wanted)
            if self._running:
                return
            self._running = True
        threading.Thread(target=self._work, name="preview-spamassassin", daemon=True).start()

    def _work(self) -> None:
        try:
            self._drain()
        finally:
            with self._lock:
                self._running = False

    def _drain(self) -> None:
        assert self._judge is not None
        while True:
            with self._lock:
                if not self._queue:
                    return
                batch = self._queue.pop(0)
            keys = list(batch)
            try:
                found: list[SpamVerdict | str] = list(self._judge.score(list(batch.values())))
            except CourseError as exc:
                found = [f"SpamAssassin failed: {exc}"] * len(keys)
            with self._lock:
                for key, verdict in zip(keys, found, strict=True):
                    self._verdicts[key] = verdict
                    self._verdicts.move_to_end(key)
                while len(self._verdicts) > KEPT:
                    self._verdicts.popitem(last=False)
                self.generation += 1
