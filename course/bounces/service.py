"""Wiring: settings + environment -> the bounce mailbox, the resolver, one processing pass."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import datetime

from course.article import load_article
from course.bounces.mailbox import Mailbox, open_mailbox
from course.bounces.process import MailboxSummary, process_mailbox
from course.bounces.resolve import Resolver
from course.bounces.verp import ReturnPath
from course.build import course_id
from course.config import Settings
from course.errors import ConfigError
from course.ledger import Ledger
from course.suppress import SuppressionLog
from course.unsubscribe import load_secret

LOG = logging.getLogger("course.bounces")


def mailbox_password(settings: Settings, environ: Mapping[str, str] = os.environ) -> str:
    """The IMAP password from `bounces.password_env` ("" for a Maildir)."""
    if settings.bounces.imap is None:
        return ""
    name = settings.bounces.password_env
    password = environ.get(name, "")
    if not password:
        raise ConfigError(
            f"{settings.source}: bounces.password_env: set the environment variable {name} "
            f"to the password of {settings.bounces.mailbox}"
        )
    return password


def open_bounce_mailbox(settings: Settings, environ: Mapping[str, str] = os.environ) -> Mailbox:
    return open_mailbox(settings.bounces, mailbox_password(settings, environ))


def make_resolver(
    settings: Settings, ledger: Ledger, environ: Mapping[str, str] = os.environ
) -> Resolver:
    """A resolver with the course's secret and id, the ones its messages were signed with."""
    secret = load_secret(settings.unsubscribe.secret_env, settings.base_dir, environ)
    identity = course_id(settings, load_article(settings.course.article))
    return_path = ReturnPath.from_settings(settings.sender, secret, identity)
    return Resolver(ledger, return_path, unsubscribe_secret=secret, course_id=identity)


def process_once(
    settings: Settings, ledger: Ledger, *, now: datetime, dry_run: bool = False
) -> MailboxSummary:
    """Read the configured bounce mailbox once (each bounce-mailbox job of `course run`)."""
    with open_bounce_mailbox(settings) as mailbox:
        return process_opened(settings, mailbox, ledger, now=now, dry_run=dry_run)


def process_opened(
    settings: Settings, mailbox: Mailbox, ledger: Ledger, *, now: datetime, dry_run: bool = False
) -> MailboxSummary:
    """One pass over a mailbox already opened (`course bounces` opens it before the ledger,
    so a mailbox it cannot reach is refused before anything is created)."""
    summary = process_mailbox(
        mailbox,
        make_resolver(settings, ledger),
        ledger,
        now=now,
        dry_run=dry_run,
        log=SuppressionLog.in_project(settings.base_dir),
    )
    if summary.lines or summary.held:
        LOG.info("bounce mailbox %s: %s", settings.bounces.mailbox, summary.summary())
    return summary
