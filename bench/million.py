"""One million subscribers: first import, an idle tick, and a tick where 1/15 are due.

Each phase runs in its own process so its peak memory is its own. Baselines, measured in
the same run on the same file and machine:
  (a) first import  vs  reading the CSV with the bare csv module (the floor for any import)
  (b) idle tick     vs  hashing the CSV (the floor for "has the CSV changed?")
  (c) busy tick     vs  building the same messages with email.message.EmailMessage
Targets: (a) <= 15 s and <= 256 MB, (b) < 1 s, (c) >= 5,000 complete messages/s.
Phase (c) sends to a backend that checks each message like the memory backend, then counts
and drops it, so its peak is the pipeline's own, not a list of finished messages.

    .venv/bin/python bench/million.py [--subscribers N] [--repeat N]

Each run also gives the import's CPU seconds beside its wall time: on a machine shared with
other work, CPU time moves much less than the wall clock. A large import reads the list in a
helper process while it writes: its CPU time and peak memory count with the importer's.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from course.backends.base import OutgoingMessage, ResultHook, SendResult
from course.backends.base import report as report_results
from course.backends.memory import MemoryBackend
from course.backends.wire import check_batch
from course.build import build_course
from course.config import Settings, load_settings
from course.runtime import Runtime
from course.slots import fill

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".data" / "million"
ZONES = [
    "America/New_York",
    "Europe/London",
    "Asia/Tokyo",
    "Australia/Sydney",
    "UTC",
    "America/Los_Angeles",
    "Europe/Berlin",
    "Pacific/Auckland",
    "Asia/Kolkata",
    "America/Sao_Paulo",
]
T0 = "2026-03-02T09:00:00+00:00"
CONFIG = """
course:
  article: {root}/examples/why-he-pushes-you-away.txt
  templates: {root}/templates
sender:
  from: "Love Connection <hello@example.com>"
  postal_address: "1 Example Street, Springfield"
schedule:
  first_lesson: next_send_time
subscribers: subscribers.csv
ledger: sqlite:///course.db
delivery:
  backend: memory
"""


class CountingBackend(MemoryBackend):
    """The memory backend's checks, then count and discard: nothing piles up."""

    name = "counting"

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def send(
        self, messages: Sequence[OutgoingMessage], on_result: ResultHook | None = None
    ) -> list[SendResult]:
        check_batch(messages)
        self.count += len(messages)
        return report_results([SendResult(message, "sent") for message in messages], on_result)


def generate(path: Path, count: int) -> None:
    """A CSV like a real export: 2,000 domains, mixed time zones, a few extra columns."""
    rng = random.Random(15)
    domains = [f"mail{n}.example.com" for n in range(2000)]
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("email,first_name,timezone,subscribed_at,city\r\n")
        for n in range(count):
            out.write(
                f"reader{n}@{rng.choice(domains)},Reader {n},{rng.choice(ZONES)},,"
                f"City {n % 500}\r\n"
            )


def phase(name: str) -> dict[str, float]:
    """Run one phase in a fresh interpreter; returns its figures and peak RSS."""
    result = subprocess.run(
        [sys.executable, __file__, "--phase", name],
        cwd=WORK,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"phase {name} failed:\n{result.stderr}")
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def peak_mb() -> float:
    """This process's peak RSS plus its largest child's (the list helper a large import
    starts): both are in memory at once."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024


def cpu_seconds() -> float:
    """User and system time of this process, all its threads, and of its finished children
    (the list helper): what a busy machine moves less than the wall clock."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def run_phase(name: str) -> dict[str, float]:
    settings = load_settings(Path("schedule.yaml"))
    now = datetime.fromisoformat(T0)
    if name == "csv-floor":
        return _csv_floor()
    if name == "hash-floor":
        return _hash_floor()
    if name == "naive":
        return _naive_messages(settings)
    runtime = Runtime.open(settings, clock=lambda: now)
    start, cpu = time.perf_counter(), cpu_seconds()
    if name == "import":
        runtime.refresh_subscribers(now)
        return {
            "seconds": time.perf_counter() - start,
            "cpu": cpu_seconds() - cpu,
            "peak_mb": peak_mb(),
        }
    if name == "idle":
        runtime.refresh_subscribers(now)  # this process's first look; the run keeps it
        start = time.perf_counter()
        report = runtime.tick(now)
        return {"seconds": time.perf_counter() - start, "sent": report.sent, "peak_mb": peak_mb()}
    runtime.refresh_subscribers(now)
    runtime.backend = runtime.deliverer.backend = CountingBackend()
    now = _make_one_in_fifteen_due(runtime)
    start = time.perf_counter()
    report = runtime.tick(now)
    elapsed = time.perf_counter() - start
    return {
        "seconds": elapsed,
        "sent": report.sent,
        "rate": report.sent / elapsed,
        "peak_mb": peak_mb(),
    }


