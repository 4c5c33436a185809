"""The bounce mailbox processed against a real ledger: the corpus, message by message."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from bounce_corpus import load, names

from course.bounces.classify import classify
from course.bounces.mailbox import MaildirMailbox
from course.bounces.process import process_mailbox
from course.bounces.resolve import Resolver
from course.bounces.verp import ReturnPath
from course.ledger import (
    DeliveryOutcome,
    DeliveryState,
    Ledger,
    NoticeResult,
    SubscriberRecord,
    Verdict,
)
from course.suppress import Action, Suppression, SuppressionLog, apply_pending, suppress
from course.tokens import subscriber_ref
from course.unsubscribe import legacy_token, make_token

SECRET = b"bounce-test-secret-0123456789"
COURSE = "why-he-pushes"
NOW = datetime(2026, 6, 20, 9, 0, tzinfo=UTC)
RETURN_PATH = ReturnPath("bounces@example.com", True, SECRET, COURSE)
# The forger knows the scheme and a subscriber's address, not the secret.
FORGER = ReturnPath("bounces@example.com", True, b"a-guessed-secret-0123456789", COURSE)

SUBSCRIBERS = [
    "ana@example.com", "ben@example.org", "cleo@example.net", "dev@example.com",
    "eve@example.org", "finn@example.com", "gus@example.net", "hana@example.org",
    "ivy@example.com", "jo@example.net", "kai@example.com", "lea@example.org",
    "lou@example.net", "max@example.com", "nia@example.net", "oz@example.com",
    "pia@example.org", "quinn@example.org", "rae@example.net",
]  # fmt: skip


def sign(kind: str, email: str, day: int) -> str:
    if kind == "VERP":
        return RETURN_PATH.for_lesson(email, day)
    if kind == "FORGED":
        return FORGER.for_lesson(email, day)
    return make_token(SECRET, COURSE, email)


@pytest.fixture
def ledger(tmp_path: Path, ledger_url: str) -> Iterator[Ledger]:
    """The corpus's subscribers in a ledger, once on SQLite and once on PostgreSQL."""
    with Ledger.open(ledger_url, base_dir=tmp_path) as opened:
        records = [SubscriberRecord(e, e.split("@")[0], "UTC", {}, None) for e in SUBSCRIBERS]
        opened.sync(records, now=NOW - timedelta(days=30), first_due=lambda _tz, t: t)
        yield opened


@pytest.fixture
def maildir(tmp_path: Path) -> Path:
    box = tmp_path / "bounces"
    MaildirMailbox(box)
    for number, name in enumerate(names()):
        (box / "new" / f"{1718000000 + number}.M{number}P1.mx.example.com").write_bytes(
            load(name, sign)
        )
    return box


def resolver(ledger: Ledger) -> Resolver:
    return Resolver(ledger, RETURN_PATH, unsubscribe_secret=SECRET, course_id=COURSE)


def status(ledger: Ledger, email: str) -> tuple[str, str]:
    view = ledger.subscriber(email)
    assert view is not None
    return view.status, view.status_reason


def test_the_corpus_lands_where_the_issue_says(ledger: Ledger, maildir: Path) -> None:
    summary = process_mailbox(MaildirMailbox(maildir), resolver(ledger), ledger, now=NOW)

    # Hard bounces suppress, with the remote server's diagnostic as the reason.
    for email in ("ana@example.com", "ben@example.org", "cleo@example.net",
                  "dev@example.com", "eve@example.org"):  # fmt: skip
        assert status(ledger, email)[0] == "bounced", email
    assert "550 5.1.1" in status(ledger, "ana@example.com")[1]
    assert "VERP token" in status(ledger, "ana@example.com")[1]
    assert "RESOLVER.ADR.RecipientNotFound" in status(ledger, "cleo@example.net")[1]
    # A VERP bounce whose body names someone else, or nobody readable, still finds its
    # subscriber.
    assert status(ledger, "lea@example.org")[0] == "bounced"
    assert status(ledger, "lou@example.net")[0] == "bounced"
    # Delayed DSNs, a greylisting warning and a policy refusal do not suppress...
    for email in ("finn@example.com", "gus@example.net", "pia@example.org", "nia@example.net"):
        assert status(ledger, email)[0] == "active", email
    # ...but are noted for `course status`.
    noted = {n.email for n in ledger.recent_notices((Verdict.NOTED,))}
    assert noted == {"finn@example.com", "gus@example.net", "pia@example.org", "nia@example.net"}
    # Out-of-office and vacation replies do not.
    for email in ("hana@example.org", "ivy@example.com", "quinn@example.org"):
        assert status(ledger, email)[0] == "active", email
    # Complaints unsubscribe, with the reason "complaint": by VERP and Original-Rcpt-To, and
    # (the recipient redacted) by our unsubscribe link in the reported message.
    for email in ("jo@example.net", "kai@example.com"):
        state, reason = status(ledger, email)
        assert state == "unsubscribed", email
        assert reason.startswith("complaint"), reason
    # A forged VERP token is ignored: its target stays, and the message waits for you.
    assert status(ledger, "max@example.com")[0] == "active"
    assert status(ledger, "oz@example.com")[0] == "active"  # a success notice
    assert status(ledger, "rae@example.net")[0] == "active"  # a person's reply
    held = sorted(line.outcome for line in summary.held)
    assert len(held) == 3
    assert any("forged VERP token" in h for h in held)
    assert any("stranger@example.com, not a subscriber" in h for h in held)
    assert any("no delivery report, complaint or auto-reply" in h for h in held)

    # Everything was moved: processed to cur/ seen, the held ones flagged.
    assert os.listdir(maildir / "new") == []
    flags = sorted(name.rpartition(",")[2] for name in os.listdir(maildir / "cur"))
    assert flags == ["F"] * 3 + ["S"] * (len(names()) - 3)


