"""A backend that keeps messages in a list, for tests and dry runs (like Django's locmem)."""

from __future__ import annotations

from collections.abc import Sequence

from course.backends.base import Backend, OutgoingMessage, ResultHook, SendResult, report
from course.backends.wire import check_batch


class MemoryBackend(Backend):
    """Validate each message like a strict MTA would, then append it to `outbox`."""

    name = "memory"

    def __init__(self) -> None:
        self.outbox: list[OutgoingMessage] = []

    def send(
        self, messages: Sequence[OutgoingMessage], on_result: ResultHook | None = None
    ) -> list[SendResult]:
        """Store the whole batch, or nothing if any message is malformed."""
        check_batch(messages)
        # OutgoingMessage is frozen and check_batch insists on immutable bytes,
        # so storing the objects themselves is as good as storing copies.
        self.outbox.extend(messages)
        return report([SendResult(message, "sent") for message in messages], on_result)
