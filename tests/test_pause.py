"""The error pause lives in the ledger: a cron-driven `course send` does not hit a throttling
server again until the pause is over, and `course status` shows it. Real aiosmtpd server,
the CLI as a subprocess."""

from __future__ import annotations

from pathlib import Path

from smtp_servers import ScriptedHandler, smtp_server
from support import run_course

CSV = "email,first_name,timezone\n" + "".join(
    f"reader{n}@example.com,Reader {n},UTC\n" for n in range(5)
)
T0 = "2026-03-02T12:00:00+00:00"
T0_PLUS_1 = "2026-03-02T12:01:00+00:00"
T0_PLUS_31 = "2026-03-02T12:31:00+00:00"


def configure(project: Path, port: int) -> None:
    (project / "examples" / "subscribers.csv").write_text(CSV)
    config = project / "schedule.yaml"
    config.write_text(
        config.read_text()
        .replace("backend: inbox ", "backend: smtp  ")
        .replace(
            "  # smtp:\n",
            f"  smtp:\n    host: 127.0.0.1\n    port: {port}\n    security: none\n"
            "    max_connections: 1\n    max_send_errors: 2\n    pause_minutes: 30\n",
        )
        .replace("http://127.0.0.1:8026", "https://course.example.com")
    )


def send(project: Path, now: str) -> str:
    result = run_course(project, "send", "--now", now)
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_the_pause_outlives_the_process_and_shows_in_status(project: Path) -> None:
    handler = ScriptedHandler()
    handler.rcpt_reply = {f"reader{n}@example.com": "451 4.3.0 Try again later" for n in range(5)}
    with smtp_server(handler) as server:
        configure(project, server.port)
        first = send(project, T0)
        assert "ALERT" in first
        assert "delivery paused until 2026-03-02T12:30" in first
        tried = handler.command_count("RCPT")
        assert tried >= 2

        again = send(project, T0_PLUS_1)  # cron, a minute later: a new process
        assert "delivery paused until 2026-03-02T12:30" in again
        assert handler.command_count("RCPT") == tried  # the server was left alone

        status = run_course(project, "status").stdout
        # (The test's clock is virtual; against the real one this pause is long over.)
        assert "delivery paused until 2026-03-02 12:30 UTC" in status
        assert "after too many errors: pausing: 2 errors in a row" in status
        assert "2 errors in a row from SMTP server 127.0.0.1:" in status

        handler.rcpt_reply = {}
        later = send(project, T0_PLUS_31)
        assert handler.command_count("RCPT") > tried
        assert "5 sent" in later
