"""Send one lesson to one address, as a chosen subscriber, outside the ledger."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime

from course.arguments import operator_address
from course.backends.base import OutgoingMessage, SendResult
from course.backends.factory import make_backend
from course.build import CourseBuild, sample_recipient
from course.config import Settings
from course.errors import CourseError, DeliveryError
from course.message import Recipient
from course.runtime import make_links, read_subscribers


def recipient_as(
    settings: Settings,
    build: CourseBuild,
    email: str | None,
    environ: Mapping[str, str] = os.environ,
) -> Recipient:
    """The CSV subscriber `email` (personalisation and all), or the sample subscriber."""
    if not email:
        return sample_recipient(settings)
    wanted = operator_address(email, "--as").casefold()
    for subscriber in read_subscribers(settings).subscribers:
        if subscriber.email.casefold() == wanted:
            unsubscribe = make_links(settings, build, environ).unsubscribe(subscriber.email)
            return Recipient(
                subscriber.email, subscriber.first_name, unsubscribe, subscriber.fields
            )
    raise CourseError(f"--as: {email!r} is not a subscriber in {settings.subscribers}")


def send_test(
    settings: Settings,
    build: CourseBuild,
    *,
    day: int,
    to: str,
    as_recipient: Recipient,
    now: datetime,
) -> SendResult:
    """Deliver lesson `day` personalised for `as_recipient`, but addressed to `to`."""
    if not 1 <= day <= len(build.lessons):
        raise CourseError(f"--day: expected 1 to {len(build.lessons)}, got {day}")
    to = operator_address(to, "--to")
    shown = Recipient(to, as_recipient.name, as_recipient.unsubscribe_url, as_recipient.fields)
    message_id, data = build.lesson(day).build(shown, date=now)
    # Not a subscriber's lesson, so no VERP token: a bounce of it names nobody on the list.
    message = OutgoingMessage(settings.sender.envelope_sender, to, message_id, data)
    with make_backend(settings) as backend:
        (result,) = backend.send([message])
    if result.outcome != "sent":
        raise DeliveryError(f"test message to {to} was not accepted: {result.reply}")
    return result
