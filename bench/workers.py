"""Several workers on one PostgreSQL ledger, against one worker on SQLite, into smtp-sink.

50,000 subscribers are due at once. 1, 2 and 4 worker processes (each a registered worker,
as `course run` is, with its own 4 SMTP connections) deliver them into Postfix's smtp-sink
from a PostgreSQL ledger; the baseline, in the same run, is one worker on a SQLite ledger.
For each run it prints messages/s, each worker's share, duplicates (messages the sink
received beyond one per lesson) and skips (lessons not sent), CPU time per message in the
workers and in the database server, and the time the ledger calls take per batch of 500.
Targets: 0 duplicates and 0 skips; with 2 workers each sends 35-65%; one worker on
PostgreSQL reaches >= 0.7x the SQLite rate.

This machine runs the workers, PostgreSQL and the sink on the same cores, so the wall-clock
rate cannot grow with workers here; the CPU figures say what each part costs.

Needs Postfix's smtp-sink (`bash scripts/bench-deps`) and PostgreSQL 15's binaries (a private
cluster is started in a temp dir on 127.0.0.1 and removed at the end).

    .venv/bin/python bench/workers.py [--subscribers N] [--workers 1,2,4]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from course.config import load_settings
from course.ledger import Ledger
from course.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the private cluster the tests use
from pg_cluster import PostgresCluster  # noqa: E402

WORK = ROOT / "bench" / ".data" / "workers"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BATCH = 500
CONFIG = """
course:
  article: {root}/examples/why-he-pushes-you-away.txt
  templates: {root}/templates
sender:
  from: "Love Connection <hello@example.com>"
  postal_address: "1 Example Street, Springfield"
subscribers: {work}/subscribers.csv
ledger: {ledger}
preview:
  enabled: false
unsubscribe:
  base_url: https://course.example.com
delivery:
  backend: smtp
  smtp:
    host: 127.0.0.1
    port: {port}
    security: none
    max_connections: 4
"""


# --- one worker (a child process) -------------------------------------------------------------


def run_worker(config: Path) -> None:
    """Register as a worker, say "ready", wait for "go", deliver everything due, report."""
    settings = load_settings(config)
    runtime = Runtime.open(settings, clock=lambda: NOW)
    ledger = runtime.ledger
    owner = uuid.uuid4().hex
    real_now = datetime.now(UTC)
    ledger.register_worker(
        owner=owner,
        pid=os.getpid(),
        host=socket.gethostname(),
        now=real_now,
        stale_after=timedelta(minutes=5),
    )
    in_ledger = _time_ledger_calls(ledger)
    print("ready", flush=True)
    sys.stdin.readline()
    cpu, start = time.process_time(), time.perf_counter()
    with ledger.heartbeats(owner=owner, clock=lambda: datetime.now(UTC), every=10):
        report = runtime.tick(NOW)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    ledger.release_worker(owner=owner)
    runtime.close()
    figures = {
        "sent": report.sent,
        "other": report.handled - report.sent,
        "cpu": cpu,
        "wall": wall,
        **{f"ledger_{name}": in_ledger[name] for name in _TIMED},
        "batches": in_ledger["batches"],
    }
    print(json.dumps(figures), flush=True)


_TIMED = ("claim_due", "is_due", "journal", "apply_journal", "release", "lead")


def _time_ledger_calls(ledger: Ledger) -> dict[str, float]:
    """Add up the wall time of each ledger call a tick makes, on this instance."""
    totals = dict.fromkeys(_TIMED, 0.0)
    totals["batches"] = 0.0
    for name in _TIMED:
        method = getattr(ledger, name)

        def timed(
            *args: Any, _method: Callable[..., Any] = method, _name: str = name, **kw: Any
        ) -> Any:
            start = time.perf_counter()
            try:
                return _method(*args, **kw)
            finally:
                totals[_name] += time.perf_counter() - start

        setattr(ledger, name, timed)
    claim = ledger.claim_due

    def counted(*args: Any, **kwargs: Any) -> Any:
        claimed = claim(*args, **kwargs)
        totals["batches"] += bool(claimed)
        return claimed

    ledger.claim_due = counted  # type: ignore[method-assign]
    return totals


# --- the parent -------------------------------------------------------------------------------


@dataclass
class Run:
    label: str
    workers: list[dict[str, float]]
    wall: float
    received: int
    expected: int
    server_cpu: float

    @property
    def sent(self) -> int:
        return int(sum(w["sent"] for w in self.workers))

    @property
    def rate(self) -> float:
        return self.sent / self.wall


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Sink:
    """Postfix's smtp-sink on 127.0.0.1, counting the messages it accepts (-c)."""

    def __init__(self) -> None:
        self.port = free_port()
        binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        self._out = WORK / f"sink-{self.port}.txt"
        self._process = subprocess.Popen(
            [binary, "-c", "-u", "nobody", f"127.0.0.1:{self.port}", "1024"],
            stdout=self._out.open("wb"),
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)

    def messages(self) -> int:
        counts = re.findall(rb"mesg=(\d+)", self._out.read_bytes())
        return int(counts[-1]) if counts else 0

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait()


