"""The suppression log (state/suppressions.log) and the one way into the suppression list."""

from __future__ import annotations

import json
import multiprocessing
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from course.ledger import (
    Ledger,
    NoticeResult,
    Stop,
    SubscriberRecord,
    SubscriberStatus,
    Verdict,
)
from course.suppress import (
    Action,
    Suppression,
    SuppressionLog,
    apply_pending,
    suppress,
    take_notice,
)

T0 = datetime(2026, 3, 2, 12, tzinfo=UTC)
URL = "sqlite:///state/course.db"


def first_due(timezone: str, start: datetime) -> datetime:
    return start + timedelta(hours=1)


def people(*emails: str) -> list[SubscriberRecord]:
    return [SubscriberRecord(e, e.split("@")[0], "UTC", {}, None) for e in emails]


@pytest.fixture
def ledger(tmp_path: Path, ledger_url: str) -> Iterator[Ledger]:
    """A ledger with ann and ben, on SQLite and on PostgreSQL."""
    with Ledger.open(ledger_url, base_dir=tmp_path) as opened:
        opened.sync(people("ann@example.com", "ben@example.com"), now=T0, first_due=first_due)
        yield opened


def entry(email: str, action: Action, minutes: int = 0, how: str = "test") -> Suppression:
    return Suppression(email, action, how, T0 + timedelta(minutes=minutes))


def status(ledger: Ledger, email: str) -> str:
    view = ledger.subscriber(email)
    assert view is not None
    return view.status


def test_entries_round_trip_behind_a_header_in_a_private_file(tmp_path: Path) -> None:
    log = SuppressionLog.in_project(tmp_path)
    written = [
        entry("ann@example.com", Action.UNSUBSCRIBE),
        entry("Zoë@example.com", Action.BOUNCE),
    ]
    log.append(written)
    assert log.entries() == written
    lines = log.path.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0])["kind"] == "dripcourse suppressions"
    assert json.loads(lines[2])["email"] == "Zoë@example.com"
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600
    assert log.path == tmp_path / "state" / "suppressions.log"


def test_a_line_torn_by_a_crash_is_skipped_and_later_entries_survive(tmp_path: Path) -> None:
    log = SuppressionLog.in_project(tmp_path)
    log.append([entry("ann@example.com", Action.UNSUBSCRIBE)])
    with log.path.open("ab") as stream:
        stream.write(b'{"id":"x","at":"2026-03-02T12:')  # the crash
    assert [e.email for e in log.read_from(0).entries] == ["ann@example.com"]
    log.append([entry("ben@example.com", Action.UNSUBSCRIBE)])
    read = log.read_from(0)
    assert [e.email for e in read.entries] == ["ann@example.com", "ben@example.com"]
    assert read.skipped == 1
    assert read.end == log.size()


