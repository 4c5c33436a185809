"""One bad address never stops anyone else's lesson (issue 12, item 1).

Addresses the wire check refuses, that IDNA cannot encode, or a name that breaks the headers
are put straight into the ledger through its API, as an old version, a hand edit or a bug
could have left them. The tick delivers everyone else's lesson and records each bad one as
`failed` with the reason; only a fault every message shares stops the tick.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import free_port, run_course

from course.backends.inbox import read_inbox
from course.config import Settings, load_settings
from course.delivery import Deliverer
from course.ledger import DeliveryState, Ledger, SubscriberRecord
from course.planner import Timing, first_due
from course.runtime import Runtime, make_links

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
GOOD = ("ann@example.com", "ben@example.com", "chika@example.com")
NOT_AN_ADDRESS = "not-an-email"
INJECTED = "eve@example.com\r\nBcc: mallory@example.org"
NO_IDNA = "user@☃.example"  # a snowman is not allowed in a domain name
BAD_NAME = "dev@example.com"  # fine address; the name carries a header injection


def configure(project: Path) -> Settings:
    (project / "examples" / "subscribers.csv").write_text("email,first_name,timezone\n")
    config = project / "schedule.yaml"
    text = config.read_text()
    text = text.replace("listen: 127.0.0.1:8026", f"listen: 127.0.0.1:{free_port()}")
    config.write_text(text)
    return load_settings(config)


def put_in_the_ledger(ledger: Ledger, settings: Settings, now: datetime) -> None:
    """Good and bad subscribers, straight through the ledger's API: no CSV, no CLI."""
    timing = Timing.from_settings(settings.schedule)

    def due(zone: str, joined: datetime) -> datetime:
        return first_due(joined, zone, timing)

    records = [SubscriberRecord(e, e.split("@")[0].title(), "UTC", {}, now) for e in GOOD]
    records.append(SubscriberRecord(NO_IDNA, "Snow", "UTC", {}, now))
    records.append(SubscriberRecord(BAD_NAME, "Dev\r\nBcc: mallory@example.org", "UTC", {}, now))
    ledger.sync(records, now=now, first_due=due)
    # The way issue 12 found them: unsubscribe and resubscribe by hand, unchecked.
    for address in (NOT_AN_ADDRESS, INJECTED):
        ledger.unsubscribe(address, how="by hand", now=now)
        ledger.reactivate(address, now=now, first_due=due)


@pytest.fixture
def runtime(project: Path) -> Iterator[Runtime]:
    settings = configure(project)
    opened = Runtime.open(settings, clock=lambda: START)
    opened.refresh_subscribers(START)  # the (empty) CSV is synced once and left alone
    put_in_the_ledger(opened.ledger, settings, START)
    yield opened
    opened.close()


def delivered_to(settings: Settings) -> list[str]:
    return sorted(m.recipient for m in read_inbox(settings.delivery.inbox))


def test_the_others_get_their_lesson_in_the_same_tick(runtime: Runtime) -> None:
    report = runtime.tick(START)
    assert report.stopped_by is None
    assert (report.sent, report.failed) == (3, 4)
    assert delivered_to(runtime.settings) == sorted(GOOD)
    reasons = {
        address: runtime.ledger.history(address)
        for address in (NOT_AN_ADDRESS, INJECTED, NO_IDNA, BAD_NAME)
    }
    for address, history in reasons.items():
        assert [(d.day, d.state) for d in history] == [(1, DeliveryState.FAILED)], address
    assert reasons[NOT_AN_ADDRESS][0].last_reply == (
        "refused before sending: recipient is not a plain addr-spec"
    )
    assert reasons[INJECTED][0].last_reply.startswith("cannot build the message: refusing ")
    assert "cannot encode the domain of 'user@☃.example'" in reasons[NO_IDNA][0].last_reply
    assert "control character" in reasons[BAD_NAME][0].last_reply
    problems = {email for email, view in runtime.ledger.problems()}
    assert problems == {NOT_AN_ADDRESS, INJECTED, NO_IDNA, BAD_NAME}


def test_a_failed_lesson_does_not_hold_the_good_ones_back_the_next_day(runtime: Runtime) -> None:
    runtime.tick(START)
    next_day = START + timedelta(days=1)
    report = runtime.tick(next_day)
    assert report.stopped_by is None
    assert report.by_day == {2: 3}
    assert sorted(delivered_to(runtime.settings)) == sorted([*GOOD, *GOOD])


def test_a_fault_every_message_shares_stops_the_tick_and_marks_nobody(runtime: Runtime) -> None:
    build = runtime.build
    broken = dataclasses.replace(
        build, sender=dataclasses.replace(build.sender, address="no address here")
    )
    deliverer = Deliverer(
        broken,
        runtime.ledger,
        runtime.backend,
        runtime.timing,
        make_links(runtime.settings, broken),
        runtime.settings.delivery.retry,
    )
    report = deliverer.tick(START)
    assert report.stopped_by is not None
    assert "refused for the sample subscriber too" in str(report.stopped_by)
    assert "sender is not a plain addr-spec" in str(report.stopped_by)
    assert report.failed == 0
    assert runtime.ledger.problems() == []
    assert delivered_to(runtime.settings) == []
    # Nothing was marked: every lesson is still due, and goes out once the fault is gone.
    assert len(runtime.ledger.due(START)) == 7
    assert runtime.tick(START).sent == 3


def test_course_send_and_status_as_the_operator_sees_them(project: Path) -> None:
    settings = configure(project)
    (project / "examples" / "subscribers.csv").write_text(
        "email,first_name,timezone\n" + "".join(f"{e},{e[:3]},UTC\n" for e in GOOD)
    )
    first = run_course(project, "send", "--now", "2026-03-02T12:00Z")
    assert first.returncode == 0, first.stderr
    with Ledger.open(settings.ledger, base_dir=settings.base_dir) as ledger:
        timing = Timing.from_settings(settings.schedule)
        ledger.unsubscribe(NOT_AN_ADDRESS, how="by hand", now=START)
        ledger.reactivate(
            NOT_AN_ADDRESS,
            now=START,
            first_due=lambda zone, joined: first_due(joined, zone, timing),
        )
    later = run_course(project, "send", "--now", "2026-03-03T12:00Z")
    assert later.returncode == 0, later.stderr
    assert "3 sent, 0 to retry, 1 failed" in later.stdout
    assert "Traceback" not in later.stderr
    status = run_course(project, "status")
    assert "refused before sending: recipient is not a plain addr-spec" in status.stdout
    days = sorted(
        int(
            str(
                email.message_from_bytes(m.read_bytes(), policy=email.policy.default)["Subject"]
            ).split()[1]
        )
        for m in read_inbox(settings.delivery.inbox)
    )
    assert days == [1, 1, 1, 2, 2, 2]
