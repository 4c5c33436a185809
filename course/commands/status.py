"""`course status`: who is on which day and what failed; before the first tick, the list.

Every time is shown one way, `2026-03-02 08:00 Europe/London`: a subscriber's own times in
their zone (their lessons follow it), everything else in `schedule.timezone`.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from itertools import islice

from course.arguments import operator_address
from course.config import Settings
from course.errors import CourseError
from course.ledger import DeliveryState, Ledger, SubscriberStatus, SubscriberView, Verdict
from course.planner import Timing, first_due
from course.runtime import read_pause
from course.subscribers import Subscriber, open_list
from course.tables import print_table
from course.timeformat import local_time

LISTED = 50  # rows of each table before "latest 50"


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = commands.add_parser("status", help="who is on which day; what failed")
    status.add_argument("--subscriber", metavar="EMAIL", help="one subscriber's history")
    status.set_defaults(handler=cmd_status)


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    email = operator_address(args.subscriber, "--subscriber") if args.subscriber else ""
    ledger = Ledger.open_if_started(settings.ledger, base_dir=settings.base_dir)
    if ledger is None:
        not_started(settings, email, now=datetime.now(UTC))
        return 0
    with ledger:
        if email and ledger.subscriber(email) is None:
            listed = _listed(settings, email)  # in the CSV, not yet synced by a tick?
            print(f"{listed.email}: in {settings.subscribers}, joins at the next tick")
        elif email:
            subscriber_status(ledger, email)
        else:
            overall_status(ledger, settings.schedule.timezone)
    return 0


def not_started(settings: Settings, email: str, *, now: datetime) -> None:
    """The list as the first tick will find it; reads the CSV and creates nothing."""
    timing = Timing.from_settings(settings.schedule)

    def day_one(subscriber: Subscriber) -> str:
        if timing.first_lesson == "immediately":
            return "at the first tick"
        zone = subscriber.timezone
        return local_time(first_due(max(subscriber.subscribed_at or now, now), zone, timing), zone)

    if email:
        match = _listed(settings, email)
        print(f"{match.email}: not yet started (no tick has run); time zone {match.timezone}")
        print(f"day 1 due {day_one(match)}")
        return
    list_import = open_list(settings.subscribers, settings.list_import)
    rows = (item for item in list_import.rows() if isinstance(item, Subscriber))
    shown = list(islice(rows, LISTED))
    total = len(shown) + sum(1 for _ in rows)
    counts = list_import.counts
    print(f"not yet started: no tick has run, so the ledger ({settings.ledger}) is not there yet")
    others = f"; {counts.rejected} rejected, see `course subscribers`" if counts.rejected else ""
    print(f"subscribers: {total} in {settings.subscribers}, all not yet started{others}")
    if shown:
        print()
        print_table(
            ("subscriber", "time zone", "day 1 due"),
            [(s.email, s.timezone, day_one(s)) for s in shown],
        )
        if total > len(shown):
            print(f"... and {total - len(shown):,} more")
    print("\n`course run` (or `course send` for one tick) starts the course.")


def _listed(settings: Settings, email: str) -> Subscriber:
    """The subscriber `email` as the CSV has them; CourseError when it does not."""
    list_import = open_list(settings.subscribers, settings.list_import)
    wanted = email.lower()
    for item in list_import.rows():
        if isinstance(item, Subscriber) and item.email.lower() == wanted:
            return item
    raise CourseError(f"--subscriber: {email} is in neither the ledger nor {settings.subscribers}")


def overall_status(ledger: Ledger, zone: str) -> None:
    statuses = ledger.status_counts()
    total = sum(statuses.values())
    parts = ", ".join(f"{statuses[s]} {s}" for s in SubscriberStatus if statuses.get(s))
    print(f"subscribers: {total}" + (f" ({parts})" if parts else ""))
    pause = read_pause(ledger)
    if pause is not None:
        over = " (over: the next tick sends again)" if pause.until <= datetime.now(UTC) else ""
        print(
            f"delivery paused until {local_time(pause.until, zone)}{over} after too many "
            f"errors: {pause.reason}"
        )
    counts = ledger.state_counts()
    days = sorted({day for day, _ in counts})
    if days:
        print()
        rows = [(str(d), *(str(counts.get((d, s), 0)) for s in DeliveryState)) for d in days]
        print_table(("day", *DeliveryState), rows)
    suppressed = ledger.latest_with_status(
        (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED), limit=LISTED
    )
    if suppressed:
        print(f"\nunsubscribed and bounced (latest {LISTED}):")
        print_table(
            ("subscriber", "status", "since", "how"),
            [
                (v.email, v.status, local_time(v.status_at, zone), v.status_reason)
                for v in suppressed
            ],
        )
    removed = ledger.latest_with_status([SubscriberStatus.REMOVED], limit=LISTED)
    if removed:
        print(f"\nstopped by the list: not in it now, or not subscribed there (latest {LISTED}):")
        print_table(
            ("subscriber", "since", "why"),
            [(v.email, local_time(v.status_at, zone), v.status_reason) for v in removed],
        )
    problems = ledger.problems(limit=LISTED)
    if problems:
        print(f"\nproblems (latest {LISTED}):")
        print_table(
            ("subscriber", "day", "state", "attempts", "at", "reply"),
            [
                (
                    email,
                    str(d.day),
                    d.state,
                    str(d.attempts),
                    local_time(d.sent_at or d.claimed_at, zone),
                    d.last_reply,
                )
                for email, d in problems
            ],
        )
    delayed = ledger.recent_notices((Verdict.NOTED,), limit=LISTED)
    if delayed:
        print(f"\ndelayed or refused after sending, not suppressed (latest {LISTED}):")
        print_table(
            ("subscriber", "when", "from", "what the report says"),
            [(n.email, local_time(n.received_at, zone), n.source, n.detail) for n in delayed],
        )
    workers_status(ledger, datetime.now(UTC), zone)


def workers_status(ledger: Ledger, now: datetime, zone: str) -> None:
    """Who works on the ledger, and which worker leads (runs the CSV sync)."""
    workers = ledger.workers(now)
    if not workers:
        print("\nworkers: none running")
        return
    leader = next((w for w in workers if w.leader_since is not None and w.alive), None)
    lead = f"leader {leader.owner[:8]} on {leader.host}" if leader else "no live leader"
    print(f"\nworkers: {sum(w.alive for w in workers)} running ({lead})")
    print_table(
        ("worker", "role", "host", "pid", "started", "last heartbeat"),
        [
            (
                w.owner[:8],
                "leader" if w is leader else "worker",
                w.host,
                str(w.pid),
                local_time(w.started_at, zone),
                f"{_ago(now - w.heartbeat_at)}" + ("" if w.alive else " (stopped?)"),
            )
            for w in workers
        ],
    )


def _ago(age: timedelta) -> str:
    seconds = max(0, int(age.total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def subscriber_status(ledger: Ledger, email: str) -> None:
    view = ledger.subscriber(email)
    if view is None:
        raise CourseError(f"--subscriber: {email} is not in the ledger")
    zone = view.timezone
    reason = f" ({view.status_reason})" if view.status_reason else ""
    print(f"{view.email}: {view.status} since {local_time(view.status_at, zone)}{reason}")
    print(f"joined {local_time(view.joined_at, zone)}; time zone {zone}")
    print(_where_next(view))
    rows = [
        (
            str(d.day),
            d.state,
            str(d.attempts),
            local_time(d.sent_at or d.claimed_at, zone),
            d.message_id,
            d.last_reply,
        )
        for d in ledger.history(email)
    ]
    if rows:
        print()
        print_table(("day", "state", "attempts", "at", "message-id", "reply"), rows)


def _where_next(view: SubscriberView) -> str:
    """What comes next for this subscriber, in words that fit their status."""
    done = view.next_day - 1
    lessons = f"{done} lesson{'' if done == 1 else 's'}"
    if view.status == SubscriberStatus.ACTIVE:
        return f"next: day {view.next_day}, due {local_time(view.next_due_at, view.timezone)}"
    if view.status == SubscriberStatus.COMPLETED:
        return f"completed the course: all {lessons} went out"
    if view.status == SubscriberStatus.REMOVED:
        return f"{lessons} went out; no longer in the list, so nothing more is sent"
    return (
        f"{lessons} went out; nothing more is sent "
        f"(`course resubscribe` resumes at day {view.next_day})"
    )
