"""`course simulate` rehearses in a sandbox and never touches the real course (issue 12, item 3).

On a fresh checkout an operator runs `course send` and then `course simulate --days 15`: the
seven subscribers must still be on day 2 in the real ledger, the real inbox must hold only
what was really delivered (a send test included), and the fifteen simulated days must be in
the sandbox under state/simulate/, which the preview shows apart.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from support import free_port, run_course, use_ledger

from course.backends.inbox import read_inbox
from course.config import Settings, load_settings
from course.ledger import Ledger, SubscriberStatus
from course.ledger.copies import copy_rows
from course.web.preview import start_preview

SECRET = {"COURSE_SECRET": "simulate-test-secret-0123456789"}
MONDAY = "2026-03-02T12:00Z"


def run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_course(project, *args, env=SECRET)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def statuses(settings: Settings, url: str | None = None) -> dict[SubscriberStatus, int]:
    with Ledger.open(url or settings.ledger, base_dir=settings.base_dir) as ledger:
        return ledger.status_counts()


def recipients(folder: Path) -> list[str]:
    return sorted(m.recipient for m in read_inbox(folder))


SANDBOX_LEDGER = "sqlite:///state/simulate/course.db"
SANDBOX_INBOX = "state/simulate/inbox"


def sent(summary: str) -> int:
    found = re.search(r"(\d+) sent", summary)
    assert found is not None, summary
    return int(found[1])


def test_simulating_after_a_real_send_leaves_the_real_course_alone(
    project: Path, ledger_url: str
) -> None:
    """The sandbox is a SQLite copy whatever the real ledger is (PostgreSQL: row by row)."""
    use_ledger(project, ledger_url)
    settings = load_settings(project / "schedule.yaml")
    run(project, "send", "--now", MONDAY)
    run(project, "send-test", "--day", "3", "--to", "me@example.org")
    real_inbox = project / "state" / "inbox"
    before = sorted(p.name for p in (real_inbox / "new").iterdir())
    result = run(project, "simulate", "--days", "15", "--start", MONDAY)
    assert (
        "in the sandbox state/simulate/ (a copy of the ledger; the real ledger and inbox are "
        in (result.stdout)
    )
    assert statuses(settings) == {SubscriberStatus.ACTIVE: 7}  # not one completed
    with Ledger.open(settings.ledger, base_dir=settings.base_dir) as ledger:
        assert sorted({day for day, _ in ledger.state_counts()}) == [1]
    assert sorted(p.name for p in (real_inbox / "new").iterdir()) == before
    assert "me@example.org" in recipients(real_inbox)  # the send test is not buried
    # The sandbox went on from the copy: day 1 was already sent, so days 2 to 15 only.
    assert statuses(settings, SANDBOX_LEDGER) == {SubscriberStatus.COMPLETED: 7}
    sandbox = read_inbox(project / "state" / "simulate" / "inbox")
    assert sorted({m.day or 0 for m in sandbox}) == list(range(2, 16))
    assert len(sandbox) == 7 * 14


def test_the_copy_keeps_what_the_real_course_knows(project: Path) -> None:
    run(project, "send", "--now", MONDAY)
    run(project, "unsubscribe", "ben@example.com")
    real_log = (project / "state" / "suppressions.log").read_bytes()
    run(project, "simulate", "--days", "3", "--start", MONDAY)
    assert (project / "state" / "suppressions.log").read_bytes() == real_log
    sandbox = project / SANDBOX_INBOX
    assert "ben@example.com" not in recipients(sandbox)
    assert {m.day for m in read_inbox(sandbox) if m.recipient == "ann@example.com"} == {2, 3}
    fresh = run(project, "simulate", "--days", "3", "--start", MONDAY, "--fresh")
    assert "(an empty ledger;" in fresh.stdout
    # Fresh: everyone from day 1 again, the sandbox emptied first; but the suppression log
    # is replayed into every ledger, so Ben, who left, is not mailed even there.
    assert {m.day for m in read_inbox(sandbox) if m.recipient == "ann@example.com"} == {1, 2, 3}
    assert "ben@example.com" not in recipients(sandbox)


def test_a_running_course_does_not_stop_a_simulation(project: Path) -> None:
    """The copy comes without the workers' registrations: `course run` keeps its own."""
    settings = load_settings(project / "schedule.yaml")
    run(project, "send", "--now", MONDAY)
    now = datetime.now(UTC)
    with Ledger.open(settings.ledger, base_dir=settings.base_dir) as ledger:
        ledger.register_worker(
            owner="live-run",
            pid=os.getpid(),
            host=socket.gethostname(),
            now=now,
            stale_after=timedelta(hours=1),
        )
        result = run(project, "simulate", "--days", "2", "--start", MONDAY)
        assert "(day 2: 7" in result.stdout
        busy = run_course(project, "send", "--now", MONDAY, env=SECRET)
        assert busy.returncode == 1  # SQLite: the real ledger's one worker still runs
        ledger.release_worker(owner="live-run")


