"""A backend that checks and records instead of sending, for `course send --dry-run`."""

from __future__ import annotations

from collections.abc import Sequence

from course.backends.base import Backend, OutgoingMessage, ResultHook, SendResult, report
from course.backends.wire import check_batch


class RecordingBackend(Backend):
    """Runs the wire check every backend runs, keeps each envelope, and sends nothing.

    It needs no server and no secret, writes nothing, and keeps (recipient, Message-ID)
    rather than whole messages, so rehearsing a large tick costs little memory.
    """

    name = "dry run"

    def __init__(self) -> None:
        self.envelopes: list[tuple[str, str]] = []

    def send(
        self, messages: Sequence[OutgoingMessage], on_result: ResultHook | None = None
    ) -> list[SendResult]:
        check_batch(messages)
        self.envelopes.extend((m.recipient, m.message_id) for m in messages)
        return report([SendResult(message, "sent") for message in messages], on_result)
