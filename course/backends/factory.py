"""Settings -> the configured backend."""

from __future__ import annotations

from course.backends.base import Backend
from course.backends.file import Clock, FileBackend, utc_now
from course.backends.inbox import InboxBackend
from course.backends.memory import MemoryBackend
from course.config import Settings
from course.errors import ConfigError


def make_backend(settings: Settings, clock: Clock = utc_now) -> Backend:
    """The backend `delivery.backend` names; `clock` stamps what the local ones store."""
    delivery = settings.delivery
    if delivery.backend == "inbox":
        return InboxBackend(delivery.inbox, clock)
    if delivery.backend == "file":
        return FileBackend(delivery.outbox, clock)
    if delivery.backend == "memory":
        return MemoryBackend()
    raise ConfigError(
        f"{settings.source}: delivery.backend: {delivery.backend!r} is not "
        "available yet; use inbox or file"
    )
