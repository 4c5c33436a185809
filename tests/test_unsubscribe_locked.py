"""One-click unsubscribes while another process holds the ledger's write lock.

A long tick or a backup holds SQLite's write lock; the public endpoints must still answer
at once, and a one-click POST must count before the next tick sends that subscriber
anything. Real parts: `course serve` and `course send` as subprocesses, and the lock held
by a separate process through sqlite3.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import free_port, run_course

SECRET = "s3cret-for-tests-only-0123456789"
CSV = "email,first_name,timezone\nann@example.com,Ann,UTC\nben@example.com,Ben,UTC\n"
DAY_1 = "2026-03-02T12:00:00+00:00"
DAY_2 = "2026-03-03T09:00:00+00:00"
HOLD_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


def course(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_course(project, *args, env={"COURSE_SECRET": SECRET})
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def site(project: Path) -> Iterator[tuple[Path, str, subprocess.Popen[str]]]:
    """Day 1 delivered, and `course serve` answering the links it carries."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    (project / "examples" / "subscribers.csv").write_text(CSV)
    config = project / "schedule.yaml"
    config.write_text(config.read_text().replace("http://127.0.0.1:8026", base))
    course(project, "send", "--now", DAY_1)
    server = subprocess.Popen(
        [sys.executable, "-m", "course.cli", "serve", "--port", str(port)],
        cwd=project,
        env={**os.environ, "COURSE_SECRET": SECRET},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert "Unsubscribe endpoints on" in server.stdout.readline()
        yield project, base, server
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def write_lock(project: Path) -> Iterator[subprocess.Popen[str]]:
    """A separate process holding BEGIN IMMEDIATE on the ledger until stdin closes."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(project / "state" / "course.db")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield holder
    finally:
        release(holder)


def take(holder: subprocess.Popen[str]) -> None:
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"


def release(holder: subprocess.Popen[str]) -> None:
    if holder.poll() is None:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)


def link(project: Path, address: str) -> str:
    for path in (project / "state" / "inbox" / "new").iterdir():
        data = path.read_text(errors="replace")
        if f"<{address}>" in data:
            header = next(
                line for line in data.splitlines() if line.startswith("List-Unsubscribe:")
            )
            return header.split("<", 1)[1].split(">", 1)[0]
    raise AssertionError(f"no message to {address}")


def status(project: Path, address: str) -> str:
    return course(project, "status", "--subscriber", address).stdout.splitlines()[0]


def timed(method: str, url: str, **kwargs: object) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.request(method, url, timeout=10, **kwargs)  # type: ignore[arg-type]
    return response, time.monotonic() - started


def test_pages_answer_at_once_and_the_post_counts_once_the_lock_frees(
    site: tuple[Path, str, subprocess.Popen[str]], write_lock: subprocess.Popen[str]
) -> None:
    project, _, _ = site
    url = link(project, "ann@example.com")
    take(write_lock)
    page, page_seconds = timed("GET", url)
    posted, post_seconds = timed("POST", url, content=b"List-Unsubscribe=One-Click")
    again, again_seconds = timed("GET", link(project, "ben@example.com"))
    assert [page.status_code, posted.status_code, again.status_code] == [200, 200, 200]
    assert max(page_seconds, post_seconds, again_seconds) < 1.0
    assert "You have left" in posted.text
    assert status(project, "ann@example.com").startswith("ann@example.com: active")
    release(write_lock)
    deadline = time.monotonic() + 10
    while not status(project, "ann@example.com").startswith("ann@example.com: unsubscribed"):
        assert time.monotonic() < deadline, "the POST never reached the ledger"
        time.sleep(0.2)
    assert "one-click (List-Unsubscribe-Post)" in status(project, "ann@example.com")


def test_a_post_taken_under_the_lock_counts_before_the_next_tick(
    site: tuple[Path, str, subprocess.Popen[str]], write_lock: subprocess.Popen[str]
) -> None:
    project, _, server = site
    url = link(project, "ann@example.com")
    take(write_lock)
    posted, seconds = timed("POST", url, content=b"List-Unsubscribe=One-Click")
    assert (posted.status_code, seconds < 1.0) == (200, True)
    # The server goes away before the ledger is free: only the journal knows.
    server.terminate()
    server.wait(timeout=10)
    release(write_lock)
    sent = course(project, "send", "--now", DAY_2).stdout
    assert "1 sent" in sent
    recipients = [
        path.read_text(errors="replace") for path in (project / "state" / "inbox" / "new").iterdir()
    ]
    assert sum("<ann@example.com>" in message for message in recipients) == 1  # day 1 only
    assert sum("<ben@example.com>" in message for message in recipients) == 2
    assert status(project, "ann@example.com").startswith("ann@example.com: unsubscribed")
