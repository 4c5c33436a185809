"""Whose bounce is it? A classified report -> Notices about subscribers, or a reason to hold.

An address is bounced only on evidence that names it: our VERP token in the address the
bounce was mailed to, or the report's own naming of the failed recipient (the DSN's
Original-Recipient/Final-Recipient, Exim's X-Failed-Recipients, the bounce text an MTA
detector read) matching a subscriber. A complaint is attributed by the same VERP token, by
our signed unsubscribe link in the reported message, or by the report's Original-Rcpt-To or
the original To matching a subscriber. Anything else is held for the operator.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Protocol

from course.bounces.classify import printable
from course.bounces.notice import Notice, Verdict, lesson_day
from course.bounces.report import Failure, FailureKind, Report, ReportKind
from course.bounces.verp import ReturnPath
from course.ledger import SubscriberView
from course.tokens import subscriber_ref
from course.unsubscribe import InvalidToken, verify_token

SOURCE = "bounce mailbox"
UNSUBSCRIBE_TOKEN = re.compile(r"/unsubscribe/([A-Za-z0-9_.-]+)$")
SEVERITY = {FailureKind.PERMANENT: 2, FailureKind.POLICY: 1, FailureKind.TEMPORARY: 0}


class Directory(Protocol):
    """The subscribers, as far as attributing a bounce needs them (a Ledger is one)."""

    def subscriber(self, email: str) -> SubscriberView | None: ...

    def subscriber_by_ref(self, ref: str) -> SubscriberView | None: ...

    def fill_refs(self, ref_of: Callable[[str], str]) -> int: ...


@dataclass(frozen=True, slots=True)
class Resolution:
    """What to do with one message: notices to take in, or why it is held for the operator."""

    notices: tuple[Notice, ...] = ()
    held: str = ""  # "" when the message is dealt with
    ignored: str = ""  # why nothing is done with it, when that is on purpose


class Resolver:
    """Attributes reports to subscribers for one processing run."""

    def __init__(
        self,
        directory: Directory,
        return_path: ReturnPath,
        *,
        unsubscribe_secret: bytes,
        course_id: str,
    ) -> None:
        self._directory = directory
        self._return_path = return_path
        self._unsubscribe_secret = unsubscribe_secret
        self._course_id = course_id
        self._refs_filled = False

    def resolve(self, report: Report, key: str) -> Resolution:
        if report.kind == ReportKind.AUTO_REPLY:
            return Resolution(ignored="an automatic reply")
        if report.kind == ReportKind.NO_ACTION:
            return Resolution(ignored=report.note or "nothing to act on")
        if report.kind == ReportKind.UNKNOWN:
            return Resolution(held=report.note or "not recognised")
        sighting = self._return_path.read(report.envelope)
        named = [a for f in report.failures for a in f.addresses] + list(report.complained)
        verp_email = self._by_ref(sighting.mark.ref, named) if sighting.mark else None
        forged = (
            f"; forged VERP token in {printable(sighting.forged[0])}" if sighting.forged else ""
        )
        day = (
            sighting.mark.day if sighting.mark else lesson_day(report.message_ids, self._course_id)
        )
        if report.kind == ReportKind.COMPLAINT:
            resolution = self._complaint(report, key, verp_email, forged)
        else:
            resolution = self._delivery(report, key, verp_email, forged)
        notices = tuple(replace(n, day=day) for n in resolution.notices)
        return replace(resolution, notices=notices)

    # --- complaints --------------------------------------------------------------------------

    def _complaint(
        self, report: Report, key: str, verp_email: str | None, forged: str
    ) -> Resolution:
        candidates: list[tuple[str, str]] = []
        if verp_email:
            candidates.append((verp_email, "VERP token"))
        candidates += [(e, "unsubscribe link") for e in self._link_owners(report)]
        candidates += [(e, "Original-Rcpt-To") for e in report.complained]
        for email, evidence in candidates:
            known = self._known(email)
            if known:
                notice = Notice(
                    Verdict.COMPLAINED,
                    known,
                    "spam report (ARF)",
                    SOURCE,
                    f"{key}:{known.lower()}",
                    evidence,
                )
                return Resolution((notice,))
        return Resolution(held="a complaint that names no subscriber" + forged)

    def _link_owners(self, report: Report) -> Iterator[str]:
        for url in report.unsubscribe_urls:
            match = UNSUBSCRIBE_TOKEN.search(url)
            if match is None:
                continue
            try:
                owner = verify_token(self._unsubscribe_secret, match[1], course_id=self._course_id)
            except InvalidToken:
                continue
            # Links sent before opaque ids carry the address; newer ones the subscriber's id.
            email = owner.email or self._by_ref(owner.ref, report.complained)
            if email:
                yield email

    # --- bounces -------------------------------------------------------------------------------

    def _delivery(
        self, report: Report, key: str, verp_email: str | None, forged: str
    ) -> Resolution:
        if verp_email:
            # A message has exactly one recipient, so every failure in its bounce is theirs,
            # whatever address the report names (a forward, an internal rewrite, none).
            failure = max(report.failures, key=lambda f: SEVERITY[f.kind])
            return Resolution((self._notice(failure, verp_email, key, "VERP token"),))
        notices: dict[str, Notice] = {}
        for failure in report.failures:
            for address in failure.addresses:
                known = self._known(address)
                if known and known.lower() not in notices:
                    evidence = failure.named_by or "report"
                    notices[known.lower()] = self._notice(failure, known, key, evidence)
        if notices:
            return Resolution(tuple(notices.values()))
        names = sorted({printable(a) for f in report.failures for a in f.addresses})
        why = f"names {', '.join(names)}, not a subscriber" if names else "names no recipient"
        return Resolution(held=f"a bounce that {why}{forged}")

    def _notice(self, failure: Failure, email: str, key: str, evidence: str) -> Notice:
        verdict = Verdict.BOUNCED if failure.kind is FailureKind.PERMANENT else Verdict.NOTED
        detail = failure.diagnostic or failure.status or "bounced"
        if failure.status and failure.status not in detail:
            detail = f"{failure.status} {detail}"
        if failure.kind is FailureKind.POLICY:
            detail = f"refused by policy, not suppressed: {detail}"
        return Notice(verdict, email, detail, SOURCE, f"{key}:{email.lower()}", evidence)

    # --- looking subscribers up ------------------------------------------------------------------

    def _known(self, email: str) -> str | None:
        view = self._directory.subscriber(email)
        return view.email if view is not None else None

    def _by_ref(self, ref: str, hints: Iterable[str]) -> str | None:
        """The subscriber whose opaque id is `ref`: the report's own addresses first, then the
        ledger's index of ids (given to rows that lack one, once per run, on a miss)."""
        for email in hints:
            if self._ref(email) == ref:
                return self._known(email)
        view = self._directory.subscriber_by_ref(ref)
        if view is None and not self._refs_filled:
            self._directory.fill_refs(self._ref)
            self._refs_filled = True
            view = self._directory.subscriber_by_ref(ref)
        return view.email if view is not None else None

    def _ref(self, email: str) -> str:
        return subscriber_ref(self._return_path.secret, self._return_path.course_id, email)