def test_with_smtp_configured_the_sandbox_still_never_sends(project: Path) -> None:
    config = project / "schedule.yaml"
    text = config.read_text().replace("backend: inbox ", "backend: smtp ")
    text = text.replace("http://127.0.0.1:8026", "https://course.example.com")
    text = text.replace("  # smtp:\n", f"  smtp:\n    host: 127.0.0.1\n    port: {free_port()}\n")
    config.write_text(text)
    result = run(project, "simulate", "--days", "1", "--start", MONDAY)
    assert "(day 1: 7" in result.stdout
    assert len(read_inbox(project / "state" / "simulate" / "inbox")) == sent(result.stdout)
    refused = run_course(project, "simulate", "--days", "1", "--in-place", env=SECRET)
    assert refused.returncode == 1
    assert "it refuses smtp" in refused.stderr


def test_in_place_is_the_old_behaviour_with_a_warning(project: Path) -> None:
    settings = load_settings(project / "schedule.yaml")
    result = run(project, "simulate", "--days", "15", "--start", MONDAY, "--in-place")
    assert result.stderr.startswith("course: warning: simulate --in-place: the real ledger")
    assert "on the real ledger:" in result.stdout
    assert statuses(settings) == {SubscriberStatus.COMPLETED: 7}
    assert not (project / "state" / "simulate").exists()


def test_the_preview_shows_the_sandbox_inbox_apart(project: Path) -> None:
    run(project, "send", "--now", MONDAY)
    run(project, "simulate", "--days", "2", "--start", MONDAY)
    server = start_preview(load_settings(project / "schedule.yaml"), 0, spamassassin=False)
    try:
        with httpx.Client(base_url=server.url, timeout=20) as client:
            real = client.get("/inbox").text
            sandbox = client.get("/simulate").text
            assert 'href="/simulate"' in real  # the nav offers the sandbox once it exists
            assert real.count("<tr data-key=") == 7
            assert "Simulation inbox" in sandbox
            assert sandbox.count("<tr data-key=") == len(read_inbox(project / SANDBOX_INBOX))
            key = sandbox.split('<tr data-key="', 1)[1].split('"', 1)[0]
            message = client.get(f"/simulate/{key}")
            assert message.status_code == 200
            assert "← Simulation inbox" in message.text
            assert client.get(f"/inbox/{key}").status_code == 404  # not in the real one
            assert client.get(f"/simulate/{key}/message.eml").status_code == 200
    finally:
        server.stop()


def test_any_ledger_copies_row_by_row(project: Path, tmp_path: Path) -> None:
    """The path for ledgers that SQLite's backup API cannot copy (PostgreSQL)."""
    settings = load_settings(project / "schedule.yaml")
    run(project, "send", "--now", MONDAY)
    run(project, "unsubscribe", "zoe@example.com")
    copy_url = f"sqlite:///{tmp_path / 'copy.db'}"
    with (
        Ledger.open(settings.ledger, base_dir=settings.base_dir) as source,
        Ledger.open(copy_url, base_dir=tmp_path) as target,
    ):
        copy_rows(source.database, target.database)
        assert target.status_counts() == source.status_counts()
        assert target.state_counts() == source.state_counts()
        assert target.history("ann@example.com") == source.history("ann@example.com")
        assert target.suppressions() == source.suppressions()
