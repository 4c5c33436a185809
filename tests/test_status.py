"""`course status` on a fresh checkout, and one time format everywhere (issue 12, item 7)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from support import run_course

# `2026-03-02 08:00 Europe/London`: the one shape every time takes.
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d [A-Z][A-Za-z_]+(?:/[A-Za-z_+-]+)*")
ISO_LIKE = re.compile(r"\d{4}-\d\d-\d\dT\d\d|[+-]\d\d:\d\d\b|\(UTC\)")


def run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_course(project, *args, env={"COURSE_SECRET": "status-test-secret-0123456789"})
    assert result.returncode == 0, result.stderr
    return result


def test_before_the_first_tick_status_reads_the_csv_and_creates_nothing(project: Path) -> None:
    result = run(project, "status")
    lines = result.stdout.splitlines()
    assert lines[0].startswith("not yet started: no tick has run")
    assert lines[1] == "subscribers: 7 in examples/subscribers.csv, all not yet started"
    assert "ben@example.com    Europe/London        at the first tick" in result.stdout
    assert not (project / "state").exists()
    one = run(project, "status", "--subscriber", "Ben@Example.com")
    assert one.stdout.splitlines() == [
        "ben@example.com: not yet started (no tick has run); time zone Europe/London",
        "day 1 due at the first tick",
    ]
    assert not (project / "state").exists()


def test_before_the_first_tick_with_a_send_time_shows_each_local_due_time(project: Path) -> None:
    config = project / "schedule.yaml"
    config.write_text(
        config.read_text().replace("first_lesson: immediately", "first_lesson: next_send_time")
    )
    result = run(project, "status")
    due = re.search(r"ben@example.com\s+Europe/London\s+(.+)", result.stdout)
    assert due is not None
    assert TIME.fullmatch(due[1].strip())
    assert due[1].strip().endswith("08:00 Europe/London")


def test_every_time_has_one_format_and_names_its_zone(project: Path) -> None:
    run(project, "send", "--now", "2026-11-30T23:27Z")
    run(project, "unsubscribe", "chika@example.com")
    shown = (
        run(project, "status").stdout
        + run(project, "status", "--subscriber", "ben@example.com").stdout
    )
    assert not ISO_LIKE.search(shown), shown
    times = TIME.findall(shown)
    assert "2026-11-30 23:27 Europe/London" in times  # Ben's day 1, in his zone
    assert "2026-12-01 08:00 Europe/London" in times  # and his next lesson
    assert len(times) >= 4


def test_a_subscriber_who_finished_has_no_next_day(project: Path) -> None:
    run(project, "simulate", "--in-place", "--days", "16", "--start", "2026-03-01T12:00Z")
    result = run(project, "status", "--subscriber", "ann@example.com")
    assert "completed the course: all 15 lessons went out" in result.stdout
    assert "day 16" not in result.stdout
    assert " due -" not in result.stdout


def test_someone_added_to_the_csv_since_the_last_tick(project: Path) -> None:
    run(project, "send", "--now", "2026-03-02T12:00Z")
    csv = project / "examples" / "subscribers.csv"
    csv.write_text(csv.read_text() + "new@example.com,New,UTC,,Nowhere\n")
    result = run(project, "status", "--subscriber", "new@example.com")
    assert (
        result.stdout.strip()
        == "new@example.com: in examples/subscribers.csv, joins at the next tick"
    )
