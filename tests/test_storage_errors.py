"""Storage that fails mid-batch: what was already written is recorded, so nothing is sent twice.

Real files: an inbox whose tmp/ disappears part-way through a batch, and (where the test may
mount one) a Maildir on a tiny tmpfs that fills up during `course send`.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support import run_course

from course.backends.base import OutgoingMessage, SendResult
from course.backends.file import FileBackend
from course.backends.inbox import InboxBackend
from course.errors import DeliveryError
from course.suppress import Action, Suppression, SuppressionLog, SuppressionLogError

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)


def message(n: int) -> OutgoingMessage:
    data = (
        f"From: a@example.com\r\nTo: r{n}@example.com\r\nSubject: s\r\n"
        f"Date: Mon, 02 Mar 2026 12:00:00 +0000\r\nMessage-ID: <m{n}@example.com>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nbody\r\n"
    )
    return OutgoingMessage(
        "a@example.com", f"r{n}@example.com", f"<m{n}@example.com>", data.encode()
    )


def messages(count: int) -> list[OutgoingMessage]:
    return [message(n) for n in range(count)]


class BreakOnCall:
    """A clock that removes a folder when it is read for the n-th time (once per message)."""

    def __init__(self, folder: Path, call: int) -> None:
        self.folder, self.call, self.calls = folder, call, 0

    def __call__(self) -> datetime:
        self.calls += 1
        if self.calls == self.call:
            shutil.rmtree(self.folder)
        return datetime(2026, 3, 2, 12, tzinfo=UTC)


def test_a_backend_reports_what_it_stored_before_failing(tmp_path: Path) -> None:
    reported: list[SendResult] = []
    inbox = tmp_path / "inbox"
    backend = InboxBackend(inbox, clock=BreakOnCall(inbox / "tmp", 6))
    with (
        backend,
        pytest.raises(DeliveryError, match=r"\(5 of 20 stored and recorded before that\)"),
    ):
        backend.send(messages(20), on_result=reported.extend)
    assert [r.message.recipient for r in reported] == [f"r{n}@example.com" for n in range(5)]
    assert len(list((inbox / "new").iterdir())) == 5


def test_what_cannot_be_made_durable_is_not_reported(tmp_path: Path) -> None:
    # The folder itself went away: the five written files went with it, so none is recorded
    # as sent (sending them again is the safe side; see the crash rule).
    reported: list[SendResult] = []
    backend = FileBackend(tmp_path / "out", clock=BreakOnCall(tmp_path / "out", 6))
    with (
        backend,
        pytest.raises(DeliveryError, match=r"\(0 of 20 stored and recorded before that\)"),
    ):
        backend.send(messages(20), on_result=reported.extend)
    assert reported == []


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 192 KB tmpfs (it takes root and CAP_SYS_ADMIN, as in the CI container)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=192k,mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_inbox_mid_batch_sends_nobody_twice(project: Path, tiny_tmpfs: Path) -> None:
    people = [f"reader{n:02d}@example.com" for n in range(40)]
    (project / "examples" / "subscribers.csv").write_text(
        "email,first_name,timezone\n" + "".join(f"{p},Reader,UTC\n" for p in people)
    )
    config = project / "schedule.yaml"
    config.write_text(
        config.read_text().replace("inbox: state/inbox ", f"inbox: {tiny_tmpfs}/inbox ")
    )
    full = run_course(project, "send", "--now", "2026-03-02T12:00:00+00:00")
    assert full.returncode == 1
    assert "No space left on device" in full.stderr
    assert "stored and recorded before that" in full.stderr
    written = len(list((tiny_tmpfs / "inbox" / "new").iterdir()))
    assert 0 < written < 40
    subprocess.run(["mount", "-o", "remount,size=16m", str(tiny_tmpfs)], check=True)
    again = run_course(project, "send", "--now", "2026-03-02T12:05:00+00:00")
    assert again.returncode == 0, again.stderr
    delivered = Counter(
        next(
            line for line in path.read_text(errors="replace").splitlines() if line.startswith("To:")
        )
        for path in (tiny_tmpfs / "inbox" / "new").iterdir()
    )
    assert len(delivered) == 40
    assert max(delivered.values()) == 1


def test_a_full_disk_fails_the_suppression_log_loudly(tiny_tmpfs: Path) -> None:
    log = SuppressionLog(tiny_tmpfs / "state" / "suppressions.log")
    log.append([Suppression("ann@example.com", Action.UNSUBSCRIBE, "one-click", NOW)])
    (tiny_tmpfs / "filler").write_bytes(b"x" * (180 * 1024 - log.size() - 4096))

    def fill_up() -> None:
        for n in range(200):  # until the disk is full: none of these may pass silently
            log.append([Suppression(f"r{n}@example.com", Action.UNSUBSCRIBE, "x" * 200, NOW)])

    with pytest.raises(SuppressionLogError, match=r"suppressions\.log"):
        fill_up()
    read = log.read_from(0)
    assert read.entries[0].email == "ann@example.com"
    assert all(entry.how == "x" * 200 for entry in read.entries[1:])
