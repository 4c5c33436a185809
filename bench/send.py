"""The whole send pipeline over SMTP, against Postfix's tools and a real Postfix, with baselines.

Pipeline: N subscribers due at once; one tick plans (ledger query), claims, personalises,
builds each message and sends it over SMTP, recording every acceptance. Each pipeline
figure also gives messages per CPU second of this process, which holds still when other
work on a shared machine slows the wall clock.

Part 1, against Postfix's smtp-sink (a C sink that answers at once), plaintext:
  - the pipeline over C connections;
  - baseline smtp-source (Postfix's C load generator: the practical limit here), same
    sink, message size and connections: target >= 0.6x;
  - baseline naive Python (an EmailMessage per recipient + smtplib, one message at a
    time per connection): target >= 10x;
  - the pipeline with every message DKIM-signed (rsa-sha256 with a 2048-bit key,
    ed25519-sha256, both), next to the unsigned run: targets >= 1,000 messages/s with
    rsa-sha256 and >= 3,000 with ed25519-sha256. The unsigned and signed pipelines take
    turns for a few rounds, each keeping its best.

Part 2, against a real Postfix smtpd started here (tests/postfix_server.py: private
config, self-signed CA passed to the pipeline as ca_file, messages discarded once
queued), all on one listener:
  - the pipeline in plaintext over 1 connection (the baseline for TLS);
  - the pipeline over STARTTLS, 1 connection: target >= 0.7x plaintext on 1 connection;
  - the pipeline over STARTTLS, C connections: target >= 0.6x smtp-source;
  - baseline smtp-source over C sessions, same listener and size. PLAINTEXT: smtp-source
    has no STARTTLS client, so our TLS is measured against C code doing no TLS at all.
These take turns for a few rounds and each keeps its best, as other work on a shared
machine only ever slows a run down.

Another run is one more entry in `sink_runs()` or `postfix_runs()`.

Needs Debian's postfix (`bash scripts/bench-deps` installs it unconfigured, nothing
started); part 2 needs root, as Postfix's master does. Everything binds 127.0.0.1.

    .venv/bin/python bench/send.py [--subscribers N] [--postfix-messages M] [--rounds R]
                                   [--connections C]
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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import yaml

from course.build import build_course
from course.config import DkimAlgorithm, load_settings
from course.dkim import generate_key, private_pem
from course.runtime import Runtime
from course.slots import fill

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".data" / "send"
NAIVE_MESSAGES = 2000
sys.path.insert(0, str(ROOT / "tests"))  # the Postfix harness the tests use

from postfix_server import Listener, postfix_server, unavailable  # noqa: E402

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
"""
DKIM_RUNS: dict[str, tuple[DkimAlgorithm, ...]] = {
    "rsa-sha256": (DkimAlgorithm.RSA_SHA256,),
    "ed25519-sha256": (DkimAlgorithm.ED25519_SHA256,),
    "both (double signing)": (DkimAlgorithm.RSA_SHA256, DkimAlgorithm.ED25519_SHA256),
}
DKIM_TARGETS = {"rsa-sha256": 1000, "ed25519-sha256": 3000}
SMTP_SOURCE_PLAIN = "smtp-source (C), PLAINTEXT"


@dataclass(frozen=True)
class Figure:
    """One measured rate, and how it compares with its baseline and target."""

    name: str
    rate: float
    per_cpu: float = 0.0  # messages per CPU second of this process (0: not measured)
    baseline: Figure | None = None
    ratio_target: float = 0.0  # >= this times the baseline's rate
    rate_target: float = 0.0  # >= this many messages/s

    def line(self) -> str:
        text = f"  {self.name:<44} {self.rate:>8,.0f} messages/s"
        if self.per_cpu:
            text += f" ({self.per_cpu:,.0f} per CPU s)"
        if self.baseline is not None:
            ratio = self.rate / self.baseline.rate
            text += f"; {ratio:.2f}x {self.baseline.name}"
            if self.ratio_target:
                text += f" (target >= {self.ratio_target}x: {_verdict(ratio, self.ratio_target)})"
        if self.rate_target:
            verdict = _verdict(self.rate, self.rate_target)
            text += f"; target >= {self.rate_target:,.0f}/s: {verdict}"
        return text


