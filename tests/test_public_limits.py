"""`course serve` holds without a reverse proxy: bounded bodies, deadlines, a connection cap,
and a log that a flood cannot fill. Real sockets against one real `course serve`."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from support import free_port, run_course

from course.logs import RepeatFilter
from course.web.limits import ConnectionLimits, WaitingConnections, evict_one

REPO = Path(__file__).resolve().parent.parent
SECRET = "s3cret-for-tests-only-0123456789"
CSV = "email,first_name,timezone\nann@example.com,Ann,UTC\n"
MAX_CONNECTIONS = 50
REQUEST_SECONDS = 2.0


@dataclass
class Site:
    project: Path
    port: int
    process: subprocess.Popen[bytes]
    stderr: Path
    link: str

    @property
    def path(self) -> str:
        return "/" + self.link.split("/", 3)[3]

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    project = tmp_path_factory.mktemp("limits")
    for name in ("templates", "examples"):
        shutil.copytree(REPO / name, project / name)
    port = free_port()
    (project / "examples" / "subscribers.csv").write_text(CSV)
    (project / "schedule.yaml").write_text(
        (REPO / "schedule.yaml")
        .read_text()
        .replace("http://127.0.0.1:8026", f"http://127.0.0.1:{port}")
        .replace(
            "unsubscribe:\n",
            f"unsubscribe:\n  max_connections: {MAX_CONNECTIONS}\n"
            f"  request_seconds: {REQUEST_SECONDS}\n",
        )
    )
    env = {"COURSE_SECRET": SECRET}
    sent = run_course(project, "send", "--now", "2026-03-02T12:00:00+00:00", env=env)
    assert sent.returncode == 0, sent.stderr
    (message,) = (project / "state" / "inbox" / "new").iterdir()
    header = next(
        line for line in message.read_text().splitlines() if line.startswith("List-Unsubscribe:")
    )
    stderr = project / "serve.stderr"
    with stderr.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "course.cli", "serve", "--port", str(port)],
            cwd=project,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=sink,
        )
    try:
        assert process.stdout is not None
        assert b"Unsubscribe endpoints on" in process.stdout.readline()
        yield Site(project, port, process, stderr, header.split("<", 1)[1].split(">", 1)[0])
    finally:
        process.terminate()
        process.wait(timeout=10)


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closes `sock` (reading and discarding), None if it did not."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < seconds:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - started
    return None


def test_keep_alive_requests_still_work(site: Site) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{site.port}") as client:
        for _ in range(3):
            assert client.get(site.path).status_code == 200
            time.sleep(0.3)


def test_a_connection_that_sends_nothing_is_closed_at_the_deadline(site: Site) -> None:
    with site.connect() as sock:
        waited = closed_within(sock, REQUEST_SECONDS + 5)
    assert waited is not None
    assert REQUEST_SECONDS - 0.5 < waited < REQUEST_SECONDS + 2


def test_a_request_trickled_a_byte_at_a_time_is_cut_off(site: Site) -> None:
    request = f"GET {site.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "X-Pad: 1\r\n" * 50
    started = time.monotonic()
    with site.connect() as sock:
        try:
            for byte in request.encode():
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
                if time.monotonic() - started > REQUEST_SECONDS + 5:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert closed_within(sock, 5) is not None
    assert time.monotonic() - started < REQUEST_SECONDS + 3


def test_idle_connections_cannot_starve_a_real_request(site: Site) -> None:
    idle = [site.connect() for _ in range(6 * MAX_CONNECTIONS)]
    try:
        time.sleep(0.5)  # idle long enough to give way (a fresh connection is left alone)
        started = time.monotonic()
        response = httpx.get(site.link, timeout=5)
        assert response.status_code == 200
        assert time.monotonic() - started < 1.0
        # The server keeps at most its cap: the oldest idle connections were let go.
        dropped = sum(closed_within(sock, 0.01) is not None for sock in idle)
        assert dropped >= len(idle) - MAX_CONNECTIONS
    finally:
        for sock in idle:
            sock.close()


def test_an_oversized_body_is_refused_without_being_read(site: Site) -> None:
    chunk = b"x" * (1 << 20)
    for declared in (True, False):
        with site.connect() as sock:
            head = f"POST {site.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            head += "Content-Type: application/x-www-form-urlencoded\r\n"
            head += (
                "Content-Length: 314572800\r\n" if declared else "Transfer-Encoding: chunked\r\n"
            )
            sock.sendall(head.encode() + b"\r\n")
            sent = 0
            try:
                while sent < 300 * len(chunk):
                    sock.sendall(chunk if declared else b"100000\r\n" + chunk + b"\r\n")
                    sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            sock.settimeout(5)
            try:
                answer = sock.recv(4096)
            except ConnectionResetError:
                answer = b""
        assert sent < 300 * len(chunk)  # the server stopped reading long before the end
        assert answer == b"" or answer.startswith(b"HTTP/1.1 413 ")
    assert site.peak_rss_mb() < 250
    ann = run_course(site.project, "status", "--subscriber", "ann@example.com")
    assert ann.stdout.startswith("ann@example.com: active")


def test_oversized_headers_are_refused_and_an_endless_header_is_cut_off(site: Site) -> None:
    with site.connect() as sock:
        sock.sendall(f"GET {site.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode())
        sock.sendall(b"X-Pad: " + b"x" * 65536 + b"\r\n\r\n")
        sock.settimeout(5)
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 431 ")
    # One header that never ends: the server stops reading long before 100 MB.
    with site.connect() as sock:
        sock.sendall(f"GET {site.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ".encode())
        chunk, sent = b"x" * (1 << 20), 0
        try:
            while sent < 100 * len(chunk):
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
    assert sent < 100 * len(chunk)
    # Headers of a normal size still work, on the same server.
    padded = httpx.get(site.link, headers={"X-Pad": "y" * 4000}, timeout=5)
    assert padded.status_code == 200


def test_a_flood_of_bad_requests_writes_a_few_log_lines(site: Site) -> None:
    before = site.stderr.stat().st_size
    for _ in range(300):
        with site.connect() as sock:
            sock.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
            closed_within(sock, 2)
    grown = site.stderr.stat().st_size - before
    assert grown < 4000, site.stderr.read_text()[-2000:]


def test_at_the_cap_a_request_waiting_unread_in_the_kernel_is_never_evicted() -> None:
    """In a burst the server accepts connections before it reads them: the oldest waiting
    connection may hold a whole request in the kernel. An idle one goes instead."""

    async def main() -> None:
        class Unread(asyncio.Protocol):
            transport: asyncio.Transport

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                assert isinstance(transport, asyncio.Transport)
                transport.pause_reading()  # what a server busy with a burst amounts to
                self.transport = transport
                accepted.append(self)

        accepted: list[Unread] = []
        server = await asyncio.get_running_loop().create_server(Unread, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        with (
            socket.create_connection(("127.0.0.1", port)) as busy,
            socket.create_connection(("127.0.0.1", port)) as idle,
        ):
            busy.sendall(b"POST /unsubscribe/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            while len(accepted) < 2:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)
            by_port = {p.transport.get_extra_info("peername")[1]: p for p in accepted}
            shared = WaitingConnections(ConnectionLimits(max_connections=2))
            shared.waiting[by_port[busy.getsockname()[1]]] = 0.0  # the oldest
            shared.waiting[by_port[idle.getsockname()[1]]] = 0.1
            assert evict_one(shared, now=10.0)
            assert list(shared.waiting) == [by_port[busy.getsockname()[1]]]
            assert by_port[idle.getsockname()[1]].transport.is_closing()
            assert not evict_one(shared, now=10.0)  # only a request waiting to be read
        server.close()
        await server.wait_closed()

    asyncio.run(main())


def test_repeated_lines_are_let_through_a_few_per_window() -> None:
    now = [0.0]
    keep = RepeatFilter(burst=2, window=10, clock=lambda: now[0])

    def record(message: str, *args: object) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.error", logging.WARNING, __file__, 1, message, args, None)

    passed = [keep.filter(record("refused %s", n)) for n in range(100)]
    assert passed.count(True) == 2
    assert keep.filter(record("another kind"))
    now[0] = 11.0
    summary = record("refused %s", 101)
    assert keep.filter(summary)
    assert "[98 more like this in the last window]" in summary.getMessage()