def _make_one_in_fifteen_due(runtime: Runtime) -> datetime:
    """Bench set-up: every 15th subscriber due at the earliest due time, the rest later."""

    with sqlite3.connect("course.db") as db:
        first, last = db.execute(
            "SELECT MIN(next_due_at), MAX(next_due_at) FROM subscribers"
        ).fetchone()
        db.execute(
            "UPDATE subscribers SET next_due_at = CASE WHEN id % 15 = 0 THEN ? ELSE ? END",
            (first, last),
        )
    moment = runtime.ledger.next_due_at()
    assert moment is not None
    return moment


def _csv_floor() -> dict[str, float]:
    """Reading every row with the bare csv module, streaming: the floor for any import."""
    start, cpu = time.perf_counter(), cpu_seconds()
    with open("subscribers.csv", encoding="utf-8-sig", newline="") as handle:
        rows = sum(1 for _ in csv.reader(handle))
    return {
        "seconds": time.perf_counter() - start,
        "cpu": cpu_seconds() - cpu,
        "rows": rows,
        "peak_mb": peak_mb(),
    }


def _hash_floor() -> dict[str, float]:

    hashlib.sha256(Path("subscribers.csv").read_bytes()).hexdigest()  # warm the page cache
    start = time.perf_counter()
    hashlib.sha256(Path("subscribers.csv").read_bytes()).hexdigest()
    return {"seconds": time.perf_counter() - start}


def _naive_messages(settings: Settings) -> dict[str, float]:
    """The obvious way: an EmailMessage per recipient, rendered text and HTML attached."""

    build = build_course(settings)
    rendered = build.lesson(3).rendered
    count = 2000
    start = time.perf_counter()
    for n in range(count):
        values = {"first_name": f"Reader {n}", "unsubscribe_url": f"https://example.com/u/{n}"}
        message = EmailMessage(policy=SMTP)
        message["From"] = "Love Connection <hello@example.com>"
        message["To"] = f"Reader {n} <reader{n}@example.com>"
        message["Subject"] = rendered.subject
        message.set_content(fill(rendered.text, rendered.slots, values))
        message.add_alternative(fill(rendered.html, rendered.slots, values), subtype="html")
        message.as_bytes()
    return {"rate": count / (time.perf_counter() - start)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs of all phases, each fresh")
    parser.add_argument("--phase")
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(run_phase(args.phase)))
        return
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    (WORK / "schedule.yaml").write_text(CONFIG.format(root=ROOT))
    generate(WORK / "subscribers.csv", args.subscribers)
    ratios: dict[str, list[float]] = {"(a) wall": [], "(a) cpu": [], "(c)": []}
    for run in range(1, args.repeat + 1):
        if args.repeat > 1:
            print(f"run {run} of {args.repeat}")
        # The manifest beside the ledger too: without it a run refuses to start on a ledger
        # it remembers and cannot find.
        for name in ("course.db", "course.db-wal", "course.db-shm", "manifest.json"):
            (WORK / name).unlink(missing_ok=True)
        for key, ratio in report(args.subscribers).items():
            ratios[key].append(ratio)
    if args.repeat > 1:
        print(
            "spread of the ratios to the same run's baseline: "
            + "; ".join(
                f"{key} {min(values):.1f}x to {max(values):.1f}x (median "
                f"{statistics.median(values):.1f}x)"
                for key, values in ratios.items()
            )
        )


def report(count: int) -> dict[str, float]:
    """One run of every phase, printed; the ratios to their baselines."""
    floor = phase("csv-floor")
    imported = phase("import")
    print(
        f"(a) first import of {count:,}: {imported['seconds']:.1f} s "
        f"({imported['cpu']:.1f} CPU s), peak {imported['peak_mb']:.0f} MB  "
        "(target <= 15 s, <= 256 MB)"
    )
    wall_ratio = imported["seconds"] / floor["seconds"]
    cpu_ratio = imported["cpu"] / floor["cpu"]
    print(
        f"    baseline csv.reader alone (streaming): {floor['seconds']:.1f} s "
        f"({floor['cpu']:.2f} CPU s), peak {floor['peak_mb']:.0f} MB; ratio {wall_ratio:.1f}x "
        f"(CPU {cpu_ratio:.1f}x)"
    )
    hashed, idle = phase("hash-floor"), phase("idle")
    print(
        f"(b) idle tick (nothing due, CSV unchanged): {idle['seconds'] * 1000:.1f} ms, "
        f"{idle['sent']:.0f} sent  (target < 1 s)"
    )
    print(
        f"    baseline sha256 of the CSV: {hashed['seconds'] * 1000:.1f} ms; ratio "
        f"{idle['seconds'] / hashed['seconds']:.2f}x"
    )
    naive, busy = phase("naive"), phase("busy")
    print(
        f"(c) tick with 1/15 due: {busy['sent']:,.0f} messages in {busy['seconds']:.1f} s = "
        f"{busy['rate']:,.0f} messages/s, peak {busy['peak_mb']:.0f} MB  (target >= 5,000/s)"
    )
    busy_ratio = busy["rate"] / naive["rate"]
    print(
        f"    baseline EmailMessage per recipient: {naive['rate']:,.0f} messages/s; ratio "
        f"{busy_ratio:.1f}x"
    )
    return {"(a) wall": wall_ratio, "(a) cpu": cpu_ratio, "(c)": busy_ratio}


if __name__ == "__main__":
    main()
