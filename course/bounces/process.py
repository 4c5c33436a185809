"""One pass over the bounce mailbox: classify, attribute, take in, move.

Each message is taken in (its notices recorded, its subscriber changed) before it is moved,
so a crash in between only means reading it again next time, which changes nothing: every
notice's key comes from the message's bytes.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from course.bounces.classify import classify
from course.bounces.mailbox import Mailbox, MailboxMessage
from course.bounces.notice import Verdict
from course.bounces.resolve import Resolution, Resolver
from course.ledger import Ledger, NoticeResult
from course.suppress import SuppressionLog, take_notice

LOG = logging.getLogger("course.bounces")


@dataclass(frozen=True, slots=True)
class Line:
    """One message as `course bounces` reports it."""

    title: str
    outcome: str  # "bounced ann@example.com (VERP token)", "held: ...", "ignored: ..."


@dataclass
class MailboxSummary:
    """What one pass did (or, with dry_run, would do)."""

    lines: list[Line] = field(default_factory=list)
    verdicts: Counter[Verdict] = field(default_factory=Counter)
    changed: int = 0
    held: list[Line] = field(default_factory=list)  # everything now waiting for the operator

    def summary(self) -> str:
        read = len(self.lines)
        if not read:
            return "no new messages"
        parts = [f"{n} {verdict}" for verdict, n in sorted(self.verdicts.items()) if n]
        new_held = sum(1 for line in self.lines if line.outcome.startswith("held"))
        if new_held:
            parts.append(f"{new_held} held for you")
        return f"{read} new message{'s' if read != 1 else ''}: " + ", ".join(parts or ["nothing"])


def message_key(message: MailboxMessage) -> str:
    """The same for the same message however often it is read."""
    return "mailbox:" + hashlib.sha256(message.data).hexdigest()[:32]


def process_mailbox(
    mailbox: Mailbox,
    resolver: Resolver,
    ledger: Ledger,
    *,
    now: datetime,
    dry_run: bool = False,
    log: SuppressionLog | None = None,
) -> MailboxSummary:
    """Read every waiting message once; with dry_run, change nothing and move nothing.

    What stops mail goes into the suppression `log` first (course.suppress.take_notice).
    """
    result = MailboxSummary()
    seen: set[str] = set()
    for message in mailbox.waiting():
        seen.add(message_key(message))
        report = classify(message.data)
        resolution = resolver.resolve(report, message_key(message))
        line = Line(report.title, _outcome(resolution))
        result.lines.append(line)
        for notice in resolution.notices:
            result.verdicts[notice.verdict] += 1
        if resolution.held:
            result.held.append(line)
        if dry_run:
            continue
        for notice in resolution.notices:
            taken = take_notice(
                log,
                ledger,
                key=notice.key,
                verdict=notice.verdict,
                email=notice.email,
                detail=notice.detail,
                source=notice.source,
                evidence=notice.evidence,
                now=now,
                day=notice.day,
            )
            result.changed += taken == NoticeResult.CHANGED
            LOG.info("bounce mailbox: %s %s: %s", notice.verdict, notice.email, taken)
        if resolution.held:
            mailbox.hold(message)
        else:
            mailbox.processed(message)
    for message in mailbox.held():
        if message_key(message) not in seen:
            report = classify(message.data)
            resolution = resolver.resolve(report, message_key(message))
            result.held.append(Line(report.title, _outcome(resolution)))
    return result


def _outcome(resolution: Resolution) -> str:
    if resolution.held:
        return f"held: {resolution.held}"
    if not resolution.notices:
        return f"ignored: {resolution.ignored}"
    return "; ".join(
        f"{n.verdict} {n.email} ({n.evidence}): {n.detail}" for n in resolution.notices
    )
