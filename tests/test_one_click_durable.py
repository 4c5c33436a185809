"""One-click POSTs recorded in group commits: a burst is all recorded, each POST is answered
only after the fsync that holds its own entry, and a crash right after a 200 loses nothing.

Real parts: `course serve` as a subprocess killed with SIGKILL, real sockets, the real
suppression log and ledger. The in-process test wraps os.fsync only to note when each fsync
of the log returned (and delays its return, so an answer sent too early would show).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from support import free_port, run_course

from course.commands.optout import public_app, public_limits
from course.config import load_settings
from course.ledger import SubscriberStatus
from course.runtime import Runtime
from course.state import open_ledger
from course.unsubscribe import make_token
from course.web.group_commit import GroupCommit
from course.web.public import LEDGER_WAIT_SECONDS
from course.web.server import serve_in_background

SECRET = "s3cret-for-tests-only-0123456789"
COURSE_ID = "why-he-pushes-you-away"
NOW = "2026-03-02T12:00:00+00:00"
SUBSCRIBERS = 120
BODY = b"List-Unsubscribe=One-Click"
FSYNC_DELAY = 3 * LEDGER_WAIT_SECONDS


def address(n: int) -> str:
    return f"reader{n}@example.com"


@pytest.fixture
def course_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped project with SUBSCRIBERS subscribers in its ledger (ids filled), none
    mailed yet."""
    monkeypatch.setenv("COURSE_SECRET", SECRET)
    csv = "email,first_name,timezone\n" + "".join(
        f"{address(n)},Reader,UTC\n" for n in range(SUBSCRIBERS)
    )
    (project / "examples" / "subscribers.csv").write_text(csv)
    now = datetime.fromisoformat(NOW)
    runtime = Runtime.open(load_settings(project / "schedule.yaml"), clock=lambda: now)
    try:
        runtime.refresh_subscribers(now)
        runtime.ledger.fill_refs(runtime.deliverer.links.ref)
    finally:
        runtime.close()
    return project


def post_request(n: int) -> bytes:
    token = make_token(SECRET.encode(), COURSE_ID, address(n))
    return (
        f"POST /unsubscribe/{token} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(BODY)}\r\nConnection: close\r\n\r\n"
    ).encode() + BODY


@dataclass
class Answer:
    n: int
    status: bytes
    at: float  # time.monotonic() when the status line arrived


async def burst(port: int, numbers: range, answered: list[Answer]) -> None:
    """POST for every number at once; note each answer's status line as it arrives."""

    async def one(n: int) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(post_request(n))
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), 30)
            writer.close()
        except (OSError, TimeoutError):
            return  # the server died with this one in flight: it promised nothing
        if line:
            answered.append(Answer(n, line.split(b" ")[1], time.monotonic()))

    await asyncio.gather(*(one(n) for n in numbers))


def logged_addresses(project: Path) -> list[str]:
    lines = (project / "state" / "suppressions.log").read_text().splitlines()[1:]
    return [json.loads(line)["email"] for line in lines if line.strip()]