def test_a_replayed_message_changes_nothing_twice(ledger: Ledger, maildir: Path) -> None:
    process_mailbox(MaildirMailbox(maildir), resolver(ledger), ledger, now=NOW)
    ledger.reactivate("ana@example.com", now=NOW, first_due=lambda _tz, t: t)
    # The same bounce delivered again (a crash before the move, or an MTA's duplicate).
    again = load("postfix-hard.eml", sign)
    (maildir / "new" / "1719000000.M1P1.mx.example.com").write_bytes(again)
    summary = process_mailbox(MaildirMailbox(maildir), resolver(ledger), ledger, now=NOW)
    assert summary.changed == 0
    assert status(ledger, "ana@example.com")[0] == "active"
    key = next(iter(ledger.recent_notices((Verdict.BOUNCED,))))
    assert key.email


def test_dry_run_changes_and_moves_nothing(ledger: Ledger, maildir: Path) -> None:
    before = sorted(os.listdir(maildir / "new"))
    summary = process_mailbox(
        MaildirMailbox(maildir), resolver(ledger), ledger, now=NOW, dry_run=True
    )
    assert sorted(os.listdir(maildir / "new")) == before
    assert status(ledger, "ana@example.com")[0] == "active"
    assert summary.verdicts[Verdict.BOUNCED] == 7
    assert any(line.outcome.startswith("bounced ana@example.com (VERP token)")
               for line in summary.lines)  # fmt: skip


def test_without_verp_the_dsn_fields_name_the_subscriber(ledger: Ledger, tmp_path: Path) -> None:
    box = tmp_path / "plain"
    MaildirMailbox(box)
    plain = ReturnPath("bounces@example.com", False, SECRET, COURSE)
    data = load("postfix-hard.eml", lambda kind, email, day: "bounces@example.com")
    (box / "new" / "1.M1P1.host").write_bytes(data)
    resolve = Resolver(ledger, plain, unsubscribe_secret=SECRET, course_id=COURSE)
    process_mailbox(MaildirMailbox(box), resolve, ledger, now=NOW)
    state, reason = status(ledger, "ana@example.com")
    assert state == "bounced"
    assert "Original-Recipient" in reason


@pytest.mark.parametrize("token", [make_token, legacy_token])
def test_a_redacted_complaint_is_placed_by_its_unsubscribe_link(
    ledger: Ledger, tmp_path: Path, token: Callable[[bytes, str, str], str]
) -> None:
    def with_link(kind: str, email: str, day: int) -> str:
        return token(SECRET, COURSE, email) if kind == "UNSUB" else sign(kind, email, day)

    box = MaildirMailbox(tmp_path / "fbl")
    data = load("microsoft-complaint-redacted.eml", with_link)
    (tmp_path / "fbl" / "new" / "1.M1P1.host").write_bytes(data)
    process_mailbox(box, resolver(ledger), ledger, now=NOW)
    state, reason = status(ledger, "kai@example.com")
    assert state == "unsubscribed"
    assert "unsubscribe link" in reason


def test_a_verp_token_is_found_by_the_ledgers_opaque_ids(ledger: Ledger) -> None:
    ref = subscriber_ref(SECRET, COURSE, "lou@example.net")
    resolve = resolver(ledger)
    assert resolve._by_ref(ref, []) == "lou@example.net"
    assert resolve._by_ref("A" * 16, []) is None


