"""The drip: ticks on a frozen clock deliver one lesson per subscriber per local day."""

from __future__ import annotations

import email
import email.policy
import signal
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from support import free_port, run_course, use_ledger

from course.backends.inbox import read_inbox
from course.config import Settings, load_settings
from course.ledger import Ledger
from course.runtime import Runtime
from course.suppress import SuppressionLog

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday
CSV_HEAD = "email,first_name,timezone,subscribed_at\n"


def configure(
    project: Path, csv: str, *, ledger: str | None = None, **replacements: str
) -> Settings:
    (project / "examples" / "subscribers.csv").write_text(csv, encoding="utf-8")
    config = project / "schedule.yaml"
    # `course run` serves the unsubscribe pages: on a free port, never the operator's.
    text = config.read_text().replace("listen: 127.0.0.1:8026", f"listen: 127.0.0.1:{free_port()}")
    text = text.replace("port: 8025", f"port: {free_port()}")
    for old, new in replacements.items():
        text = text.replace(old, new)
    config.write_text(text)
    if ledger is not None:
        use_ledger(project, ledger)
    return load_settings(config)


@pytest.fixture
def runtime(project: Path, ledger_url: str) -> Iterator[Runtime]:
    settings = configure(
        project,
        CSV_HEAD + "ann@example.com,Ann,America/New_York,\n"
        "kai@example.com,Kai,Pacific/Kiritimati,\n",
        ledger=ledger_url,
    )
    opened = Runtime.open(settings, clock=lambda: START)
    yield opened
    opened.close()


