"""`course serve` under public load while a 20,000-message tick holds the ledger busy.

Load, all at once against one `course serve` on 127.0.0.1:
  - 2,000 concurrent one-click POSTs (RFC 8058), each on its own connection;
  - 5,000 idle connections that never send a byte;
  - 100 slow clients trickling a valid POST a byte at a time;
while `course send` delivers 20,000 lessons over SMTP to Postfix's smtp-sink, so the
ledger's write lock is taken and released thousands of times meanwhile.

Baseline, same run, same server: 2,000 concurrent POSTs with nothing else going on.

Prints failures, p50/p99 latency (and the ratio to the baseline), how many POSTs the
ledger recorded, the server's peak memory and how much it logged.
Targets: 0 lost, p99 < 1 s, peak memory < 400 MB, log < 1 MB.

Everything runs on this machine, so it also prints how the CPUs were shared while the
POSTs were out: the server, this load generator, the tick, and everything else (other
work on the machine). CPU time per POST does not depend on that sharing; latency does.

    .venv/bin/python bench/public_load.py [--subscribers N] [--posts N] [--idle N] [--slow N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from course.config import load_settings
from course.ledger import Ledger, SubscriberStatus
from course.runtime import Runtime
from course.unsubscribe import make_token

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".data" / "public_load"
SECRET = "bench-secret-not-for-production-0123456789"
COURSE_ID = "why-he-pushes-you-away"
NOW = "2026-03-02T09:00:00+00:00"
BODY = b"List-Unsubscribe=One-Click"
CONFIG = """
course:
  article: {root}/examples/why-he-pushes-you-away.txt
  templates: {root}/templates
sender:
  from: "Love Connection <hello@example.com>"
  postal_address: "1 Example Street, Springfield"
subscribers: subscribers.csv
ledger: sqlite:///state/course.db
unsubscribe:
  base_url: https://course.example.com
delivery:
  backend: smtp
  smtp:
    host: 127.0.0.1
    port: {smtp_port}
    security: none
    max_connections: 4