def _verdict(value: float, target: float) -> str:
    return "ok" if value >= target else "BELOW TARGET"


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


def prepare(
    name: str, count: int, smtp: Mapping[str, Any], dkim: Sequence[DkimAlgorithm] = ()
) -> Path:
    """A fresh project for one run: delivery.smtp options, DKIM keys, N subscribers."""
    folder = WORK / "".join(c if c.isalnum() else "-" for c in name)
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "state").mkdir(parents=True)
    config = yaml.safe_load(CONFIG.format(root=ROOT))
    config["delivery"]["smtp"] = {"host": "127.0.0.1", **smtp}
    signing = []
    for algorithm in dkim:
        selector = algorithm.split("-")[0]
        key = folder / "state" / f"dkim-{selector}.key"
        key.write_bytes(private_pem(generate_key(algorithm)))
        key.chmod(0o600)
        signing.append({"selector": selector, "algorithm": str(algorithm)})
    if signing:
        config["sender"]["dkim"] = signing
    (folder / "schedule.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with (folder / "subscribers.csv").open("w", encoding="utf-8") as out:
        out.write("email,first_name,timezone\n")
        for n in range(count):
            # example.com: a domain the bench Postfix takes mail for.
            out.write(f"reader{n}@example.com,Reader {n},Europe/London\n")
    return folder


def pipeline(folder: Path) -> tuple[float, int, int, float]:
    """(messages/s, messages, message size, messages per CPU second of this process) of
    one tick that sends everything due (the server runs in its own processes)."""
    settings = load_settings(folder / "schedule.yaml")
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
    """Postfix's C load generator, plaintext, one reused connection per session."""
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
            "-M",
            "bench.example.com",
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


def naive(folder: Path, port: int, connections: int) -> float:
    """EmailMessage + smtplib.send_message, one message at a time on each connection."""
    settings = load_settings(folder / "schedule.yaml")
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


def sink_runs(count: int, connections: int, repeat: int) -> list[Figure]:
    """Part 1: the pipeline, its two baselines, and DKIM signing, on smtp-sink.

    The unsigned and signed pipelines take turns for `repeat` rounds and each keeps its
    best, as in part 2, so the DKIM ratios compare runs that met the same machine.
    """
    port = free_port()
    smtp = {"port": port, "security": "none", "max_connections": connections}
    ours = f"pipeline, {connections} connections"
    best: dict[str, tuple[float, float]] = {}  # name -> (messages/s, per CPU second)

    def run(name: str, algorithms: Sequence[DkimAlgorithm] = ()) -> tuple[Path, int, int]:
        folder = prepare(f"sink-{name}", count, smtp, algorithms)
        with smtp_sink(port):
            rate, sent, size, per_cpu = pipeline(folder)
        if rate > best.get(name, (0.0, 0.0))[0]:
            best[name] = (rate, per_cpu)
        return folder, sent, size

    folder, sent, size = run(ours)
    with smtp_sink(port):
        source = Figure("smtp-source (C)", smtp_source(port, sent, size, connections))
        simple = Figure("naive Python", naive(folder, port, connections))
    for round_number in range(repeat):
        if round_number:
            run(ours)
        for name, algorithms in DKIM_RUNS.items():
            run(name, algorithms)
    print(
        f"smtp-sink, plaintext: {sent:,} messages of {size:,} bytes per run; "
        f"pipelines best of {repeat} rounds"
    )
    unsigned = Figure(ours, *best[ours])
    figures = [
        source,
        simple,
        Figure(ours, *best[ours], source, 0.6),
        Figure(ours, *best[ours], simple, 10),
    ]
    for name in DKIM_RUNS:
        target = DKIM_TARGETS.get(name, 0)
        figures.append(Figure(f"DKIM {name}", *best[name], unsigned, 0, target))
    return figures


@dataclass(frozen=True)
class PostfixRun:
    """One pipeline run against the bench Postfix listener."""

    name: str
    smtp: Mapping[str, Any]  # delivery.smtp options besides host and port
    baseline: str = ""  # the name of an earlier figure of the same part
    target: float = 0.0


def postfix_runs(ca_file: Path, connections: int) -> list[PostfixRun]:
    tls = {"security": "starttls", "ca_file": str(ca_file)}
    plain_1 = "pipeline, plaintext, 1 connection"
    return [
        PostfixRun(plain_1, {"security": "none", "max_connections": 1}),
        PostfixRun("pipeline, STARTTLS, 1 connection", {**tls, "max_connections": 1}, plain_1, 0.7),
        PostfixRun(
            f"pipeline, STARTTLS, {connections} connections",
            {**tls, "max_connections": connections},
            SMTP_SOURCE_PLAIN,
            0.6,
        ),
    ]


def postfix_part(count: int, connections: int, repeat: int) -> list[Figure]:
    """Part 2: the pipeline over plaintext and STARTTLS, and smtp-source, on one listener.

    The runs take turns, `repeat` rounds, and each keeps its best round: on a shared
    machine the other work only ever slows a run down, and taking turns spreads it evenly.
    """
    best: dict[str, tuple[float, float]] = {}  # name -> (messages/s, per CPU second)
    size = 0

    def keep(name: str, rate: float, per_cpu: float = 0.0) -> None:
        if rate > best.get(name, (0.0, 0.0))[0]:
            best[name] = (rate, per_cpu)

    with postfix_server([Listener("bench")], deliver="discard") as postfix:
        port = postfix.port("bench")
        runs = postfix_runs(postfix.ca_file, connections)
        for _ in range(repeat):
            for run in runs:
                folder = prepare(run.name, count, {"port": port, **run.smtp})
                if run.baseline == SMTP_SOURCE_PLAIN:
                    keep(run.baseline, smtp_source(port, count, size, connections))
                rate, _, size, per_cpu = pipeline(folder)
                keep(run.name, rate, per_cpu)
        problems = postfix.client_problems()
    print(
        f"Postfix smtpd: {count:,} messages of {size:,} bytes per run, discarded once queued; "
        f"best of {repeat} rounds"
    )
    if problems:
        print("  Postfix complained about the client:", *problems[:5], sep="\n    ")
    figures: dict[str, Figure] = {}
    for run in runs:
        if run.baseline == SMTP_SOURCE_PLAIN:
            figures[run.baseline] = Figure(run.baseline, best[run.baseline][0])
        rate, per_cpu = best[run.name]
        baseline = figures.get(run.baseline)
        figures[run.name] = Figure(run.name, rate, per_cpu, baseline, run.target)
    return list(figures.values())


def main() -> None:
    if not (shutil.which("smtp-sink") or Path("/usr/sbin/smtp-sink").exists()):
        sys.exit(
            "bench/send.py needs Postfix's smtp-sink, smtp-source and smtpd: run "
            "`bash scripts/bench-deps` (installs Debian's postfix without starting it)"
        )
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--postfix-messages", type=int, default=3_000)
    parser.add_argument("--rounds", type=int, default=3, help="runs take turns, best kept")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--only", choices=("sink", "postfix"), help="run one part")
    args = parser.parse_args()
    if args.only != "postfix":
        for figure in sink_runs(args.subscribers, args.connections, args.rounds):
            print(figure.line())
    if args.only == "sink":
        return
    reason = unavailable()
    if reason is not None:
        print(f"Postfix part skipped: {reason}")
        return
    for figure in postfix_part(args.postfix_messages, args.connections, args.rounds):
        print(figure.line())


if __name__ == "__main__":
    main()