def test_a_burst_is_recorded_and_each_answer_follows_the_fsync_of_its_entry(
    course_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_path = (course_project / "state" / "suppressions.log").resolve()
    synced: list[tuple[float, int]] = []  # (when an fsync of the log returned, bytes it held)
    real_fsync = os.fsync
    lock = threading.Lock()

    def noting_fsync(fd: int) -> None:
        real_fsync(fd)
        if Path(os.readlink(f"/proc/self/fd/{fd}")) == log_path:
            size = os.fstat(fd).st_size
            # An answer sent before this returns would arrive before `at`, even one that
            # first waited out the ledger catch-up (LEDGER_WAIT_SECONDS).
            time.sleep(FSYNC_DELAY)
            with lock:
                synced.append((time.monotonic(), size))

    monkeypatch.setattr(os, "fsync", noting_fsync)
    settings = load_settings(course_project / "schedule.yaml")
    answered: list[Answer] = []
    with open_ledger(settings, COURSE_ID) as ledger, public_app(settings, ledger) as app:
        server = serve_in_background(
            app, "127.0.0.1", 0, what="test", limits=public_limits(settings)
        )
        try:
            asyncio.run(burst(server.port, range(SUBSCRIBERS), answered))
        finally:
            server.stop()
        batches = app.recorder.commits.batches

    assert sorted(a.n for a in answered) == list(range(SUBSCRIBERS))
    assert {a.status for a in answered} == {b"200"}
    # Group commit: far fewer fsyncs (and batches) than POSTs.
    assert len(synced) == batches < SUBSCRIBERS / 2
    # Where each address's entry ends in the log.
    ends: dict[str, int] = {}
    with log_path.open("rb") as log:
        log.readline()  # the header
        for line in log:
            ends[json.loads(line)["email"]] = log.tell()
    assert sorted(ends) == sorted(address(n) for n in range(SUBSCRIBERS))
    for answer in answered:
        covered = [at for at, size in synced if size >= ends[address(answer.n)]]
        assert covered, f"{address(answer.n)}: no fsync held its entry"
        assert min(covered) <= answer.at, f"{address(answer.n)}: answered before its fsync"


@pytest.fixture
def serve(course_project: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "course.cli", "serve", "--port", str(port)],
        cwd=course_project,
        env={**os.environ, "COURSE_SECRET": SECRET},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert server.stdout is not None
        assert b"Unsubscribe endpoints on" in server.stdout.readline()
        yield server, port
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(timeout=10)


def test_a_crash_right_after_the_answers_loses_none_of_them(
    course_project: Path, serve: tuple[subprocess.Popen[bytes], int]
) -> None:
    server, port = serve
    answered: list[Answer] = []
    posting = range(SUBSCRIBERS * 2 // 3)  # the rest never ask: they get their lesson

    async def kill_after_the_first_answers() -> None:
        storm = asyncio.ensure_future(burst(port, posting, answered))
        while len(answered) < len(posting) // 3 and not storm.done():
            await asyncio.sleep(0.001)
        server.send_signal(signal.SIGKILL)  # POSTs still in flight: no answer, no promise
        await storm

    asyncio.run(kill_after_the_first_answers())
    assert server.wait(timeout=10) == -signal.SIGKILL
    promised = {address(a.n) for a in answered if a.status == b"200"}
    assert len(promised) >= len(posting) // 3
    assert promised <= set(logged_addresses(course_project))
    # The next tick takes them in before it sends anything: none of them gets day 1.
    sent = run_course(course_project, "send", "--now", NOW, env={"COURSE_SECRET": SECRET})
    assert sent.returncode == 0, sent.stderr
    inbox = course_project / "state" / "inbox" / "new"
    mailed = {
        line.split("<", 1)[1].rstrip(">")
        for message in inbox.iterdir()
        for line in message.read_text().splitlines()
        if line.startswith("To:")
    }
    assert not mailed & promised
    assert {address(n) for n in range(len(posting), SUBSCRIBERS)} <= mailed
    settings = load_settings(course_project / "schedule.yaml")
    with open_ledger(settings, COURSE_ID) as ledger:
        for email in promised:
            view = ledger.subscriber(email)
            assert view is not None
            assert view.status == SubscriberStatus.UNSUBSCRIBED


def test_group_commit_answers_each_caller_with_its_own_result_or_error() -> None:
    batches: list[list[int]] = []
    release = threading.Event()

    def commit(items: list[int]) -> list[str | Exception]:
        if not batches:
            release.wait(5)  # the first commit is slow: everything else queues behind it
        batches.append(items)
        if 13 in items:
            raise OSError("disk full")
        return [ValueError(f"bad {n}") if n % 5 == 0 else f"ok {n}" for n in items]

    async def main() -> list[str | BaseException]:
        group: GroupCommit[int, str] = GroupCommit(commit)
        first = asyncio.ensure_future(group.submit(1))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(group.submit(n)) for n in range(2, 13)]
        await asyncio.sleep(0.01)
        release.set()
        outcomes = await asyncio.gather(first, *rest, return_exceptions=True)
        failing = await asyncio.gather(group.submit(13), group.submit(14), return_exceptions=True)
        after = await group.submit(16)
        return [*outcomes, *failing, after]

    outcomes = asyncio.run(main())
    assert batches == [[1], list(range(2, 13)), [13, 14], [16]]
    assert outcomes[0] == "ok 1"
    for n, outcome in zip(range(2, 13), outcomes[1:12], strict=True):
        if n % 5 == 0:
            assert isinstance(outcome, ValueError)
        else:
            assert outcome == f"ok {n}"
    assert all(isinstance(outcome, OSError) for outcome in outcomes[12:14])
    assert outcomes[14] == "ok 16"


def test_a_post_whose_client_leaves_before_the_body_ends_records_nothing(
    course_project: Path, serve: tuple[subprocess.Popen[bytes], int]
) -> None:
    _, port = serve
    whole = post_request(0)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(whole[: -len(BODY) // 2])  # the headers and half of the body
        sock.shutdown(socket.SHUT_WR)  # then the client is gone
        sock.settimeout(10)
        while sock.recv(4096):
            pass
    answered: list[Answer] = []
    asyncio.run(burst(port, range(1, 2), answered))  # a whole one, after it
    assert [a.status for a in answered] == [b"200"]
    assert logged_addresses(course_project) == [address(1)]


def test_a_log_that_cannot_be_written_answers_503_to_each_caller_and_promises_nothing(
    course_project: Path, serve: tuple[subprocess.Popen[bytes], int]
) -> None:
    _, port = serve
    log_path = course_project / "state" / "suppressions.log"
    log_path.unlink(missing_ok=True)
    log_path.mkdir()  # nothing can be appended to it now
    answered: list[Answer] = []
    asyncio.run(burst(port, range(20), answered))
    assert sorted(a.n for a in answered) == list(range(20))
    assert {a.status for a in answered} == {b"503"}
    log_path.rmdir()
    answered.clear()
    asyncio.run(burst(port, range(20), answered))  # the provider tries again
    assert {a.status for a in answered} == {b"200"}
    assert sorted(logged_addresses(course_project)) == sorted(address(n) for n in range(20))
