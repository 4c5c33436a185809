"""Coming back never means two lessons on one local day (issue 12, item 2).

Ben (Europe/London) got day 1 at 23:27; he unsubscribed and resubscribed at 23:32. Day 2
must wait for the next send time after that local date, as the planner says, whether he
comes back by `course resubscribe` or by reappearing in the CSV.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from support import free_port, run_course

from course.config import Settings, load_settings
from course.ledger import DeliveryState, Ledger, SubscriberStatus
from course.planner import Timing, next_due, resume_due
from course.runtime import Runtime
from course.timeformat import local_time

LONDON = ZoneInfo("Europe/London")
DAY_ONE = datetime(2026, 11, 30, 23, 27, tzinfo=LONDON).astimezone(UTC)
BACK = datetime(2026, 11, 30, 23, 32, tzinfo=LONDON).astimezone(UTC)
NEXT_MORNING = datetime(2026, 12, 1, 8, 0, tzinfo=LONDON).astimezone(UTC)
BEN = "ben@example.com,Ben,Europe/London\n"
ANN = "ann@example.com,Ann,America/New_York\n"


def configure(project: Path, *rows: str) -> Settings:
    (project / "examples" / "subscribers.csv").write_text(
        "email,first_name,timezone\n" + "".join(rows)
    )
    config = project / "schedule.yaml"
    text = config.read_text().replace("listen: 127.0.0.1:8026", f"listen: 127.0.0.1:{free_port()}")
    config.write_text(text)
    return load_settings(config)


def days_sent(ledger: Ledger, email: str) -> list[tuple[int, datetime | None]]:
    return [(d.day, d.sent_at) for d in ledger.history(email) if d.state == DeliveryState.SENT]


def test_the_planner_never_resumes_on_the_last_lessons_local_date() -> None:
    timing = Timing.from_settings(load_settings(Path("schedule.yaml")).schedule)
    assert resume_due(BACK, DAY_ONE, "Europe/London", timing) == NEXT_MORNING
    assert resume_due(BACK, None, "Europe/London", timing) == BACK  # never had a lesson
    weeks_later = BACK + timedelta(days=20)
    assert resume_due(weeks_later, DAY_ONE, "Europe/London", timing) == weeks_later


def test_resubscribing_the_same_evening_waits_for_the_next_morning(project: Path) -> None:
    settings = configure(project, BEN)
    runtime = Runtime.open(settings, clock=lambda: DAY_ONE)
    try:
        assert runtime.tick(DAY_ONE).sent == 1
        timing = runtime.timing
        assert runtime.ledger.unsubscribe("ben@example.com", how="test", now=BACK)
        runtime.ledger.reactivate(
            "ben@example.com",
            now=BACK,
            first_due=lambda zone, joined: joined,
            resume_due=lambda zone, now, last: resume_due(now, last, zone, timing),
        )
        view = runtime.ledger.subscriber("ben@example.com")
        assert view is not None
        assert (view.status, view.next_day, view.next_due_at) == (
            SubscriberStatus.ACTIVE,
            2,
            NEXT_MORNING,
        )
        for minutes in (5, 60, 8 * 60):
            assert runtime.tick(BACK + timedelta(minutes=minutes)).sent == 0
        assert runtime.tick(NEXT_MORNING).by_day == {2: 1}
    finally:
        runtime.close()


def test_reappearing_in_the_csv_the_same_evening_waits_too(project: Path) -> None:
    settings = configure(project, BEN, ANN)
    runtime = Runtime.open(settings, clock=lambda: DAY_ONE)
    csv = settings.subscribers
    try:
        assert runtime.tick(DAY_ONE).sent == 2
        csv.write_text("email,first_name,timezone\n" + ANN)
        runtime.tick(DAY_ONE + timedelta(minutes=2))  # Ben is `removed`
        csv.write_text("email,first_name,timezone\n" + ANN + BEN)
        assert runtime.tick(BACK).sent == 0  # back, but not on the same London date
        view = runtime.ledger.subscriber("ben@example.com")
        assert view is not None
        assert view.next_due_at == NEXT_MORNING
        assert days_sent(runtime.ledger, "ben@example.com") == [(1, DAY_ONE)]
    finally:
        runtime.close()


def run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_course(project, *args, env={"COURSE_SECRET": "resubscribe-test"})
    assert result.returncode == 0, result.stderr
    return result


def test_course_resubscribe_follows_the_planner(project: Path) -> None:
    """The commands as the operator types them; `resubscribe` reads the real clock."""
    settings = configure(project, BEN)
    day_one = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    run(project, "send", "--now", day_one.isoformat())
    run(project, "unsubscribe", "ben@example.com")
    back = run(project, "resubscribe", "Ben@Example.com")
    timing = Timing.from_settings(settings.schedule)
    expected = next_due(day_one, "Europe/London", timing)
    assert back.stdout.strip() == (
        f"Ben@example.com: active again from day 2, due {local_time(expected, 'Europe/London')}"
    )
    soon = run(project, "send", "--now", (day_one + timedelta(minutes=6)).isoformat())
    assert "nothing due" in soon.stdout
    later = run(project, "send", "--now", expected.isoformat())
    assert "1 sent" in later.stdout
    assert "day 2: 1" in later.stdout
    again = run(project, "resubscribe", "ben@example.com")
    assert again.stdout.strip() == "ben@example.com: already active; nothing changed"
