"""A server that refuses in its greeting (421) stops the tick, as the README's table says."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import run_course

GREETING = b"421 4.3.2 mail.example.com not accepting mail now, try later\r\n"


@pytest.fixture
def refusing_server() -> Iterator[int]:
    """A loopback SMTP server that answers every connection with a 421 greeting and hangs up."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(GREETING)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_a_421_greeting_stops_the_tick_and_marks_nobody(
    project: Path, refusing_server: int
) -> None:
    config = project / "schedule.yaml"
    config.write_text(
        config.read_text()
        .replace("backend: inbox ", "backend: smtp  ")
        .replace(
            "  # smtp:\n",
            f"  smtp:\n    host: 127.0.0.1\n    port: {refusing_server}\n    security: none\n",
        )
        .replace("http://127.0.0.1:8026", "https://course.example.com")
    )
    result = run_course(project, "send", "--now", "2026-03-02T12:00:00+00:00")
    assert result.returncode == 1
    assert f"127.0.0.1:{refusing_server}" in result.stderr
    assert "Traceback" not in result.stderr
    status = run_course(project, "status").stdout
    assert "7 active" in status.splitlines()[0]
    assert "problems" not in status
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert (
        "| 421 (or any refusal) in the greeting, before any message | the server is not taking "
        "mail now: the tick stops" in readme
    )
