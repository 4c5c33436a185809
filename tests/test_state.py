"""Lost state never re-mails anyone: the manifest, `course init`, `backup` and `restore`,
through the real `course` command on real files."""

from __future__ import annotations

import io
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from support import run_course

DAY_1 = "2026-03-02T12:00:00+00:00"
DAY_2 = "2026-03-03T12:00:00+00:00"
DAY_3 = "2026-03-04T12:00:00+00:00"
HOLD_LOCK_WRITING = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE meta SET value = 'half-written' WHERE key = 'ledger_id'")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


def course(
    project: Path, *args: str, code: int = 0, **env: str
) -> subprocess.CompletedProcess[str]:
    result = run_course(project, *args, env=env)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    return result


def inbox(project: Path) -> list[str]:
    """The To line of every delivered message."""
    folder = project / "state" / "inbox" / "new"
    return sorted(
        next(
            line for line in path.read_text(errors="replace").splitlines() if line.startswith("To:")
        )
        for path in folder.iterdir()
    )


def mailed(project: Path, address: str) -> int:
    return sum(f"<{address}>" in line for line in inbox(project))


@pytest.fixture
def running(project: Path) -> Path:
    """Day 1 sent to the seven sample subscribers; ben then unsubscribed."""
    course(project, "send", "--now", DAY_1)
    course(project, "unsubscribe", "ben@example.com")
    return project


def test_a_lost_or_truncated_ledger_refuses_to_start_and_says_how_to_restore(
    running: Path,
) -> None:
    ledger = running / "state" / "course.db"
    for damage in ("truncate", "delete"):
        if damage == "truncate":
            ledger.write_bytes(b"")
            for extra in ("-wal", "-shm"):
                Path(f"{ledger}{extra}").unlink(missing_ok=True)
        else:
            ledger.unlink()
        refused = course(running, "send", "--now", DAY_2, code=1)
        shown = "empty" if damage == "truncate" else "missing"
        assert refused.stderr == (
            "course: error: state/manifest.json says this course's ledger is "
            f"sqlite:///state/course.db (id {_ledger_id(running)[:8]}), but the file "
            f"state/course.db is {shown}: a new one would mail day 1 to everyone again. Restore "
            "it from a backup (`course restore FILE`), or run `course init --fresh` to start a "
            "new ledger on purpose (the unsubscribes in state/suppressions.log are kept)\n"
        )
    # Every command that sends or records refuses the same way.
    for command in (("run",), ("serve", "--port", "0"), ("unsubscribe", "ann@example.com")):
        assert course(running, *command, code=1).stderr.startswith(
            "course: error: state/manifest.json says this course's ledger"
        )
    assert len(inbox(running)) == 7


def _ledger_id(project: Path) -> str:
    return (project / "state" / "manifest.json").read_text().split('"ledger_id": "')[1][:32]


def test_init_fresh_starts_over_but_never_mails_who_left(running: Path) -> None:
    (running / "state" / "course.db").unlink()
    started = course(running, "init", "--fresh").stdout
    assert "1 suppressed addresses carried over" in started
    course(running, "send", "--now", DAY_2)
    assert mailed(running, "ben@example.com") == 1  # day 1, before he left
    assert mailed(running, "ann@example.com") == 2  # day 1 again: the course started over
    assert (running / "state" / "previous").is_dir()


