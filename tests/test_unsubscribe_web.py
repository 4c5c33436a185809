"""Leaving the course: one-click unsubscribe through a real HTTP client against `course serve`."""

from __future__ import annotations

import email
import email.policy
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from support import free_port, run_course

from course.backends.inbox import read_inbox
from course.backends.memory import MemoryBackend
from course.config import load_settings
from course.runtime import Runtime
from course.tokens import decode
from course.unsubscribe import legacy_token, make_token

SECRET = "s3cret-for-tests-only-0123456789"
CSV = "email,first_name,timezone\nann@example.com,Ann,UTC\nben@example.com,Ben,UTC\n"
NOW = "2026-03-02T12:00:00+00:00"


def run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_course(project, *args, env={"COURSE_SECRET": SECRET})
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def site(project: Path) -> Iterator[tuple[Path, str]]:
    """A project whose links point at a `course serve` started on a free port."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    (project / "examples" / "subscribers.csv").write_text(CSV)
    config = project / "schedule.yaml"
    config.write_text(config.read_text().replace("http://127.0.0.1:8026", base))
    server = subprocess.Popen(
        [sys.executable, "-m", "course.cli", "serve", "--port", str(port)],
        cwd=project,
        env={**os.environ, "COURSE_SECRET": SECRET},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert "Unsubscribe endpoints on" in server.stdout.readline()
        _wait_for(port)
        yield project, base
    finally:
        server.terminate()
        server.wait(timeout=10)


def _wait_for(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("course serve did not start")


def delivered(project: Path) -> list[EmailMessage]:
    messages = []
    for item in read_inbox(project / "state" / "inbox"):
        message = email.message_from_bytes(item.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        messages.append(message)
    return messages


def link_for(project: Path, address: str) -> str:
    """The unsubscribe URL from the List-Unsubscribe header of a delivered message."""
    run(project, "send", "--now", NOW)
    (message,) = [m for m in delivered(project) if address in str(m["To"])]
    return str(message["List-Unsubscribe"]).strip("<>")


def status_of(project: Path, address: str) -> str:
    return run(project, "status", "--subscriber", address).stdout.splitlines()[0]


def unsubscribed(project: Path, address: str) -> str:
    """The status line once the POST has reached the ledger (a moment after the answer: it
    is in the suppression log when the 200 goes out, and the ledger takes it from there)."""
    deadline = time.monotonic() + 10
    while not (line := status_of(project, address)).startswith(f"{address}: unsubscribed"):
        assert time.monotonic() < deadline, line
        time.sleep(0.1)
    return line


def test_one_click_post_unsubscribes_at_once(site: tuple[Path, str]) -> None:
    project, base = site
    url = link_for(project, "ann@example.com")
    assert url.startswith(f"{base}/unsubscribe/")
    response = httpx.post(
        url,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert "location" not in response.headers
    assert "You have left Why he pulls away: a 15-day course." in response.text
    assert "(one-click (List-Unsubscribe-Post))" in unsubscribed(project, "ann@example.com")


def test_links_name_subscribers_by_an_opaque_id_and_old_links_still_work(
    site: tuple[Path, str],
) -> None:
    project, base = site
    url = link_for(project, "ann@example.com")
    token = url.rsplit("/", 1)[1]
    assert b"ann" not in decode(token.split(".")[0])
    assert "ann" not in url
    assert httpx.post(url, content=b"List-Unsubscribe=One-Click").status_code == 200
    # A link from a message sent before opaque ids carries the address: it keeps working.
    old = legacy_token(SECRET.encode(), "why-he-pushes-you-away", "ben@example.com")
    assert (
        httpx.post(f"{base}/unsubscribe/{old}", content=b"List-Unsubscribe=One-Click").status_code
        == 200
    )
    for address in ("ann@example.com", "ben@example.com"):
        unsubscribed(project, address)


def test_get_only_asks_and_changes_nothing(site: tuple[Path, str]) -> None:
    project, _ = site
    url = link_for(project, "ben@example.com")
    response = httpx.get(url)
    assert response.status_code == 200
    assert '<form method="post">' in response.text
    assert "Unsubscribe from Why he pulls away: a 15-day course?" in response.text
    assert status_of(project, "ben@example.com").startswith("ben@example.com: active")


def test_the_confirmation_button_unsubscribes(site: tuple[Path, str]) -> None:
    project, _ = site
    url = link_for(project, "ben@example.com")
    response = httpx.post(url, data={"List-Unsubscribe": "One-Click", "via": "page"})
    assert response.status_code == 200
    assert "(unsubscribe page)" in unsubscribed(project, "ben@example.com")


def test_bad_tokens_are_refused_and_reveal_nothing(site: tuple[Path, str]) -> None:
    project, base = site
    url = link_for(project, "ann@example.com")
    token = url.rsplit("/", 1)[1]
    payload, signature = token.split(".")
    forged = make_token(
        b"another-secret-entirely-0123456789", "why-he-pushes-you-away", "ann@example.com"
    )
    other_course = make_token(SECRET.encode(), "another-course", "ann@example.com")
    swapped = make_token(SECRET.encode(), "why-he-pushes-you-away", "ben@example.com")
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".index(token[-1])
    for bad in (
        token[:-1] + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last ^ 1],
        f"{payload}.{signature[:8]}%21%21{signature[8:]}",
        token[:-3],
        f"{payload[:-2]}xx.{signature}",
        f"{swapped.split('.')[0]}.{signature}",
        forged,
        other_course,
        "nonsense",
        "",
    ):
        for method in ("GET", "POST"):
            response = httpx.request(
                method, f"{base}/unsubscribe/{bad}", content=b"List-Unsubscribe=One-Click"
            )
            assert response.status_code in (400, 404), (bad, method)
            assert "ann@example.com" not in response.text
            assert "signature" not in response.text.lower()
    assert status_of(project, "ann@example.com").startswith("ann@example.com: active")
    assert status_of(project, "ben@example.com").startswith("ben@example.com: active")


def test_a_second_post_is_harmless_and_the_next_tick_skips_them(site: tuple[Path, str]) -> None:
    project, _ = site
    url = link_for(project, "ann@example.com")
    first = httpx.post(url, content=b"List-Unsubscribe=One-Click")
    before = unsubscribed(project, "ann@example.com")
    second = httpx.post(url, content=b"List-Unsubscribe=One-Click")
    assert (first.status_code, second.status_code) == (200, 200)
    assert status_of(project, "ann@example.com") == before
    run(project, "send", "--now", "2026-03-03T09:00:00+00:00")
    days = sorted((str(m["To"]), str(m["Subject"])[:8]) for m in delivered(project))
    assert days == [
        ("Ann <ann@example.com>", "Day 1 of"),
        ("Ben <ben@example.com>", "Day 1 of"),
        ("Ben <ben@example.com>", "Day 2 of"),
    ]


def test_by_hand_listed_exported_and_resubscribed(project: Path) -> None:
    (project / "examples" / "subscribers.csv").write_text(CSV + "=cmd@example.com,Formula,UTC\n")
    run(project, "send", "--now", NOW)
    assert (
        run(project, "unsubscribe", "ben@example.com").stdout == "ben@example.com: unsubscribed\n"
    )
    assert (
        run(project, "unsubscribe", "ben@example.com").stdout
        == "ben@example.com: already suppressed; nothing changed\n"
    )
    run(project, "unsubscribe", "=cmd@example.com")
    status = run(project, "status").stdout
    assert "unsubscribed and bounced (latest 50):" in status
    assert "by hand (course unsubscribe)" in status
    exported = run(project, "suppressions").stdout.splitlines()
    assert exported[0] == "email,status,since_utc,reason"
    assert exported[1].startswith("ben@example.com,unsubscribed,")
    assert exported[2].startswith("'=cmd@example.com,unsubscribed,")
    assert run(project, "resubscribe", "ben@example.com").stdout.startswith(
        "ben@example.com: active again from day 2, due "
    )


LIST_UNSUBSCRIBE = re.compile(r"<https://[^\s<>,]+>")


def _check_list_headers(data: bytes) -> None:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert LIST_UNSUBSCRIBE.fullmatch(str(message["List-Unsubscribe"]))
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert str(message["List-Id"]).endswith("<why-he-pushes-you-away.example.com>")


@pytest.mark.parametrize("backend", ["inbox", "file", "memory"])
def test_every_backend_carries_the_list_headers(project: Path, backend: str) -> None:
    (project / "examples" / "subscribers.csv").write_text(CSV)
    config = project / "schedule.yaml"
    config.write_text(
        config.read_text()
        .replace("backend: inbox", f"backend: {backend}")
        .replace("http://127.0.0.1:8026", "https://course.example.com")
    )
    settings = load_settings(config)
    now = datetime(2026, 3, 2, 12, tzinfo=UTC)
    runtime = Runtime.open(settings, clock=lambda: now)
    try:
        assert runtime.tick(now).sent == 2
        if isinstance(runtime.backend, MemoryBackend):
            stored = [m.data for m in runtime.backend.outbox]
        elif backend == "file":
            stored = [p.read_bytes() for p in settings.delivery.outbox.glob("*.eml")]
        else:
            stored = [m.read_bytes() for m in read_inbox(settings.delivery.inbox)]
    finally:
        runtime.close()
    assert len(stored) == 2
    for data in stored:
        _check_list_headers(data)
