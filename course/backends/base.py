"""The backend contract shared by every delivery backend."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self

Outcome = Literal["sent", "retry", "bounced", "failed"]


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A finished message: envelope plus the exact bytes that go on the wire (CRLF lines)."""

    sender: str
    recipient: str
    message_id: str
    data: bytes


@dataclass(frozen=True, slots=True)
class SendResult:
    """What the backend did with one message; `reply` is the server's answer when there is one."""

    message: OutgoingMessage
    outcome: Outcome
    reply: str = ""


ResultHook = Callable[[Sequence["SendResult"]], None]


class Backend(ABC):
    """Open once, send batches, close; usable as a context manager."""

    name: str = "backend"
    # A remote backend hands messages to another machine: the deliverer records each
    # result as it comes (via `on_result`), so a crash leaves at most one message in doubt
    # per connection. Local backends are recorded a batch at a time.
    remote: bool = False

    # Optional hooks, not abstract: the embedded backends have nothing to acquire.
    def open(self) -> None:  # noqa: B027
        """Acquire whatever the backend needs (a connection, a folder)."""

    def close(self) -> None:  # noqa: B027
        """Release what `open` acquired; safe to call twice."""

    @abstractmethod
    def send(
        self, messages: Sequence[OutgoingMessage], on_result: ResultHook | None = None
    ) -> list[SendResult]:
        """Deliver the messages, one result per message, in order.

        `on_result` (when given) is called with results as soon as they are known; a remote
        backend sends nothing more on their connections until it returns.
        """

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def report(results: list[SendResult], on_result: ResultHook | None) -> list[SendResult]:
    """Pass the results to the hook (when there is one) and return them."""
    if on_result is not None and results:
        on_result(results)
    return results
