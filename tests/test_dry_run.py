"""`course send --dry-run` rehearses a tick and changes nothing (issue 12, item 6)."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support import free_port, run_course, use_ledger

from course.backends.base import OutgoingMessage
from course.backends.recording import RecordingBackend
from course.backends.wire import WireRefusal
from course.config import Settings, load_settings
from course.ledger import DeliveryState, Ledger
from course.ledger.database import Database
from course.runtime import Runtime

SECRET = {"COURSE_SECRET": "dry-run-test-secret-0123456789"}
MONDAY = "2026-03-02T12:00Z"
TUESDAY = "2026-03-03T12:00Z"


def run(project: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = run_course(project, *args, env={**SECRET, **(env or {})})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def ledger_state(settings: Settings) -> tuple[object, ...]:
    with Ledger.open(settings.ledger, base_dir=settings.base_dir) as ledger:
        people = [ledger.subscriber(f"{n}@example.com") for n in ("ann", "ben", "zoe")]
        return (ledger.state_counts(), ledger.status_counts(), people, ledger.problems())


def test_on_a_fresh_checkout_it_lists_day_one_and_creates_nothing(project: Path) -> None:
    out = run_course(project, "send", "--dry-run", "--now", MONDAY).stdout  # no secret set
    assert out.splitlines()[0] == (
        "dry run at 2026-03-02 12:00 UTC: 7 would be sent; nothing was sent or recorded"
    )
    assert "ben@example.com    1    sent" in out
    assert not (project / "state").exists()  # no ledger, no inbox, no unsubscribe secret


def test_it_needs_no_smtp_password_and_opens_no_connection(project: Path) -> None:
    config = project / "schedule.yaml"
    text = config.read_text().replace("backend: inbox ", "backend: smtp ")
    text = text.replace("http://127.0.0.1:8026", "https://course.example.com")
    text = text.replace(
        "  # smtp:\n",
        f"  smtp:\n    host: 127.0.0.1\n    port: {free_port()}\n"
        "    username: course@example.com\n",
    )
    config.write_text(text)
    real = run_course(project, "send", "--now", MONDAY, env=SECRET)
    assert real.returncode == 1
    assert "SMTP_PASSWORD is not set" in real.stderr
    rehearsed = run(project, "send", "--dry-run", "--now", MONDAY)
    assert "7 would be sent" in rehearsed


def test_it_changes_nothing_and_takes_the_day_from_the_claim(
    project: Path, ledger_url: str
) -> None:
    """On SQLite it rehearses on a copy; on PostgreSQL in a transaction rolled back."""
    use_ledger(project, ledger_url)
    settings = load_settings(project / "schedule.yaml")
    run(project, "send", "--now", MONDAY)
    inbox = sorted((project / "state" / "inbox" / "new").iterdir())
    before = ledger_state(settings)
    out = run(project, "send", "--dry-run", "--now", TUESDAY)
    assert ledger_state(settings) == before
    assert sorted((project / "state" / "inbox" / "new").iterdir()) == inbox
    # 12:00 UTC on Tuesday is past Tuesday 08:00 from London to Sydney: day 2 for them.
    # Auckland's day 1 went out on its Tuesday, so its day 2 waits for Wednesday.
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[3:]}
    assert rows == {
        "ben@example.com": "2",
        "chika@example.com": "2",
        "dev@example.com": "2",
        "felix@example.com": "2",
    }
    real = run(project, "send", "--now", TUESDAY)
    assert "4 sent" in real  # the rehearsal promised exactly what the real tick did


def test_a_writer_holding_the_lock_neither_blocks_it_nor_leaks_into_it(project: Path) -> None:
    settings = load_settings(project / "schedule.yaml")
    run(project, "send", "--now", MONDAY)
    writer = sqlite3.connect(project / "state" / "course.db", isolation_level=None)
    try:
        # Another process in the middle of a write: its uncommitted change must not show.
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE subscribers SET next_day = 9 WHERE email_key = 'ben@example.com'")
        started = time.monotonic()
        out = run(project, "send", "--dry-run", "--now", TUESDAY)
        assert time.monotonic() - started < 20  # the busy timeout is 30 s: it never waited
        assert "ben@example.com    2    sent" in out
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    with Ledger.open(settings.ledger, base_dir=settings.base_dir) as ledger:
        ben = ledger.subscriber("ben@example.com")
    assert ben is not None
    assert ben.next_day == 2  # the writer rolled back; nothing of it anywhere


def test_the_rolled_back_rehearsal_sees_its_own_claims_and_leaves_no_trace(
    project: Path,
) -> None:
    """The hook for databases that cannot be copied: one transaction, rolled back."""
    settings = load_settings(project / "schedule.yaml")
    now = datetime(2026, 3, 2, 12, tzinfo=UTC)
    run(project, "send", "--now", MONDAY)
    before = ledger_state(settings)
    rehearsal = Ledger(Database.open_rolled_back(settings.ledger, base_dir=settings.base_dir))
    recorder = RecordingBackend()
    runtime = Runtime.open(settings, clock=lambda: now, ledger=rehearsal, backend=recorder)
    try:
        tuesday = datetime(2026, 3, 3, 12, tzinfo=UTC)
        assert runtime.tick(tuesday).by_day == {2: 4}
        assert runtime.ledger.due(tuesday) == []  # it sees what it claimed and recorded
        view = rehearsal.subscriber("ben@example.com")
        assert view is not None
        assert view.next_day == 3
        history = rehearsal.history("ben@example.com")
        assert [(d.day, d.state) for d in history] == [
            (1, DeliveryState.SENT),
            (2, DeliveryState.SENT),
        ]
    finally:
        runtime.close()
    assert len(recorder.envelopes) == 4
    assert ledger_state(settings) == before


def test_the_recording_backend_runs_the_wire_check() -> None:
    backend = RecordingBackend()
    bad = OutgoingMessage("course@example.com", "not-an-email", "<a@example.com>", b"x\r\n")
    with pytest.raises(WireRefusal):
        backend.send([bad])
    assert backend.envelopes == []


def test_course_send_prints_its_time_like_every_other_command(project: Path) -> None:
    out = run(project, "send", "--now", MONDAY)
    assert out.startswith("2026-03-02 12:00 UTC: 7 sent")