def test_concurrent_appends_share_fsyncs_and_lose_nothing(tmp_path: Path) -> None:
    log = SuppressionLog.in_project(tmp_path)
    threads = [
        threading.Thread(
            target=lambda n=n: log.append(
                [entry(f"t{n}-{i}@example.com", Action.UNSUBSCRIBE) for i in range(3)]
            )
        )
        for n in range(50)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({e.email for e in log.entries()}) == 150


def _append_in_child(base_dir: str, tag: str, count: int) -> None:
    log = SuppressionLog.in_project(Path(base_dir))
    for i in range(count):
        log.append([entry(f"{tag}{i}@example.com", Action.UNSUBSCRIBE)])


def test_two_processes_append_to_one_log_without_tearing_lines(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_append_in_child, args=(str(tmp_path), tag, 200)) for tag in "ab"
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    read = SuppressionLog.in_project(tmp_path).read_from(0)
    assert read.skipped == 0
    assert len(read.entries) == 400
    headers = [line for line in read_lines(tmp_path) if '"kind"' in line]
    assert len(headers) == 1


def read_lines(base: Path) -> list[str]:
    return (base / "state" / "suppressions.log").read_text().splitlines()


def test_apply_pending_catches_the_ledger_up_once(ledger: Ledger, tmp_path: Path) -> None:
    log = SuppressionLog.in_project(tmp_path)
    log.append([entry("ann@example.com", Action.UNSUBSCRIBE, how="one-click")])
    assert status(ledger, "ann@example.com") == SubscriberStatus.ACTIVE
    assert apply_pending(log, ledger, first_due=first_due) == 1
    view = ledger.subscriber("ann@example.com")
    assert view is not None
    assert (view.status, view.status_reason, view.status_at) == ("unsubscribed", "one-click", T0)
    assert apply_pending(log, ledger, first_due=first_due) == 0


def test_each_address_ends_as_its_last_entry_says(ledger: Ledger, tmp_path: Path) -> None:
    log = SuppressionLog.in_project(tmp_path)
    log.append(
        [
            entry("ann@example.com", Action.UNSUBSCRIBE, 0),
            entry("ANN@example.com", Action.RESUBSCRIBE, 1),
            entry("ben@example.com", Action.RESUBSCRIBE, 0),
            entry("ben@example.com", Action.COMPLAINT, 1, how="ARF abuse report"),
            entry("cat@example.com", Action.BOUNCE, 2, how="550 5.1.1 no such user"),
        ]
    )
    apply_pending(log, ledger, first_due=first_due)
    assert status(ledger, "ann@example.com") == "active"
    ben = ledger.subscriber("ben@example.com")
    assert ben is not None
    assert (ben.status, ben.status_reason) == ("unsubscribed", "complaint: ARF abuse report")
    # An address the ledger has never seen stays suppressed if the CSV brings it later.
    assert status(ledger, "cat@example.com") == "bounced"
    ledger.sync(
        people("ann@example.com", "ben@example.com", "cat@example.com"), now=T0, first_due=first_due
    )
    assert status(ledger, "cat@example.com") == "bounced"


def test_a_bounce_of_a_known_subscriber_marks_them_bounced(ledger: Ledger, tmp_path: Path) -> None:
    log = SuppressionLog.in_project(tmp_path)
    suppress(
        log, ledger, [entry("ben@example.com", Action.BOUNCE, how="550 5.1.1")], first_due=first_due
    )
    assert status(ledger, "ben@example.com") == "bounced"


def test_a_rebuilt_ledger_replays_the_whole_log_before_anything_is_due(tmp_path: Path) -> None:
    log = SuppressionLog.in_project(tmp_path)
    with Ledger.open(URL, base_dir=tmp_path) as old:
        old.sync(people("ann@example.com", "ben@example.com"), now=T0, first_due=first_due)
        suppress(log, old, [entry("ann@example.com", Action.UNSUBSCRIBE)], first_due=first_due)
    (tmp_path / "state" / "course.db").unlink()
    for leftover in (tmp_path / "state").glob("course.db-*"):
        leftover.unlink()
    with Ledger.open(URL, base_dir=tmp_path) as rebuilt:
        assert apply_pending(log, rebuilt, first_due=first_due) == 1
        rebuilt.sync(people("ann@example.com", "ben@example.com"), now=T0, first_due=first_due)
        due = {lesson.email for lesson in rebuilt.due(T0 + timedelta(days=1))}
    assert due == {"ben@example.com"}


def test_a_log_that_is_not_ours_is_refused_by_name(tmp_path: Path) -> None:
    log = SuppressionLog.in_project(tmp_path)
    log.path.parent.mkdir(parents=True)
    log.path.write_text("email,status\nann@example.com,unsubscribed\n")
    with pytest.raises(Exception, match=r"suppressions.log: not a suppression log"):
        log.read_from(0)


def test_bounce_mailbox_and_webhook_notices_are_logged_first(
    ledger: Ledger, tmp_path: Path
) -> None:
    log = SuppressionLog.in_project(tmp_path)
    results = [
        take_notice(
            log,
            ledger,
            key=f"mailbox:{email}",
            verdict=verdict,
            email=email,
            detail="550 5.1.1 no such user",
            source="bounce mailbox",
            evidence="VERP token",
            now=T0,
        )
        for email, verdict in (
            ("ann@example.com", Verdict.BOUNCED),
            ("ben@example.com", Verdict.NOTED),
        )
    ]
    assert results == [NoticeResult.CHANGED, NoticeResult.RECORDED]
    (entry,) = log.entries()
    assert (entry.email, entry.action) == ("ann@example.com", Action.BOUNCE)
    assert entry.how == "bounce mailbox: 550 5.1.1 no such user"
    assert status(ledger, "ann@example.com") == "bounced"


def test_opaque_ids_map_back_to_their_subscribers(ledger: Ledger) -> None:
    def ref_of(email: str) -> str:
        return f"ref-{email}"

    assert ledger.fill_refs(ref_of) == 2
    assert ledger.fill_refs(ref_of) == 0
    ledger.sync(
        people("ann@example.com", "ben@example.com", "cat@example.com"), now=T0, first_due=first_due
    )
    assert ledger.fill_refs(ref_of) == 1
    found = ledger.subscriber_by_ref("ref-cat@example.com")
    assert found is not None
    assert found.email == "cat@example.com"
    assert ledger.subscriber_by_ref("ref-nobody@example.com") is None
    ledger.unsubscribe("cat@example.com", how="test", now=T0)
    many = ledger.standings_by_ref(
        ["ref-ann@example.com", "ref-cat@example.com", "ref-nobody@example.com"] * 400
    )
    assert many == {
        "ref-ann@example.com": ("ann@example.com", SubscriberStatus.ACTIVE),
        "ref-cat@example.com": ("cat@example.com", SubscriberStatus.UNSUBSCRIBED),
    }
    assert ledger.standings_by_ref([]) == {}
    assert not ledger.has_deliveries()


def test_a_batch_of_stops_changes_only_what_it_should(ledger: Ledger) -> None:
    ledger.suppress([Stop("ben@example.com", SubscriberStatus.UNSUBSCRIBED, "first", T0)])
    later = T0 + timedelta(hours=1)
    changed = ledger.suppress(
        [
            Stop("ann@example.com", SubscriberStatus.UNSUBSCRIBED, "one-click", later),
            Stop("ben@example.com", SubscriberStatus.UNSUBSCRIBED, "again", later),
            Stop("cat@example.com", SubscriberStatus.UNSUBSCRIBED, "never synced", later),
            Stop("dan@example.com", SubscriberStatus.BOUNCED, "550 5.1.1", later),
        ]
    )
    assert changed == 3
    ben = ledger.subscriber("ben@example.com")
    assert ben is not None
    assert (ben.status, ben.status_reason, ben.status_at) == ("unsubscribed", "first", T0)
    assert status(ledger, "cat@example.com") == "unsubscribed"
    assert status(ledger, "dan@example.com") == "bounced"
    # A bounce says more than an unsubscribe; nothing says more than a bounce.
    assert ledger.suppress([Stop("ann@example.com", SubscriberStatus.BOUNCED, "550", later)]) == 1
    assert (
        ledger.suppress([Stop("dan@example.com", SubscriberStatus.UNSUBSCRIBED, "x", later)]) == 0
    )
    assert status(ledger, "ann@example.com") == "bounced"
    assert status(ledger, "dan@example.com") == "bounced"


def test_a_fact_set_once_keeps_its_first_value(ledger: Ledger) -> None:
    # The ledger's identity: two commands starting together must agree on it.
    assert ledger.first_meta("ledger_id", "first") == "first"
    assert ledger.first_meta("ledger_id", "second") == "first"
    assert ledger.meta("ledger_id") == "first"