def course(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = run_course(project, *args)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def inbox(
    project: Path, folder: str = "state/inbox"
) -> dict[str, list[tuple[int, datetime, EmailMessage]]]:
    """recipient -> [(day, Date header, message)] in delivery order."""
    received: dict[str, list[tuple[int, datetime, EmailMessage]]] = defaultdict(list)
    for item in reversed(read_inbox(project / folder)):
        message = email.message_from_bytes(item.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        date = email.utils.parsedate_to_datetime(str(message["Date"]))
        assert item.day is not None
        received[item.recipient].append((item.day, date, message))
    for messages in received.values():
        messages.sort(key=lambda m: m[1])
    return received


def test_simulate_delivers_every_day_once_in_local_order(project: Path, ledger_url: str) -> None:
    use_ledger(project, ledger_url)
    course(project, "simulate", "--days", "15", "--start", "2026-03-01T12:00:00+00:00")
    received = inbox(project, "state/simulate/inbox")  # the sandbox's, never the real one
    zones = {
        "ann": "America/New_York",
        "ben": "Europe/London",
        "chika": "Asia/Tokyo",
        "dev": "Australia/Sydney",
        "ella": "America/Los_Angeles",
        "felix": "Europe/Berlin",
        "zoe": "Pacific/Auckland",
    }
    assert sorted(received) == sorted(f"{name}@example.com" for name in zones)
    for name, zone in zones.items():
        messages = received[f"{name}@example.com"]
        assert [day for day, _, _ in messages] == list(range(1, 16))
        local = [date.astimezone(ZoneInfo(zone)) for _, date, _ in messages]
        assert len({moment.date() for moment in local}) == 15, "one lesson per local day"
        assert all(moment.strftime("%H:%M") == "08:00" for moment in local[1:])
        assert local[0] == datetime(2026, 3, 1, 12, tzinfo=UTC)
    status = course(project, "status").stdout
    assert status.startswith("not yet started")  # the sandbox's ledger, not the real one


def test_a_subscriber_joining_mid_course_starts_at_day_one(project: Path, runtime: Runtime) -> None:
    for offset in range(5):
        runtime.tick(START + timedelta(days=offset, hours=offset and 1))
    csv = runtime.settings.subscribers
    csv.write_text(csv.read_text() + "mia@example.com,Mia,Europe/Paris,\n")
    later = START + timedelta(days=5, hours=2)
    runtime.tick(later)
    mia = runtime.ledger.history("mia@example.com")
    assert [(d.day, d.state, d.sent_at) for d in mia] == [(1, "sent", later)]
    assert runtime.ledger.subscriber("ann@example.com").next_day == 7  # type: ignore[union-attr]


def test_rows_removed_from_the_csv_stop_receiving(runtime: Runtime) -> None:
    runtime.tick(START)
    csv = runtime.settings.subscribers
    csv.write_text(CSV_HEAD + "ann@example.com,Ann,America/New_York,\n")
    report = runtime.tick(START + timedelta(days=1, hours=1))
    kai = runtime.ledger.subscriber("kai@example.com")
    assert kai is not None
    assert (kai.status, kai.status_reason) == ("removed", "removed from CSV")
    assert report.sent == 1
    assert [d.day for d in runtime.ledger.history("kai@example.com")] == [1]


def test_rows_turned_inactive_stop_from_the_next_tick_with_the_exports_reason(
    project: Path,
) -> None:
    kit = "email_address,first_name,state\n"
    configure(
        project,
        kit + "ann@example.com,Ann,active\nben@example.com,Ben,active\n"
        "cleo@example.com,Cleo,active\nkim@example.com,Kim,active\n",
    )
    course(project, "send", "--now", "2026-03-02T12:00:00Z")
    assert sorted(inbox(project)) == [
        "ann@example.com",
        "ben@example.com",
        "cleo@example.com",
        "kim@example.com",
    ]

    csv = project / "examples" / "subscribers.csv"
    csv.write_text(
        kit + "ann@example.com,Ann,cancelled\nben@example.com,Ben,inactive\n"
        "kim@example.com,Kim,active\ndan@example.com,Dan,complained\n"
    )
    sent = course(project, "send", "--now", "2026-03-04T12:00:00Z")

    received = inbox(project)
    assert [day for day, _, _ in received["kim@example.com"]] == [1, 2]
    for stopped in ("ann", "ben", "cleo"):
        assert [day for day, _, _ in received[f"{stopped}@example.com"]] == [1]
    assert "dan@example.com" not in received
    assert "2 stopped by their row's status; 2 put on the suppression list" in sent.stderr
    # Ann was on the course: logged before the ledger, like any unsubscribe. Dan never was.
    logged = SuppressionLog.in_project(project).entries()
    assert [(e.email, e.action, e.how) for e in logged] == [
        ("ann@example.com", "unsubscribe", "subscribers.csv row 2: state 'cancelled'")
    ]

    ann = course(project, "status", "--subscriber", "ann@example.com").stdout
    assert ann.splitlines()[0] == (
        "ann@example.com: unsubscribed since 2026-03-04 12:00 UTC "
        "(subscribers.csv row 2: state 'cancelled')"
    )
    ben = course(project, "status", "--subscriber", "ben@example.com").stdout
    assert ben.splitlines()[0] == (
        "ben@example.com: removed since 2026-03-04 12:00 UTC "
        "(subscribers.csv row 3: state 'inactive')"
    )
    status = course(project, "status").stdout
    assert status.startswith("subscribers: 5 (1 active, 2 unsubscribed, 2 removed)")
    suppressed = status.split("unsubscribed and bounced")[1].split("\n\n")[0]
    assert "ann@example.com  unsubscribed  2026-03-04 12:00 UTC  subscribers.csv row 2: state" in (
        suppressed
    )
    assert "dan@example.com  unsubscribed  2026-03-04 12:00 UTC  subscribers.csv row 5: state" in (
        suppressed
    )
    stopped = status.split("stopped by the list")[1].split("\n\n")[0]
    assert "ben@example.com   2026-03-04 12:00 UTC  subscribers.csv row 3: state 'inactive'" in (
        stopped
    )
    assert "cleo@example.com  2026-03-04 12:00 UTC  removed from CSV" in stopped

    # Listed as active again: the inactive row comes back, the unsubscribe holds.
    csv.write_text(
        kit + "ann@example.com,Ann,active\nben@example.com,Ben,active\nkim@example.com,Kim,active\n"
    )
    sent = course(project, "send", "--now", "2026-03-06T12:00:00Z")
    received = inbox(project)
    assert [day for day, _, _ in received["ben@example.com"]] == [1, 2]
    assert [day for day, _, _ in received["ann@example.com"]] == [1]
    assert "1 listed as subscribed are on the suppression list" in sent.stderr


def test_three_days_of_downtime_shift_the_course(runtime: Runtime) -> None:
    runtime.tick(START)  # day 1 for both
    day_two = START + timedelta(days=1, hours=1)  # 13:00 UTC is 08:00 in New York
    runtime.tick(day_two)
    back = START + timedelta(days=4, hours=3)  # down from the 4th to the 6th
    runtime.tick(back)
    ann = runtime.ledger.history("ann@example.com")
    assert [(d.day, d.sent_at) for d in ann] == [(1, START), (2, day_two), (3, back)]
    # Day 4 is due the next local morning: the course shifted instead of bunching.
    view = runtime.ledger.subscriber("ann@example.com")
    assert view is not None
    assert view.next_due_at == datetime(2026, 3, 7, 13, 0, tzinfo=UTC)


def test_ticks_with_nothing_due_send_nothing(runtime: Runtime) -> None:
    assert runtime.tick(START).sent == 2
    assert runtime.tick(START + timedelta(hours=1)).sent == 0
    assert runtime.tick(START + timedelta(hours=2)).summary() == "nothing due"


def test_opaque_ids_are_recorded_for_those_about_to_be_mailed(runtime: Runtime) -> None:
    """An import records no ids up front (a million of them made the first tick as slow as
    the import); each batch records its subscribers' before their links go out."""
    links = runtime.deliverer.links
    assert runtime.tick(START, should_stop=lambda: True).sent == 0  # syncs the list, mails none
    assert runtime.ledger.subscriber_by_ref(links.ref("ann@example.com")) is None
    assert runtime.tick(START).sent == 2
    for address in ("ann@example.com", "kai@example.com"):
        found = runtime.ledger.subscriber_by_ref(links.ref(address))
        assert found is not None
        assert found.email == address


def test_dst_change_keeps_local_send_time(runtime: Runtime) -> None:
    moments = [START + timedelta(days=d, hours=h) for d in range(9) for h in range(0, 24)]
    for moment in moments:
        runtime.tick(moment)
    ny = ZoneInfo("America/New_York")
    ann = runtime.ledger.history("ann@example.com")
    local = [d.sent_at.astimezone(ny) for d in ann if d.sent_at]
    # 2026-03-08 is the spring-forward day in New York; every lesson still lands at 08:00.
    assert all(moment.strftime("%H:%M") == "08:00" for moment in local[1:])
    assert {moment.tzname() for moment in local[1:]} == {"EST", "EDT"}


CRASHING_RUN = textwrap.dedent("""
    import os, socket, sys, time
    from datetime import datetime
    from course.backends.inbox import InboxBackend
    from course.config import load_settings
    from course.runtime import Runtime

    class StallAfterDelivering(InboxBackend):
        # The messages reach the inbox, then the process hangs before the ledger hears of it.
        def send(self, messages, on_result=None):
            results = super().send(messages)  # stored, but not reported to the deliverer
            print("delivered", len(results), flush=True)
            time.sleep(60)
            return results

    settings = load_settings(__import__("pathlib").Path("schedule.yaml"))
    runtime = Runtime.open(settings)
    runtime.backend = runtime.deliverer.backend = StallAfterDelivering(settings.delivery.inbox)
    runtime.ledger.register_worker(owner="crashing", pid=os.getpid(), host=socket.gethostname(),
                                  now=datetime.fromisoformat(sys.argv[1]),
                                  stale_after=__import__("datetime").timedelta(minutes=5))
    runtime.tick(datetime.fromisoformat(sys.argv[1]))
""")


def test_crash_between_claim_and_record_resends_at_most_the_batch(
    project: Path, ledger_url: str
) -> None:
    configure(
        project,
        CSV_HEAD + "".join(f"r{i}@example.com,R{i},UTC,\n" for i in range(5)),
        ledger=ledger_url,
    )
    now = "2026-03-02T12:00:00+00:00"
    process = subprocess.Popen(
        [sys.executable, "-c", CRASHING_RUN, now], cwd=project, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "delivered 5"
    process.send_signal(signal.SIGKILL)
    process.wait()
    status = course(project, "status").stdout
    assert "1    5        0" in status  # five day-1 deliveries left claimed
    course(project, "send", "--now", now)
    received = inbox(project)
    # The five in doubt were sent again: a duplicate each, never a skip.
    assert {r: [d for d, _, _ in m] for r, m in received.items()} == {
        f"r{i}@example.com": [1, 1] for i in range(5)
    }
    course(project, "send", "--now", "2026-03-03T08:00:00+00:00")
    assert all([d for d, _, _ in m] == [1, 1, 2] for m in inbox(project).values())


def test_on_sqlite_a_second_run_on_the_same_ledger_refuses_to_start(project: Path) -> None:
    configure(project, CSV_HEAD + "ann@example.com,Ann,UTC,\n")
    first = subprocess.Popen(
        [sys.executable, "-m", "course.cli", "run"], cwd=project, stderr=subprocess.PIPE, text=True
    )
    try:
        assert first.stderr is not None
        assert "course run: delivering due lessons every 60 s" in first.stderr.readline()
        second = course(project, "run", check=False)
        assert second.returncode == 1
        assert "another `course run`" in second.stderr
        assert f"pid {first.pid}" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        code = first.wait(timeout=30)
    assert code == 0


def test_sigterm_finishes_the_tick_and_exits_zero(project: Path, ledger_url: str) -> None:
    configure(
        project,
        CSV_HEAD + "".join(f"s{i}@example.com,S{i},UTC,\n" for i in range(30)),
        ledger=ledger_url,
    )
    run = subprocess.Popen(
        [sys.executable, "-m", "course.cli", "run"], cwd=project, stderr=subprocess.PIPE, text=True
    )
    assert run.stderr is not None
    lines = []
    for line in run.stderr:
        lines.append(line)
        if "tick " in line:
            break
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=30) == 0
    rest = run.stderr.read()
    assert "SIGTERM received" in rest
    assert "30 sent" in "".join(lines)
    status = course(project, "status").stdout
    assert "1    0        30" in status  # recorded: nothing left claimed


HOSTILE = (
    CSV_HEAD
    + '"Eve\r\nBcc: all@example.org",Eve,UTC,\n'
    + 'mallory@example.com,"Mal\r\nBcc: all@example.org",UTC,\n'
    + "xss@example.com,<script>alert(1)</script>,UTC,\n"
    + 'formula@example.com,=HYPERLINK("http://x.example.com"),UTC,\n'
    + "not-an-address,Nope,UTC,\n"
    + "XSS@example.com,Dup,UTC,\n"
    + "tz@example.com,Tia,Mars/Olympus,\n"
)


def test_hostile_csv_never_reaches_a_header(project: Path) -> None:
    configure(project, HOSTILE)
    report = course(project, "subscribers").stdout.splitlines()
    assert report[-6:] == [
        "row 2: rejected: control character in 'email' (the record spans lines 2-3) "
        "(Eve\\r\\nBcc: all@example.org)",
        "row 3: rejected: control character in 'first_name' (the record spans lines 4-5) "
        "(mallory@example.com)",
        "row 6: rejected: invalid email address: An email address must have an @-sign. "
        "(not-an-address)",
        "row 7: rejected: duplicate of row 4 (XSS@example.com)",
        "row 8: adjusted: unknown time zone 'Mars/Olympus', using UTC (tz@example.com)",
        "examples/subscribers.csv: 3 subscribers accepted, 0 rows skipped (not subscribed), "
        "4 rejected, 1 adjusted",
    ]
    course(project, "send", "--now", "2026-03-02T12:00:00+00:00")
    received = inbox(project)
    assert sorted(received) == ["formula@example.com", "tz@example.com", "xss@example.com"]
    for messages in received.values():
        ((_, _, message),) = messages
        assert "Bcc" not in message
        assert all("\n" not in str(value) for value in message.values())
    xss = received["xss@example.com"][0][2]
    assert str(xss["To"]) == '"<script>alert(1)</script>" <xss@example.com>'
    html = xss.get_body(("html",))
    assert html is not None
    assert "<script>alert(1)</script>" not in html.get_content()
    assert "Hi &lt;script&gt;alert(1)&lt;/script&gt;," in html.get_content()


def test_dry_run_changes_nothing(project: Path) -> None:
    configure(project, CSV_HEAD + "ann@example.com,Ann,UTC,\n")
    result = course(project, "send", "--dry-run", "--now", "2026-03-02T12:00:00+00:00")
    assert "1 would be sent" in result.stdout
    assert "ann@example.com" in result.stdout
    assert not (project / "state" / "inbox").exists()
    assert course(project, "status").stdout.startswith("not yet started")


def test_a_dry_run_logs_no_suppression_the_list_would_make(project: Path) -> None:
    kit = "email_address,first_name,state\n"
    configure(project, kit + "ann@example.com,Ann,active\n")
    course(project, "send", "--now", "2026-03-02T12:00:00Z")
    log = SuppressionLog.in_project(project)
    before = log.path.read_bytes() if log.path.exists() else b""
    (project / "examples" / "subscribers.csv").write_text(kit + "ann@example.com,Ann,cancelled\n")

    course(project, "send", "--dry-run", "--now", "2026-03-03T12:00:00Z")

    assert (log.path.read_bytes() if log.path.exists() else b"") == before
    assert course(project, "status").stdout.startswith("subscribers: 1 (1 active)")


def test_long_work_is_quiet_when_not_on_a_terminal(project: Path) -> None:
    result = course(project, "simulate", "--days", "2", "--start", "2026-03-01T12:00:00Z")
    assert "\r" not in result.stderr
    assert result.stdout.startswith("simulated 2026-03-01 12:00 UTC to 2026-03-03 12:00 UTC ")


def test_simulate_in_place_refuses_smtp(project: Path) -> None:
    configure(
        project,
        CSV_HEAD,
        **{
            "backend: inbox": "backend: smtp",
            "base_url: http://127.0.0.1:8026": "base_url: https://course.example.com",
        },
    )
    result = course(project, "simulate", "--days", "1", "--in-place", check=False)
    assert result.returncode == 1
    assert "it refuses smtp" in result.stderr


def test_send_test_delivers_one_lesson_outside_the_ledger(project: Path) -> None:
    configure(project, CSV_HEAD + "zoe@example.com,Zoë,Pacific/Auckland,\n")
    result = course(
        project, "send-test", "--day", "3", "--to", "me@example.org", "--as", "zoe@example.com"
    )
    assert result.stdout.startswith("day 3 sent to me@example.org as zoe@example.com via inbox")
    (message,) = [m for _, _, m in inbox(project)["me@example.org"]]
    assert str(message["Subject"]) == "Day 3 of 15: Want advice for your unique situation?"
    text = message.get_body(("plain",))
    assert text is not None
    assert "Hi Zoë," in text.get_content()
    assert course(project, "status").stdout.startswith("not yet started")


def test_send_test_names_an_unknown_subscriber(project: Path) -> None:
    configure(project, CSV_HEAD + "zoe@example.com,Zoë,UTC,\n")
    result = course(
        project,
        "send-test",
        "--day",
        "1",
        "--to",
        "me@example.org",
        "--as",
        "nobody@example.com",
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "course: error: --as: 'nobody@example.com' is not a subscriber in examples/subscribers.csv"
    )


def test_course_run_serves_the_preview_and_the_unsubscribe_pages(project: Path) -> None:
    configure(project, CSV_HEAD + "ann@example.com,Ann,UTC,\n")
    run = subprocess.Popen(
        [sys.executable, "-m", "course.cli", "run"], cwd=project, stderr=subprocess.PIPE, text=True
    )
    try:
        assert run.stderr is not None
        urls = {}
        for line in run.stderr:
            for what in ("preview", "unsubscribe endpoints"):
                if line.startswith(f"course run: {what} on "):
                    urls[what] = line.rsplit(" ", 1)[1].strip()
            if len(urls) == 2:
                break
        assert httpx.get(urls["preview"]).status_code == 200
        assert httpx.get(urls["unsubscribe endpoints"] + "unsubscribe/forged").status_code == 400
    finally:
        run.send_signal(signal.SIGTERM)
        code = run.wait(timeout=30)
    assert code == 0


def test_course_run_keeps_its_heartbeat_fresh(project: Path, ledger_url: str) -> None:
    configure(
        project,
        CSV_HEAD + "ann@example.com,Ann,UTC,\n",
        ledger=ledger_url,
        **{"tick_seconds: 60": "tick_seconds: 1"},
    )
    run = subprocess.Popen(
        [sys.executable, "-m", "course.cli", "run"], cwd=project, stderr=subprocess.DEVNULL
    )
    try:
        beats: set[datetime] = set()
        deadline = time.monotonic() + 20
        while len(beats) < 3 and time.monotonic() < deadline:
            beat = _lease_heartbeat(project)
            if beat is not None:
                beats.add(beat)
            time.sleep(0.2)
        assert len(beats) >= 3, "the heartbeat should advance with every tick"
    finally:
        run.send_signal(signal.SIGTERM)
        code = run.wait(timeout=30)
    assert code == 0


def test_sigterm_while_starting_exits_zero_and_releases_the_lease(
    project: Path, ledger_url: str
) -> None:
    # The lease is taken before the web servers start and the scheduler takes over the
    # signals, so a SIGTERM sent the moment it appears usually lands in start-up.
    configure(project, CSV_HEAD + "ann@example.com,Ann,UTC,\n", ledger=ledger_url)
    run = subprocess.Popen(
        [sys.executable, "-m", "course.cli", "run"], cwd=project, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 20
        while _lease_heartbeat(project) is None and time.monotonic() < deadline:
            time.sleep(0.002)
    finally:
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=30)
    assert run.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert _lease_heartbeat(project) is None, "the lease should be released, not left to go stale"
    second = course(project, "send", "--now", "2026-03-02T12:00:00+00:00")
    assert "another `course run`" not in second.stderr


def _lease_heartbeat(project: Path) -> datetime | None:
    """The running worker's last heartbeat, or None while no worker is registered."""
    settings = load_settings(project / "schedule.yaml")
    if settings.ledger.startswith("sqlite:") and not (project / "state" / "course.db").exists():
        return None  # not created yet: opening it here would create it
    with Ledger.open(settings.ledger, base_dir=settings.base_dir) as ledger:
        workers = ledger.workers(datetime.now(UTC))
    return workers[0].heartbeat_at if workers else None
