"""`course subscribers`, `send`, `run`, `simulate` and `status`."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shutil
import socket
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from course.arguments import day_count, path_argument, positive_int
from course.backends.recording import RecordingBackend
from course.build import build_course
from course.commands.interrupt import sigterm_as_interrupt
from course.commands.optout import public_app, public_limits
from course.config import Settings
from course.delivery import TickReport
from course.errors import CourseError
from course.ledger import DeliveryOutcome, DeliveryState, DueLesson, Ledger
from course.logs import log_to_stderr
from course.progress import Progress
from course.runtime import Runtime
from course.sandbox import (
    FOLDER,
    LEDGER_FILE,
    prepare_sandbox,
    sandbox_folder,
    sandbox_settings,
)
from course.scheduler import TickScheduler
from course.state import LINKS_SIGNED_WITH_META, secret_fingerprint
from course.subscribers import open_list
from course.subscribers.report import print_report
from course.suppress import SuppressionLog
from course.tables import print_table
from course.testsend import recipient_as, send_test
from course.timeformat import local_time
from course.timeparse import parse_moment
from course.unsubscribe import SECRET_FILE
from course.web.preview import start_preview
from course.web.server import serve_in_background

LOG = logging.getLogger("course")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub = commands.add_parser(
        "subscribers", help="read the list: the tool, the mapping, and every row not mailed"
    )
    sub.add_argument(
        "--report",
        metavar="FILE",
        type=path_argument,
        help="also write every row note to FILE as CSV",
    )
    sub.set_defaults(handler=cmd_subscribers)
    send = commands.add_parser("send", help="run one delivery tick now (or at --now)")
    send.add_argument(
        "--now", metavar="ISO", help="ISO 8601 time to tick at (default: the real clock)"
    )
    send.add_argument(
        "--dry-run", action="store_true", help="show what would go out; change nothing"
    )
    send.set_defaults(handler=cmd_send)
    run = commands.add_parser("run", help="the scheduler: deliver due lessons every tick")
    run.set_defaults(handler=cmd_run)
    sim = commands.add_parser("simulate", help="deliver N days on a virtual clock, in seconds")
    sim.add_argument(
        "--days", type=day_count, required=True, metavar="N", help="how many days to simulate"
    )
    sim.add_argument("--start", metavar="ISO", help="ISO 8601 start (default: now)")
    where = sim.add_mutually_exclusive_group()
    where.add_argument(
        "--fresh",
        action="store_true",
        help="start the sandbox from an empty ledger, not a copy of the real one",
    )
    where.add_argument(
        "--in-place",
        action="store_true",
        help="simulate on the real ledger and into the configured backend (changes them!)",
    )
    sim.set_defaults(handler=cmd_simulate)
    test = commands.add_parser(
        "send-test", help="send one lesson to one address (not recorded in the ledger)"
    )
    test.add_argument("--day", type=positive_int, required=True, metavar="N", help="which lesson")
    test.add_argument("--to", required=True, metavar="ADDRESS", help="where to send it")
    test.add_argument(
        "--as",
        dest="as_email",
        metavar="EMAIL",
        help="personalise as this CSV subscriber (default: a sample subscriber)",
    )
    test.set_defaults(handler=cmd_send_test)


def cmd_subscribers(args: argparse.Namespace, settings: Settings) -> int:
    list_import = open_list(settings.subscribers, settings.list_import)
    print_report(list_import, print, csv_path=args.report)
    if args.report is not None:
        print(f"report: {args.report}")
    return 0


def _now(args: argparse.Namespace, option: str, settings: Settings) -> datetime:
    value = getattr(args, option.lstrip("-").replace("-", "_"))
    if value is None:
        return datetime.now(UTC)
    return parse_moment(value, option=option, default_timezone=settings.schedule.timezone)


def cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    now = _now(args, "--now", settings)
    if args.dry_run:
        return _dry_run(settings, now)
    log_to_stderr()
    with _runner(settings, clock=lambda: now) as (runtime, worker):
        report = _tick_with_progress(runtime, now, "sending", worker.lost)
    print(f"{local_time(now, settings.schedule.timezone)}: {report.summary()}")
    return 0


def _dry_run(settings: Settings, now: datetime) -> int:
    """The tick at `now` on a rehearsal of the ledger, into a backend that only records.

    Nothing is sent or changed: no server or password is needed, the real ledger is copied
    (SQLite, with the backup API) or used inside a transaction that is rolled back, and the
    CSV is read as a real tick would read it.
    """
    recorder = RecordingBackend()
    seen: list[tuple[DueLesson, DeliveryOutcome]] = []
    zone = settings.schedule.timezone
    with (
        tempfile.TemporaryDirectory(prefix="course-dry-run-") as scratch,
        Ledger.rehearsal(
            settings.ledger, base_dir=settings.base_dir, scratch=Path(scratch)
        ) as ledger,
    ):
        runtime = Runtime.open(
            settings,
            clock=lambda: now,
            ledger=ledger,
            backend=recorder,
            environ=_rehearsal_environ(settings),
            # It reads what the log holds; what it would add (a list sync logs who the
            # list says left) goes into the scratch copy.
            suppressions=copy_log(SuppressionLog.in_project(settings.base_dir), Path(scratch)),
        )
        runtime.deliverer.watch = seen.extend
        try:
            runtime.tick(now)
        finally:
            runtime.close()
    going = sorted(seen, key=lambda pair: (pair[0].day, pair[0].email))
    sent = sum(1 for _, outcome in going if outcome.state == DeliveryState.SENT)
    failed = len(going) - sent
    print(
        f"dry run at {local_time(now, zone)}: {sent} would be sent"
        + (f", {failed} would fail" if failed else "")
        + "; nothing was sent or recorded"
    )
    if going:
        print()
        print_table(
            ("recipient", "day", "would be"),
            [(lesson.email, str(lesson.day), _would(outcome)) for lesson, outcome in going],
        )
    return 0


def copy_log(log: SuppressionLog, folder: Path) -> SuppressionLog:
    """A copy of the suppression log in `folder`: read as the real one is, written apart."""
    copy = SuppressionLog(folder / "suppressions.log")
    if log.path.exists():
        shutil.copyfile(log.path, copy.path)
    return copy


def _would(outcome: DeliveryOutcome) -> str:
    return str(outcome.state) + (f": {outcome.reply}" if outcome.reply else "")


def _rehearsal_environ(settings: Settings) -> dict[str, str]:
    """The environment, with a throwaway unsubscribe secret if the real one does not exist
    yet: a dry run must not create state/unsubscribe.secret (links in it go nowhere)."""
    environ = dict(os.environ)
    secret_env = settings.unsubscribe.secret_env
    if not environ.get(secret_env) and not (settings.base_dir / SECRET_FILE).exists():
        environ[secret_env] = secrets.token_urlsafe(32)
    return environ


@dataclass(frozen=True)
class _Worker:
    """This process as a worker on the ledger: its id, and whether it has been taken over."""

    owner: str
    lost: Callable[[], bool]


@contextmanager
def _runner(
    settings: Settings,
    clock: Callable[[], datetime],
    environ: Mapping[str, str] = os.environ,
    suppressions: SuppressionLog | None = None,
) -> Iterator[tuple[Runtime, _Worker]]:
    """An open runtime registered as a worker on the ledger, its heartbeat kept fresh from a
    thread (so a long tick, `send` or `simulate` never looks dead), with the claims of dead
    workers recovered. On SQLite a second live worker is refused (the single-writer lease)."""
    runtime = Runtime.open(settings, clock=clock, environ=environ, suppressions=suppressions)
    owner = uuid.uuid4().hex
    stale = timedelta(seconds=max(300, 3 * settings.schedule.tick_seconds))
    ledger = runtime.ledger
    registered = False
    try:
        # Liveness is judged on the real clock, whatever instant the tick is run at.
        ledger.register_worker(
            owner=owner,
            pid=os.getpid(),
            host=socket.gethostname(),
            now=_real_now(),
            stale_after=stale,
        )
        registered = True
        _same_secret_as_the_other_workers(settings, runtime)
        _recover(ledger, clock())
        every = min(settings.schedule.tick_seconds, stale.total_seconds() / 5)
        with ledger.heartbeats(owner=owner, clock=_real_now, every=every) as lost:
            yield runtime, _Worker(owner, lost)
    finally:
        try:
            if registered:
                ledger.release_worker(owner=owner)
        finally:
            runtime.close()


def _same_secret_as_the_other_workers(settings: Settings, runtime: Runtime) -> None:
    """Refuse to work beside workers that sign unsubscribe links with another secret.

    Links one worker makes must verify wherever `course serve` runs. The ledger keeps the
    fingerprint (not the secret) of the secret in use; the first worker on an idle ledger
    sets it, so a secret changed on purpose (every worker stopped, then restarted with the
    new one) is taken. (A host new to a ledger that has sent mail is checked against it
    before it starts: course.state.)
    """
    ledger = runtime.ledger
    fingerprint = secret_fingerprint(runtime.deliverer.links.secret)
    others = [w for w in ledger.workers(_real_now()) if w.alive and w.owner != ledger.owner]
    stored = ledger.meta(LINKS_SIGNED_WITH_META)
    if others and stored not in (None, fingerprint):
        raise CourseError(
            f"{settings.source}: unsubscribe.secret_env: this worker's unsubscribe secret "
            f"(${settings.unsubscribe.secret_env}, or state/unsubscribe.secret when unset) is not "
            f"the one the {len(others)} other worker(s) on this ledger use, so the links it "
            f"makes would not verify elsewhere; give every worker the same "
            f"${settings.unsubscribe.secret_env}"
        )
    if stored != fingerprint:
        ledger.set_meta(LINKS_SIGNED_WITH_META, fingerprint)


def _real_now() -> datetime:
    return datetime.now(UTC)


def _recover(ledger: Ledger, now: datetime) -> None:
    """The crash rule for workers that died: their claims go back to be sent again."""
    recovered = ledger.recover_claims(now=now, alive_at=_real_now())
    if recovered:
        LOG.warning(
            "%d deliveries were claimed by a run that stopped before recording "
            "them; they will be sent again (the crash rule)",
            recovered,
        )


def _tick_with_progress(
    runtime: Runtime, now: datetime, label: str, should_stop: Callable[[], bool] = lambda: False
) -> TickReport:
    progress = Progress(label)
    try:
        return runtime.tick(now, should_stop=should_stop, progress=progress)
    finally:
        progress.done()


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    log_to_stderr()
    # The scheduler handles SIGTERM once it runs; before that (and after), SIGTERM unwinds
    # like Ctrl-C so the lease is released rather than left to go stale.
    try:
        with sigterm_as_interrupt():
            _serve(settings)
    except KeyboardInterrupt:
        LOG.info("stopped outside a tick; nothing was being sent")
        return 0
    LOG.info("stopped")
    return 0


def _serve(settings: Settings) -> None:
    """Work as a worker, delivering every tick until the scheduler is told to stop."""
    with _runner(settings, clock=_real_now) as (runtime, worker):
        print(_where_to_look(settings), file=sys.stderr)

        def tick(now: datetime, should_stop: Callable[[], bool]) -> None:
            # Taken over by another worker (this one looked dead): stop, sending nothing more.
            if worker.lost():
                scheduler.stop()
                return
            _recover(runtime.ledger, now)  # another worker may have died since the last tick
            _tick_with_progress(runtime, now, "sending", lambda: should_stop() or worker.lost())

        scheduler = TickScheduler(tick, settings.schedule.tick_seconds)
        if settings.bounces.every_minutes > 0:
            _check_bounce_mailbox(settings)
            scheduler.every(
                settings.bounces.every_minutes * 60,
                lambda now: _read_bounces(settings, runtime, now),
                job_id="dripcourse-bounces",
                name="reading the bounce mailbox",
            )
        with _web_servers(settings, runtime):
            scheduler.run()


def _check_bounce_mailbox(settings: Settings) -> None:
    """A missing IMAP password is a start-up error, not one logged every few minutes."""
    from course.bounces.service import mailbox_password

    mailbox_password(settings)


def _read_bounces(settings: Settings, runtime: Runtime, now: datetime) -> None:
    # One worker reads the mailbox: with several on PostgreSQL, the elected leader.
    if not runtime.ledger.lead(now):
        return
    # Imported here: only a run with a bounce mailbox needs the classifier and IMAP.
    from course.bounces.service import process_once

    process_once(settings, runtime.ledger, now=now)


@contextmanager
def _web_servers(settings: Settings, runtime: Runtime) -> Iterator[None]:
    """The preview and the unsubscribe endpoints beside the scheduler, when configured."""
    with ExitStack() as stack:  # closed in reverse: each server stops before what it uses
        if settings.preview.enabled:
            preview = start_preview(settings, settings.preview.port)
            stack.callback(preview.stop)
            print(f"course run: preview on {preview.url}", file=sys.stderr)
        if settings.unsubscribe.listen is not None:
            host, port = settings.unsubscribe.listen
            app = stack.enter_context(public_app(settings, runtime.ledger))
            public = serve_in_background(
                app, host, port, what="unsubscribe", limits=public_limits(settings)
            )
            stack.callback(public.stop)
            print(f"course run: unsubscribe endpoints on {public.url}", file=sys.stderr)
        yield


def _where_to_look(settings: Settings) -> str:
    every = f"every {settings.schedule.tick_seconds} s"
    backend = settings.delivery.backend
    if backend == "inbox":
        target = f"the local inbox {settings.delivery.inbox} (a Maildir)"
    elif backend == "file":
        target = f".eml files in {settings.delivery.outbox}"
    else:
        target = f"the {backend} backend"
    return (
        f"course run: delivering due lessons {every} into {target}; "
        "`course status` shows progress; Ctrl-C stops"
    )


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    """N days on a virtual clock: in the sandbox (state/simulate/), or with --in-place."""
    start = _now(args, "--start", settings)
    end = start + timedelta(days=args.days)
    zone = settings.schedule.timezone
    if args.in_place:
        if settings.delivery.backend == "smtp":
            raise CourseError(
                f"{settings.source}: delivery.backend: simulate --in-place delivers days of "
                "mail in seconds through the configured backend; it refuses smtp. Simulate "
                "without --in-place: the sandbox never sends."
            )
        print(
            "course: warning: simulate --in-place: the real ledger and the configured "
            "backend get every simulated lesson; subscribers will look further along than "
            "they are",
            file=sys.stderr,
        )
        target, where, environ = settings, "on the real ledger", dict(os.environ)
        log = SuppressionLog.in_project(settings.base_dir)
    else:
        copied = prepare_sandbox(settings, fresh=args.fresh)
        target = sandbox_settings(settings)
        start_from = "a copy of the ledger" if copied else "an empty ledger"
        where = f"in the sandbox {FOLDER}/ ({start_from}; the real ledger and inbox are untouched)"
        environ = _rehearsal_environ(settings)
        # Who left is read from the real log; whatever the simulation would log stays here.
        log = copy_log(SuppressionLog.in_project(settings.base_dir), sandbox_folder(settings))
    clock = _VirtualClock(start)
    progress = Progress("simulating")
    totals = TickReport()
    with _runner(target, clock=clock, environ=environ, suppressions=log) as (runtime, _):
        while clock.now <= end:
            _add(totals, runtime.tick(clock.now))
            progress(totals.sent, f"sent, at {clock.now:%Y-%m-%d %H:%M}")
            if not clock.advance(runtime.ledger.next_due_at(), settings.schedule.tick_seconds):
                break
    progress.done()
    print(
        f"simulated {local_time(start, zone)} to {local_time(end, zone)} {where}: "
        f"{totals.summary()}"
    )
    if not args.in_place:
        print(
            f"`course preview` shows the sandbox's inbox at /simulate; its ledger is "
            f"{FOLDER}/{LEDGER_FILE}"
        )
    return 0


class _VirtualClock:
    """Jumps straight to the next moment anything is due, so N days take seconds."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, next_event: datetime | None, tick_seconds: int) -> bool:
        if next_event is None:
            return False
        self.now = max(next_event, self.now + timedelta(seconds=tick_seconds))
        return True


def _add(totals: TickReport, report: TickReport) -> None:
    for name in ("sent", "retrying", "failed", "bounced"):
        setattr(totals, name, getattr(totals, name) + getattr(report, name))
    for day, count in report.by_day.items():
        totals.by_day[day] = totals.by_day.get(day, 0) + count


def cmd_send_test(args: argparse.Namespace, settings: Settings) -> int:
    build = build_course(settings)
    recipient = recipient_as(settings, build, args.as_email)
    result = send_test(
        settings, build, day=args.day, to=args.to, as_recipient=recipient, now=datetime.now(UTC)
    )
    print(
        f"day {args.day} sent to {result.message.recipient} as {recipient.email} via "
        f"{settings.delivery.backend}: {result.reply or 'accepted'}"
    )
    return 0