def test_another_ledger_is_refused(running: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    for name in ("templates", "examples", "schedule.yaml"):
        source = running / name
        target = other / name
        if source.is_dir():
            subprocess.run(["cp", "-r", str(source), str(target)], check=True)
        else:
            target.write_bytes(source.read_bytes())
    course(other, "send", "--now", DAY_1)
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{other}/state/course.db{suffix}")
        if source.exists():
            Path(f"{running}/state/course.db{suffix}").write_bytes(source.read_bytes())
    refused = course(running, "send", "--now", DAY_2, code=1).stderr
    assert "state/manifest.json says this course's ledger has id" in refused
    assert "another course's, or an older copy" in refused
    assert len(inbox(running)) == 7


def test_a_lost_secret_refuses_once_mail_has_gone_out(project: Path) -> None:
    # Before any mail, a missing secret is simply made.
    course(project, "send", "--now", DAY_1)
    secret = project / "state" / "unsubscribe.secret"
    old = secret.read_bytes()
    secret.unlink()
    for command in (("send", "--now", DAY_2), ("serve", "--port", "0"), ("run",)):
        refused = course(project, *command, code=1).stderr
        assert refused == (
            "course: error: state/unsubscribe.secret is missing and COURSE_SECRET is not set, "
            "but this ledger has sent mail whose unsubscribe links that secret signed: restore "
            "it from a backup (`course restore FILE`) or set COURSE_SECRET to it. `course init "
            "--new-secret` makes a new one (links already sent stop working)\n"
        )
    assert not secret.exists()
    # Another secret (a changed COURSE_SECRET) is refused the same way...
    other = "a-different-secret-0123456789"
    assert "is not the one this course's links were signed with" in (
        course(project, "send", "--now", DAY_2, code=1, COURSE_SECRET=other).stderr
    )
    # ... until the operator accepts it on purpose.
    course(project, "init", "--new-secret", COURSE_SECRET=other)
    course(project, "send", "--now", DAY_2, COURSE_SECRET=other)
    secret.write_bytes(old)
    assert "is not the one" in course(project, "send", "--now", DAY_3, code=1).stderr


def test_backup_then_restore_keeps_what_happened_since(running: Path, tmp_path: Path) -> None:
    archive = tmp_path / "backup.tar.gz"
    wrote = course(running, "backup", "--out", str(archive)).stdout
    assert "ledger, manifest, suppression log, secret" in wrote
    assert archive.stat().st_mode & 0o777 == 0o600
    course(running, "unsubscribe", "ann@example.com")  # after the backup
    (running / "state" / "course.db").unlink()
    (running / "state" / "unsubscribe.secret").unlink()
    restored = course(running, "restore", str(archive)).stdout
    assert "1 newer suppressions applied" in restored
    course(running, "send", "--now", DAY_2)
    assert mailed(running, "ann@example.com") == 1
    assert mailed(running, "ben@example.com") == 1
    assert mailed(running, "chika@example.com") == 2
    assert (
        "ann@example.com: unsubscribed"
        in course(running, "status", "--subscriber", "ann@example.com").stdout
    )


def test_a_backup_is_consistent_while_another_process_writes(running: Path, tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK_WRITING, str(running / "state" / "course.db")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        archive = tmp_path / "online.tar.gz"
        course(running, "backup", "--out", str(archive))
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
    with tarfile.open(archive) as opened:
        member = opened.extractfile("course.db")
        assert member is not None
        copy = tmp_path / "copy.db"
        copy.write_bytes(member.read())
    ledger_id = _ledger_id(running)

    with sqlite3.connect(copy) as conn:
        (value,) = conn.execute("SELECT value FROM meta WHERE key = 'ledger_id'").fetchone()
    assert value == ledger_id  # the committed state, not the half-written one


def test_restore_refuses_what_is_not_a_backup(running: Path, tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as archive:
        data = b"owned"
        info = tarfile.TarInfo("../../escape.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    refused = course(running, "restore", str(evil), code=1).stderr
    assert refused.startswith(f"course: error: {evil}: unexpected member '../../escape.txt'")
    assert not (tmp_path.parent / "escape.txt").exists()
    missing = course(running, "restore", str(tmp_path / "nope.tar.gz"), code=1).stderr
    assert missing == f"course: error: {tmp_path / 'nope.tar.gz'}: no such file\n"
    assert len(inbox(running)) == 7


def test_a_dry_run_on_a_fresh_checkout_leaves_the_real_state_alone(project: Path) -> None:
    dry = course(project, "send", "--dry-run", "--now", DAY_1).stdout
    assert "7 would be sent" in dry
    assert not (project / "state" / "manifest.json").exists()
    course(project, "send", "--now", DAY_1)
    assert len(inbox(project)) == 7
