"""Settings -> the configured backend."""

from __future__ import annotations

import os
from collections.abc import Mapping

from course.backends.base import Backend
from course.backends.file import Clock, FileBackend, utc_now
from course.backends.inbox import InboxBackend
from course.backends.memory import MemoryBackend
from course.backends.smtp import SmtpBackend
from course.config import Settings
from course.errors import ConfigError


def make_backend(
    settings: Settings, clock: Clock = utc_now, environ: Mapping[str, str] = os.environ
) -> Backend:
    """The backend `delivery.backend` names; `clock` stamps what the local ones store."""
    delivery = settings.delivery
    if delivery.backend == "inbox":
        return InboxBackend(delivery.inbox, clock)
    if delivery.backend == "file":
        return FileBackend(delivery.outbox, clock)
    if delivery.backend == "memory":
        return MemoryBackend()
    return SmtpBackend(delivery.smtp, smtp_password(settings, environ))


def smtp_password(settings: Settings, environ: Mapping[str, str]) -> str:
    """The password comes from the environment only, never from schedule.yaml."""
    smtp = settings.delivery.smtp
    if not smtp.username:
        return ""
    password = environ.get(smtp.password_env, "")
    if not password:
        raise ConfigError(
            f"{settings.source}: delivery.smtp.password_env: the environment variable "
            f"{smtp.password_env} is not set; export it with the password for "
            f"{smtp.username!r}"
        )
    return password