"""
TARGET_P99 = 1.0
TARGET_PEAK_MB = 400
TARGET_LOG_BYTES = 1_000_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def address(n: int) -> str:
    return f"reader{n}@mail{n % 50}.example.com"


def prepare(subscribers: int, smtp_port: int) -> None:
    """The project, its ledger with every subscriber (and their opaque ids), nothing sent."""
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    (WORK / "schedule.yaml").write_text(CONFIG.format(root=ROOT, smtp_port=smtp_port))
    with (WORK / "subscribers.csv").open("w", encoding="utf-8") as out:
        out.write("email,first_name,timezone\n")
        for n in range(subscribers):
            out.write(f"{address(n)},Reader {n},Europe/London\n")
    os.environ["COURSE_SECRET"] = SECRET
    settings = load_settings(WORK / "schedule.yaml")
    now = datetime.fromisoformat(NOW)
    runtime = Runtime.open(settings, clock=lambda: now)
    try:
        runtime.refresh_subscribers(now)
        runtime.ledger.fill_refs(runtime.deliverer.links.ref)
    finally:
        runtime.close()


@contextmanager
def process(args: Sequence[str], *, log: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    sink = log.open("wb") if log else subprocess.DEVNULL
    child = subprocess.Popen(
        list(args), cwd=WORK, stdout=subprocess.PIPE, stderr=sink, env=os.environ.copy()
    )
    try:
        yield child
    finally:
        if child.poll() is None:
            child.terminate()
            child.wait(timeout=30)
        if log:
            assert not isinstance(sink, int)
            sink.close()


def wait_for_port(port: int) -> None:
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on 127.0.0.1:{port}")


def machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine have used so far (every CPU, from /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    # user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait.
    ticks = [int(value) for value in fields[:8]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """This process's CPU time (user + system): the load generator's cost."""
    times = os.times()
    return times.user + times.system


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (a server may run several)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with suppress(OSError):
                queue.extend(int(child) for child in task.read_text().split())
    return found


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU time of a process and its children so far: figures a busy machine
    inflates far less than the wall clock."""
    tick = os.sysconf("SC_CLK_TCK")
    user = system = 0.0
    for each in descendants(pid):
        with suppress(OSError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            user += int(fields[11]) / tick
            system += int(fields[12]) / tick
    return user, system


def cpu_since(pid: int, before: tuple[float, float]) -> tuple[float, float]:
    user, system = cpu_seconds(pid)
    return user - before[0], system - before[1]


@dataclass(frozen=True)
class Sharing:
    """Who had the CPUs: a snapshot of the server's, the load generator's, the tick's and the
    whole machine's CPU time."""

    wall: float
    server: float
    client: float
    tick: float
    machine: float

    @classmethod
    def now(cls, server: int, tick: int | None = None) -> Sharing:
        return cls(
            time.perf_counter(),
            sum(cpu_seconds(server)),
            own_cpu_seconds(),
            sum(cpu_seconds(tick)) if tick is not None else 0.0,
            machine_busy_seconds(),
        )

    def until(self, later: Sharing, posts: int) -> str:
        wall = later.wall - self.wall
        server, client = later.server - self.server, later.client - self.client
        tick = later.tick - self.tick
        busy = later.machine - self.machine
        others = max(0.0, busy - server - client - tick)
        cpus = os.cpu_count() or 1
        return (
            f"{wall:.1f} s x {cpus} CPUs: course serve {server:.1f} s "
            f"({1000 * server / max(1, posts):.2f} ms/POST), load generator {client:.1f} s "
            f"({1000 * client / max(1, posts):.2f} ms/POST), tick {tick:.1f} s, "
            f"everything else {others:.1f} s, idle {max(0.0, cpus * wall - busy):.1f} s"
        )


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- the clients ------------------------------------------------------------------------------

_T = TypeVar("_T")


def run_client(work: Coroutine[Any, Any, _T]) -> _T:
    """Run the load generator on uvloop when it is installed (it is a dependency of course
    serve): the generator shares the server's CPUs, and uvloop halves its cost per POST."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(work)
    return uvloop.run(work)


@dataclass
class Storm:
    """What a burst of POSTs got back."""

    latencies: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    answered: list[int] = field(default_factory=list)  # subscriber numbers answered 200

    def fail(self, why: str) -> None:
        self.failures[why] = self.failures.get(why, 0) + 1

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def request(port: int, n: int) -> bytes:
    token = make_token(SECRET.encode(), COURSE_ID, address(n))
    return (
        f"POST /unsubscribe/{token} HTTP/1.1\r\nHost: course.example.com\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(BODY)}\r\nConnection: close\r\n\r\n"
    ).encode() + BODY


async def one_post(port: int, n: int, data: bytes, storm: Storm, start: asyncio.Event) -> None:
    await start.wait()
    began = time.perf_counter()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
        writer.write(data)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 30)
        writer.close()
    except (OSError, TimeoutError) as exc:
        storm.fail(type(exc).__name__)
        return
    status = answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/1.1 ") else b"no answer"
    if status != b"200":
        storm.fail(f"HTTP {status.decode(errors='replace')}")
        return
    storm.latencies.append(time.perf_counter() - began)
    storm.answered.append(n)


async def posts(port: int, numbers: range) -> Storm:
    storm = Storm()
    start = asyncio.Event()
    # Tokens and requests are made before the clock starts: they are not the server's work.
    tasks = [
        asyncio.create_task(one_post(port, n, request(port, n), storm, start)) for n in numbers
    ]
    await asyncio.sleep(0)
    start.set()
    await asyncio.gather(*tasks)
    return storm


Held = list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]


async def idle_connections(port: int, count: int) -> Held:
    """Connections that never send a byte (the server may close them: that is the point)."""
    opened = []
    for _ in range(count):
        with suppress(OSError):
            opened.append(await asyncio.open_connection("127.0.0.1", port))
    return opened


async def slow_client(port: int, n: int, stop: asyncio.Event) -> str:
    """A valid POST sent one byte every 200 ms; returns how it ended."""
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        return type(exc).__name__
    data = request(port, n)
    try:
        for byte in data:
            if stop.is_set():
                return "stopped"
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.2)
        return "finished"
    except (ConnectionError, OSError):
        return "closed by the server"
    finally:
        writer.close()


async def loaded_storm(
    port: int, numbers: range, idle: int, slow: range, snapshot: Callable[[], Sharing]
) -> tuple[Storm, dict[str, int], int, tuple[Sharing, Sharing]]:
    """The POSTs amid idle and slow clients; also who had the CPUs while the POSTs were out."""
    stop = asyncio.Event()
    slow_tasks = [asyncio.create_task(slow_client(port, n, stop)) for n in slow]
    held = await idle_connections(port, idle)
    before = snapshot()
    storm = await posts(port, numbers)
    after = snapshot()
    await asyncio.sleep(12)  # past the request deadline: the slow clients are cut off
    stop.set()
    endings: dict[str, int] = {}
    for ending in await asyncio.gather(*slow_tasks):
        endings[ending] = endings.get(ending, 0) + 1
    closed = sum(reader.at_eof() for reader, _ in held)
    for _, writer in held:
        writer.close()
    return storm, endings, closed, (before, after)


# --- the run ----------------------------------------------------------------------------------


def recorded(numbers: Sequence[int]) -> int:
    with Ledger.open("sqlite:///state/course.db", base_dir=WORK) as ledger:
        return sum(
            (view := ledger.subscriber(address(n))) is not None
            and view.status == SubscriberStatus.UNSUBSCRIBED
            for n in numbers
        )


def tick_has_started() -> bool:
    with Ledger.open("sqlite:///state/course.db", base_dir=WORK) as ledger:
        return ledger.has_deliveries()


def wait_until_recorded(numbers: Sequence[int], seconds: float) -> int:
    deadline = time.monotonic() + seconds
    count = recorded(numbers)
    while count < len(numbers) and time.monotonic() < deadline:
        time.sleep(0.5)
        count = recorded(numbers)
    return count


def line(label: str, storm: Storm, baseline: Storm | None = None) -> str:
    p50, p99 = storm.percentile(0.50), storm.percentile(0.99)
    ratio = ""
    if baseline is not None and baseline.percentile(0.99):
        ratio = f"  ({p99 / baseline.percentile(0.99):.1f}x the baseline p99)"
    failed = sum(storm.failures.values())
    detail = f" {storm.failures}" if storm.failures else ""
    return (
        f"{label:<28} {len(storm.answered):>5} answered 200, {failed} failed{detail}; "
        f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms{ratio}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=24_000)
    parser.add_argument("--posts", type=int, default=2_000)
    parser.add_argument("--idle", type=int, default=5_000)
    parser.add_argument("--slow", type=int, default=100)
    args = parser.parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    baseline_numbers = range(0, args.posts)
    loaded_numbers = range(args.posts, 2 * args.posts)
    slow_numbers = range(2 * args.posts, 2 * args.posts + args.slow)
    smtp_port, web_port = free_port(), free_port()
    print(f"preparing {args.subscribers:,} subscribers ...", flush=True)
    prepare(args.subscribers, smtp_port)
    course = [sys.executable, "-m", "course.cli"]
    serve_log = WORK / "serve.stderr"
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    with process([*course, "serve", "--port", str(web_port)], log=serve_log) as serve:
        wait_for_port(web_port)
        cpu_before = cpu_seconds(serve.pid)
        base_before = Sharing.now(serve.pid)
        baseline = run_client(posts(web_port, baseline_numbers))
        base_sharing = base_before.until(Sharing.now(serve.pid), args.posts)
        base_cpu = cpu_since(serve.pid, cpu_before)
        base_recorded = wait_until_recorded(baseline_numbers, 30)
        with process([sink, "-u", "nobody", f"127.0.0.1:{smtp_port}", "1024"]):
            wait_for_port(smtp_port)
            tick_started = time.perf_counter()
            with process([*course, "send", "--now", NOW], log=WORK / "send.stderr") as tick:
                while not tick_has_started():
                    if tick.poll() is not None:
                        sys.exit(
                            f"the tick ended before sending: {(WORK / 'send.stderr').read_text()}"
                        )
                    time.sleep(0.2)
                storm_started = time.perf_counter()
                cpu_before = cpu_seconds(serve.pid)
                storm, endings, closed_idle, (out, done) = run_client(
                    loaded_storm(
                        web_port,
                        loaded_numbers,
                        args.idle,
                        slow_numbers,
                        lambda: Sharing.now(serve.pid, tick.pid),
                    )
                )
                posts_done = done.wall
                storm_cpu = cpu_since(serve.pid, cpu_before)
                assert tick.stdout is not None
                summary = tick.stdout.read().decode().strip()
                tick.wait()
            tick_seconds = time.perf_counter() - tick_started
        loaded_recorded = wait_until_recorded(storm.answered, 60)
        slow_recorded = recorded(slow_numbers)
        peak = peak_rss_mb(serve.pid)
    log_bytes = serve_log.stat().st_size
    lost = (len(baseline.answered) - base_recorded) + (len(storm.answered) - loaded_recorded)

    print(f"tick: {summary} in {tick_seconds:.1f} s")
    print(
        f"the POSTs went out {storm_started - tick_started:.1f} s into the tick and were all "
        f"answered {posts_done - tick_started:.1f} s into it (the tick took {tick_seconds:.1f} s)"
    )
    print(line("baseline (quiet server)", baseline))
    print(line("under load", storm, baseline))
    print(
        f"recorded in the ledger: {base_recorded}/{len(baseline.answered)} (baseline), "
        f"{loaded_recorded}/{len(storm.answered)} (under load); lost: {lost}"
    )
    print(
        f"idle connections: {args.idle} opened, {closed_idle} closed by the server; "
        f"slow clients: {endings}, {slow_recorded} of them recorded (expected 0)"
    )
    per_post = [1000 * t / max(1, args.posts) for t in base_cpu]
    print(
        f"course serve CPU, quiet: {per_post[0]:.2f} ms user + {per_post[1]:.2f} ms system per "
        f"POST; the loaded storm (POSTs, idle and slow clients): {storm_cpu[0]:.1f} s user + "
        f"{storm_cpu[1]:.1f} s system"
    )
    print(f"while the baseline POSTs were out: {base_sharing}")
    print(f"while the loaded POSTs were out: {out.until(done, args.posts)}")
    print(f"course serve: peak memory {peak:.0f} MB, log {log_bytes:,} bytes")
    print(f"machine load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    verdicts = {
        "0 lost": lost == 0 and not storm.failures and not baseline.failures,
        f"p99 < {TARGET_P99:g} s": storm.percentile(0.99) < TARGET_P99,
        f"peak memory < {TARGET_PEAK_MB} MB": peak < TARGET_PEAK_MB,
        "log < 1 MB": log_bytes < TARGET_LOG_BYTES,
    }
    print("targets: " + ", ".join(f"{k}: {'ok' if ok else 'MISSED'}" for k, ok in verdicts.items()))
    return 0 if all(verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