def test_notices_are_idempotent_by_key(ledger: Ledger) -> None:
    def take() -> NoticeResult:
        return ledger.take_notice(
            key="sendgrid:abc",
            verdict=Verdict.COMPLAINED,
            email="new@example.org",
            detail="marked as spam",
            source="sendgrid",
            now=NOW,
        )

    assert take() == NoticeResult.CHANGED
    assert take() == NoticeResult.DUPLICATE
    # An address the ledger never saw stays suppressed if it turns up in the CSV later.
    assert status(ledger, "new@example.org")[0] == "unsubscribed"


def test_a_bounce_for_an_unknown_address_changes_nothing(ledger: Ledger) -> None:
    result = ledger.take_notice(
        key="ses:1:x",
        verdict=Verdict.BOUNCED,
        email="stranger@example.org",
        detail="550",
        source="ses",
        now=NOW,
    )
    assert result == NoticeResult.RECORDED
    assert ledger.subscriber("stranger@example.org") is None


def test_one_unreadable_message_does_not_stop_the_others(ledger: Ledger, tmp_path: Path) -> None:
    box = tmp_path / "mixed"
    MaildirMailbox(box)
    (box / "new" / "1.M1P1.host").write_bytes(b"\x00\xff" * 50_000)
    shutil.copy(
        Path(__file__).parent / "data" / "bounces" / "gmail-hard.eml", box / "new" / "2.M1P1.host"
    )
    summary = process_mailbox(MaildirMailbox(box), resolver(ledger), ledger, now=NOW)
    assert status(ledger, "ben@example.org")[0] == "bounced"
    assert len(summary.held) == 1
    # Listed again next time, as still waiting for the operator; not read as new.
    again = process_mailbox(MaildirMailbox(box), resolver(ledger), ledger, now=NOW)
    assert again.lines == []
    assert [line.outcome for line in again.held] == [line.outcome for line in summary.held]


def test_a_bounce_that_says_which_lesson_marks_that_delivery_bounced(
    ledger: Ledger, tmp_path: Path
) -> None:
    # Day 1 went out to everyone; Gmail's bounce of it comes back later.
    due = ledger.claim(ledger.due(NOW), now=NOW)
    ledger.record(
        [
            DeliveryOutcome(d.subscriber_id, d.day, DeliveryState.SENT, "<id>", "250 ok",
                            next_due_at=NOW + timedelta(days=1))
            for d in due
        ],
        now=NOW,
    )  # fmt: skip
    resolve = Resolver(
        ledger,
        ReturnPath("bounces@example.com", False, SECRET, COURSE),
        unsubscribe_secret=SECRET,
        course_id=COURSE,
    )
    report = classify(load("gmail-hard.eml", sign))
    (notice,) = resolve.resolve(report, "mailbox:x").notices
    assert notice.day == 1  # from the returned Message-ID <why-he-pushes.d01.…@example.com>
    box = MaildirMailbox(tmp_path / "box")
    (tmp_path / "box" / "new" / "1.M1P1.host").write_bytes(load("gmail-hard.eml", sign))
    process_mailbox(box, resolve, ledger, now=NOW)
    (delivery,) = ledger.history("ben@example.org")
    assert delivery.state == DeliveryState.BOUNCED
    assert "550-5.1.1" in delivery.last_reply
    assert ledger.history("ana@example.com")[0].state == DeliveryState.SENT


def test_a_replay_after_resubscribe_changes_nothing_through_the_suppression_log(
    ledger: Ledger, maildir: Path, tmp_path: Path
) -> None:
    log = SuppressionLog(tmp_path / "state" / "suppressions.log")
    first_due = lambda _tz, t: t  # noqa: E731
    process_mailbox(MaildirMailbox(maildir), resolver(ledger), ledger, now=NOW, log=log)
    assert status(ledger, "ana@example.com")[0] == "bounced"
    # The operator lets them back in, the way `course resubscribe` does: through the log.
    suppress(log, ledger, [Suppression("ana@example.com", Action.RESUBSCRIBE, "by hand", NOW)],
             first_due=first_due)  # fmt: skip
    assert status(ledger, "ana@example.com")[0] == "active"
    # The same bounce arrives again.
    (maildir / "new" / "1719000000.M1P1.mx").write_bytes(load("postfix-hard.eml", sign))
    later = NOW + timedelta(minutes=5)
    summary = process_mailbox(MaildirMailbox(maildir), resolver(ledger), ledger, now=later,
                              log=log)  # fmt: skip
    apply_pending(log, ledger, first_due=first_due)  # what every tick does first
    assert summary.changed == 0
    assert status(ledger, "ana@example.com")[0] == "active"
