"""The whole send pipeline against a fast local SMTP sink, with two baselines.

Pipeline: 20,000 subscribers due at once; one tick plans (ledger query), claims,
personalises, builds each message and sends it over SMTP, recording every acceptance.
Baselines, on the same sink, message size and number of connections:
  - Postfix's smtp-source, the C reference load generator (the practical limit here);
  - a naive Python sender: an email.message.EmailMessage per recipient + smtplib,
    one message at a time per connection.
Targets: >= 0.6x smtp-source and >= 10x the naive sender.

Then the same pipeline with every message DKIM-signed (rsa-sha256 with a 2048-bit key,
ed25519-sha256, and both: double signing), next to the unsigned run above.
Targets: >= 1,000 messages/s with rsa-sha256 and >= 3,000 with ed25519-sha256.

Needs Postfix's smtp-sink and smtp-source (Debian package `postfix`); only those two
binaries are used, the Postfix daemon is never started. Everything binds 127.0.0.1.

    .venv/bin/python bench/send.py [--subscribers N] [--connections C]
"""

from __future__ import annotations

import argparse
import shutil
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from course.build import build_course
from course.config import DkimAlgorithm, load_settings
from course.dkim import generate_key, private_pem
from course.runtime import Runtime
from course.slots import fill

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".data" / "send"
NAIVE_MESSAGES = 2000
CONFIG = """
course:
  article: {root}/examples/why-he-pushes-you-away.txt
  templates: {root}/templates
sender:
  from: "Love Connection <hello@example.com>"
  postal_address: "1 Example Street, Springfield"
subscribers: subscribers.csv
ledger: sqlite:///course.db
unsubscribe:
  base_url: https://course.example.com
delivery:
  backend: smtp
  smtp:
    host: 127.0.0.1
    port: {port}
    security: none
    max_connections: {connections}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def smtp_sink(port: int) -> Iterator[None]:
    """Postfix's smtp-sink on 127.0.0.1, stopped on exit."""
    binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    sink = subprocess.Popen(
        [binary, "-u", "nobody", f"127.0.0.1:{port}", "1024"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield
    finally:
        sink.terminate()
        sink.wait()


DKIM_RUNS: dict[str, tuple[DkimAlgorithm, ...]] = {
    "rsa-sha256": (DkimAlgorithm.RSA_SHA256,),
    "ed25519-sha256": (DkimAlgorithm.ED25519_SHA256,),
    "both (double signing)": (DkimAlgorithm.RSA_SHA256, DkimAlgorithm.ED25519_SHA256),
}
DKIM_TARGETS = {"rsa-sha256": 1000, "ed25519-sha256": 3000}


def prepare(count: int, port: int, connections: int, dkim: tuple[DkimAlgorithm, ...] = ()) -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    config = CONFIG.format(root=ROOT, port=port, connections=connections)
    if dkim:
        (WORK / "state").mkdir()
        keys = []
        for algorithm in dkim:
            selector = algorithm.split("-")[0]
            key = WORK / "state" / f"dkim-{selector}.key"
            key.write_bytes(private_pem(generate_key(algorithm)))
            key.chmod(0o600)
            keys.append(f"    - {{selector: {selector}, algorithm: {algorithm}}}")
        signing = "  dkim:\n" + "\n".join(keys) + "\n"
        config = config.replace("sender:\n", "sender:\n" + signing, 1)
    (WORK / "schedule.yaml").write_text(config)
    with (WORK / "subscribers.csv").open("w", encoding="utf-8") as out:
        out.write("email,first_name,timezone\n")
        for n in range(count):
            out.write(f"reader{n}@mail{n % 50}.example.com,Reader {n},Europe/London\n")


def pipeline() -> tuple[float, int, int, float]:
    """(messages/s, messages, average size, messages per CPU second of this process) of
    one tick that sends everything due. The CPU figure holds still when other work on the
    machine slows the wall clock; the sink runs in its own process."""
    settings = load_settings(WORK / "schedule.yaml")
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    runtime = Runtime.open(settings, clock=lambda: now)
    try:
        runtime.refresh_subscribers(now)  # the import is bench/million.py's business
        size = len(runtime.deliverer.message(runtime.ledger.due(now, limit=1)[0], now).data)
        start, cpu = time.perf_counter(), time.process_time()
        report = runtime.tick(now)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        runtime.close()
    if report.stopped_by is not None or report.sent == 0:
        sys.exit(f"pipeline failed: {report.summary()} {report.stopped_by}")
    return report.sent / elapsed, report.sent, size, report.sent / cpu


def smtp_source(port: int, count: int, size: int, connections: int) -> float:
    binary = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    start = time.perf_counter()
    subprocess.run(
        [
            binary,
            "-d",
            "-s",
            str(connections),
            "-m",
            str(count),
            "-l",
            str(size),
            "-f",
            "hello@example.com",
            "-t",
            "reader@example.com",
            f"127.0.0.1:{port}",
        ],
        check=True,
        capture_output=True,
    )
    return count / (time.perf_counter() - start)


def naive(port: int, connections: int) -> float:
    """EmailMessage + smtplib.send_message, one message at a time on each connection."""
    settings = load_settings(WORK / "schedule.yaml")
    rendered = build_course(settings).lesson(1).rendered
    per_connection = NAIVE_MESSAGES // connections

    def worker(offset: int) -> None:
        with smtplib.SMTP("127.0.0.1", port) as client:
            for n in range(offset, offset + per_connection):
                values = {"first_name": f"Reader {n}", "unsubscribe_url": f"https://e.com/u/{n}"}
                message = EmailMessage(policy=SMTP)
                message["From"] = "Love Connection <hello@example.com>"
                message["To"] = f"Reader {n} <reader{n}@example.com>"
                message["Subject"] = rendered.subject
                message.set_content(fill(rendered.text, rendered.slots, values))
                message.add_alternative(fill(rendered.html, rendered.slots, values), subtype="html")
                client.send_message(message)

    threads = [
        threading.Thread(target=worker, args=(i * per_connection,)) for i in range(connections)
    ]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return per_connection * connections / (time.perf_counter() - start)


def main() -> None:
    if not (shutil.which("smtp-sink") or Path("/usr/sbin/smtp-sink").exists()):
        sys.exit(
            "bench/send.py needs Postfix's smtp-sink and smtp-source: run "
            "`bash scripts/bench-deps` (installs Debian's postfix without starting it)"
        )
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    port = free_port()
    prepare(args.subscribers, port, args.connections)
    with smtp_sink(port):
        rate, sent, size, per_cpu = pipeline()
        reference = smtp_source(port, sent, size, args.connections)
        simple = naive(port, args.connections)
    print(
        f"pipeline (plan, personalise, build, SMTP, record): {sent:,} messages of "
        f"{size:,} bytes over {args.connections} connections: {rate:,.0f} messages/s "
        f"({per_cpu:,.0f} per CPU second)"
    )
    print(
        f"baseline smtp-source (C):  {reference:,.0f} messages/s; ratio "
        f"{rate / reference:.2f}x (target >= 0.6x)"
    )
    print(
        f"baseline naive Python:     {simple:,.0f} messages/s; ratio "
        f"{rate / simple:.1f}x (target >= 10x)"
    )
    print("DKIM, every message signed (baseline: the unsigned pipeline above)")
    for name, algorithms in DKIM_RUNS.items():
        prepare(args.subscribers, port, args.connections, algorithms)
        with smtp_sink(port):
            signed, count, signed_size, signed_cpu = pipeline()
        target = DKIM_TARGETS.get(name)
        goal = f"; target >= {target:,}" if target else ""
        print(
            f"  {name + ':':<24} {signed:,.0f} messages/s ({count:,} of {signed_size:,} "
            f"bytes); {signed / rate:.2f}x unsigned{goal}; {signed_cpu:,.0f} per CPU "
            f"second, {signed_cpu / per_cpu:.2f}x unsigned"
        )


if __name__ == "__main__":
    main()