def write_config(ledger: str, port: int) -> Path:
    config = WORK / f"schedule-{uuid.uuid4().hex[:8]}.yaml"
    config.write_text(CONFIG.format(root=ROOT, work=WORK, ledger=ledger, port=port))
    return config


def import_subscribers(config: Path) -> None:
    settings = load_settings(config)
    runtime = Runtime.open(settings, clock=lambda: NOW)
    try:
        runtime.refresh_subscribers(NOW)
    finally:
        runtime.close()


def deliver(label: str, config: Path, count: int, sink: Sink, server: Callable[[], float]) -> Run:
    """Start `count` workers, let them go at once, and collect their figures."""
    before = sink.messages()
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    for child in children:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            sys.exit(f"{label}: a worker failed to start")
    server_cpu = server()
    start = time.perf_counter()
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    figures = []
    for child in children:
        assert child.stdout is not None
        figures.append(json.loads(child.stdout.readline()))
    wall = time.perf_counter() - start
    server_cpu = server() - server_cpu
    for child in children:
        child.wait()
    time.sleep(0.5)  # the sink counts a message when its session ends
    return Run(label, figures, wall, sink.messages() - before, 0, server_cpu)


def postgres_cpu(cluster: PostgresCluster) -> Callable[[], float]:
    """CPU seconds the database server has used so far: every live server process, plus
    what the postmaster's exited children used (backends, autovacuum workers)."""
    ticks = os.sysconf("SC_CLK_TCK")

    def total() -> float:
        postmaster, *children = cluster.server_pids()
        seconds = 0.0
        for pid in (postmaster, *children):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            used = int(fields[11]) + int(fields[12])  # utime, stime
            if pid == postmaster:
                used += int(fields[13]) + int(fields[14])  # cutime, cstime: reaped children
            seconds += used / ticks
        return seconds

    return total


def no_server() -> float:
    return 0.0


def report(run: Run, subscribers: int, baseline: Run | None) -> None:
    duplicates = run.received - run.sent
    skips = subscribers - run.sent
    shares = ", ".join(f"{w['sent'] / max(run.sent, 1):.0%}" for w in run.workers)
    worker_cpu = sum(w["cpu"] for w in run.workers)
    batches = sum(w["batches"] for w in run.workers) or 1

    def per_batch(*names: str) -> float:
        return 1000 * sum(w[f"ledger_{n}"] for w in run.workers for n in names) / batches

    ledger_ms = per_batch(*_TIMED)
    line = (
        f"{run.label:<24} {run.rate:7,.0f} msg/s  shares {shares:<22} "
        f"dup {duplicates}  skip {skips}  "
        f"CPU/msg worker {1e6 * worker_cpu / max(run.sent, 1):4.0f} us"
    )
    if run.server_cpu:
        line += f" + db {1e6 * run.server_cpu / max(run.sent, 1):3.0f} us"
    if baseline is not None:
        line += f"  ({run.rate / baseline.rate:.2f}x SQLite)"
    print(line, flush=True)
    print(
        f"{'':<24} ledger per batch of {BATCH}: {ledger_ms:.0f} ms (claim "
        f"{per_batch('claim_due', 'is_due'):.0f}, journal {per_batch('journal'):.0f}, "
        f"fold {per_batch('apply_journal'):.0f}, other {per_batch('release', 'lead'):.0f})",
        flush=True,
    )


@contextmanager
def cluster() -> Iterator[PostgresCluster]:
    started = PostgresCluster.start(durable=True)
    try:
        yield started
    finally:
        started.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=50_000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(Path(args.worker))
        return
    # SIGTERM unwinds like an error, so the sink and the cluster are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench/workers.py: terminated"))
    if not (shutil.which("smtp-sink") or Path("/usr/sbin/smtp-sink").exists()):
        sys.exit("bench/workers.py needs Postfix's smtp-sink: run `bash scripts/bench-deps`")
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    with (WORK / "subscribers.csv").open("w", encoding="utf-8") as out:
        out.write("email,first_name,timezone\n")
        for n in range(args.subscribers):
            out.write(f"reader{n}@mail{n % 50}.example.com,Reader {n},Europe/London\n")
    sink = Sink()
    print(
        f"{args.subscribers:,} lessons due, batches of {BATCH}, 4 SMTP connections per worker, "
        f"into smtp-sink; {os.cpu_count()} CPUs shared by workers, database and sink",
        flush=True,
    )
    try:
        sqlite_config = write_config(f"sqlite:///{WORK}/baseline.db", sink.port)
        import_subscribers(sqlite_config)
        baseline = deliver("SQLite, 1 worker", sqlite_config, 1, sink, no_server)
        report(baseline, args.subscribers, None)
        with cluster() as pg:
            template = pg.create_database("template")
            import_subscribers(write_config(pg.url(template), sink.port))
            for count in (int(n) for n in args.workers.split(",")):
                name = f"run_{count}"
                with pg.admin() as admin:
                    admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                config = write_config(pg.url(name), sink.port)
                label = f"PostgreSQL, {count} worker{'s' if count > 1 else ''}"
                run = deliver(label, config, count, sink, postgres_cpu(pg))
                report(run, args.subscribers, baseline)
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
