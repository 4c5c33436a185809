"""`course bounces` and `course run` reading the bounce mailbox: Maildir, and IMAP on Dovecot."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dovecot
import pytest
from bounce_corpus import load
from support import free_port, run_course

from course.article import load_article
from course.bounces.verp import ReturnPath
from course.build import course_id
from course.config import load_settings
from course.ledger import Ledger, SubscriberRecord
from course.unsubscribe import make_token

SECRET = "s3cret-for-tests-only-0123456789"
ENV = {"COURSE_SECRET": SECRET, "COLUMNS": "250"}
PEOPLE = ["ana@example.com", "finn@example.com", "hana@example.org", "jo@example.net",
          "lou@example.net", "max@example.com"]  # fmt: skip
MESSAGES = ["postfix-hard.eml", "postfix-delayed.eml", "exchange-out-of-office.eml",
            "yahoo-complaint.eml", "verp-unreadable.eml", "verp-forged.eml",
            "human-reply.eml"]  # fmt: skip


def configure(project: Path, extra: str = "") -> None:
    csv = "email,first_name,timezone\n" + "".join(f"{e},{e[:3]},UTC\n" for e in PEOPLE)
    (project / "examples" / "subscribers.csv").write_text(csv)
    config = project / "schedule.yaml"
    text = config.read_text().replace(
        "  postal_address:", "  return_path: bounces@example.com\n  verp: true\n  postal_address:"
    )
    text = text.replace("listen: 127.0.0.1:8026", f"listen: 127.0.0.1:{free_port()}")
    text = text.replace("port: 8025", f"port: {free_port()}")
    config.write_text(text + extra)


def signer(project: Path):  # type: ignore[no-untyped-def]
    settings = load_settings(project / "schedule.yaml")
    identity = course_id(settings, load_article(settings.course.article))
    path = ReturnPath("bounces@example.com", True, SECRET.encode(), identity)
    forger = ReturnPath("bounces@example.com", True, b"not-the-secret-0123456789", identity)

    def sign(kind: str, email: str, day: int) -> str:
        if kind == "UNSUB":
            return make_token(SECRET.encode(), identity, email)
        return (path if kind == "VERP" else forger).for_lesson(email, day)

    return sign


def seed(project: Path) -> None:
    """The subscribers in the ledger, as a first tick would put them (faster than `course send`)."""
    records = [SubscriberRecord(e, e[:3], "UTC", {}, None) for e in PEOPLE]
    with Ledger.open("sqlite:///state/course.db", base_dir=project) as ledger:
        ledger.sync(records, now=datetime.now(UTC), first_due=lambda _tz, t: t)


def course(project: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = run_course(project, *args, env={**ENV, **(env or {})})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def status(project: Path, email: str) -> str:
    with Ledger.open("sqlite:///state/course.db", base_dir=project) as ledger:
        view = ledger.subscriber(email)
    assert view is not None
    return str(view.status)


def deliver_to_maildir(project: Path, box: Path) -> None:
    sign = signer(project)
    for sub in ("new", "cur", "tmp"):
        (box / sub).mkdir(parents=True, exist_ok=True)
    for number, name in enumerate(MESSAGES):
        (box / "new" / f"{1718000000 + number}.M{number}P1.mx").write_bytes(load(name, sign))


def expect_processed(project: Path) -> None:
    assert status(project, "ana@example.com") == "bounced"
    assert status(project, "lou@example.net") == "bounced"  # VERP, unreadable body
    assert status(project, "jo@example.net") == "unsubscribed"  # complaint
    for email in ("finn@example.com", "hana@example.org", "max@example.com"):
        assert status(project, email) == "active", email


def test_course_bounces_on_the_embedded_maildir(project: Path) -> None:
    configure(project)
    seed(project)
    assert "maildir:state/bounces: no new messages" in course(project, "bounces")
    deliver_to_maildir(project, project / "state" / "bounces")

    dry = course(project, "bounces", "--dry-run")
    assert dry.startswith("dry run: maildir:state/bounces: 7 new messages: 2 bounced")
    assert status(project, "ana@example.com") == "active"
    assert len(os.listdir(project / "state" / "bounces" / "new")) == 7

    out = course(project, "bounces")
    assert "bounced ana@example.com (VERP token)" in out
    assert "complaint jo@example.net (VERP token)" in out
    assert "waiting for you in maildir:state/bounces (2, flagged, unread)" in out
    assert "forged VERP token" in out
    expect_processed(project)
    assert os.listdir(project / "state" / "bounces" / "new") == []

    again = course(project, "bounces")
    assert "no new messages" in again
    assert "waiting for you" in again  # still listed until the operator reads them

    report = course(project, "status")
    assert "finn@example.com" in report  # the delayed DSN, noted
    assert "4.4.1" in report


def test_imap_password_missing_is_one_error(project: Path) -> None:
    configure(project, "bounces:\n  mailbox: imaps://bounces@127.0.0.1:9993/INBOX\n")
    result = run_course(project, "bounces", env=ENV)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "course: error: schedule.yaml: bounces.password_env: set the environment variable "
        "BOUNCES_PASSWORD to the password of imaps://bounces@127.0.0.1:9993/INBOX"
    )


@pytest.fixture(scope="module")
def server() -> Iterator[dovecot.Dovecot]:
    if not dovecot.available():
        pytest.skip("needs Debian's dovecot-imapd, run as root (scripts/test-deps)")
    with dovecot.running_dovecot() as running:
        yield running


def test_course_bounces_over_imap(project: Path, server: dovecot.Dovecot) -> None:
    server.empty()
    configure(
        project,
        f"bounces:\n  mailbox: imaps://{dovecot.USER}@127.0.0.1:{server.port}/INBOX\n"
        f"  ca_file: {server.ca_file}\n  processed_folder: Done\n",
    )
    seed(project)
    sign = signer(project)
    for name in MESSAGES:
        server.deliver(load(name, sign))
    env = {"BOUNCES_PASSWORD": dovecot.PASSWORD}
    out = course(project, "bounces", env=env)
    assert "7 new messages" in out
    expect_processed(project)
    assert [flags for flags, _ in server.folder("INBOX")] == [{"\\Flagged"}] * 2
    assert [flags for flags, _ in server.folder("Done")] == [{"\\Seen"}] * 5
    assert "no new messages" in course(project, "bounces", env=env)


def test_course_run_reads_the_mailbox_every_bounces_every_minutes(project: Path) -> None:
    configure(project, "bounces:\n  every_minutes: 0.02\n")
    seed(project)
    deliver_to_maildir(project, project / "state" / "bounces")
    run = subprocess.Popen(
        [sys.executable, "-m", "course.cli", "run"],
        cwd=project,
        env={**os.environ, **ENV},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and os.listdir(project / "state" / "bounces" / "new"):
            time.sleep(0.2)
    finally:
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=30)
    assert run.returncode == 0, stderr
    assert "bounce mailbox maildir:state/bounces: 7 new messages" in stderr
    expect_processed(project)


def test_course_run_with_an_imap_mailbox_and_no_password_does_not_start(project: Path) -> None:
    configure(project, "bounces:\n  mailbox: imaps://b@127.0.0.1:9993/INBOX\n  every_minutes: 5\n")
    result = run_course(project, "run", env=ENV)
    assert result.returncode == 1
    assert "bounces.password_env: set the environment variable BOUNCES_PASSWORD" in result.stderr
    assert "Traceback" not in result.stderr
