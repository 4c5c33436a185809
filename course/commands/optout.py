"""`course unsubscribe`, `resubscribe`, `suppressions` and `serve`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime

from course.arguments import host_argument, operator_address, path_argument, port_argument
from course.article import load_article
from course.build import course_id, write_atomic
from course.config import Settings
from course.errors import CourseError
from course.ledger import Ledger, ResumeDue, SubscriberStatus
from course.logs import log_to_stderr
from course.planner import Timing, first_due, resume_due
from course.render import course_name
from course.state import open_ledger
from course.suppress import (
    SUPPRESSED_STATUSES,
    Action,
    FirstDue,
    LedgerCatchUp,
    Suppression,
    SuppressionLog,
    suppress,
)
from course.suppression_csv import suppression_csv
from course.timeformat import local_time
from course.unsubscribe import load_secret
from course.web.limits import ConnectionLimits
from course.web.public import PublicApp, Unsubscriber, create_public_app
from course.web.server import bind, serve_in_background


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    unsub = commands.add_parser("unsubscribe", help="suppress a subscriber by hand")
    unsub.add_argument("email", metavar="EMAIL", help="the address to suppress")
    unsub.set_defaults(handler=cmd_unsubscribe)
    resub = commands.add_parser("resubscribe", help="let an unsubscribed subscriber back in")
    resub.add_argument("email", metavar="EMAIL", help="the address to let back in")
    resub.set_defaults(handler=cmd_resubscribe)
    sup = commands.add_parser("suppressions", help="export unsubscribed and bounced as CSV")
    sup.add_argument(
        "--out",
        type=path_argument,
        metavar="FILE",
        help="file to write (default: standard output)",
    )
    sup.set_defaults(handler=cmd_suppressions)
    serve = commands.add_parser("serve", help="the public unsubscribe endpoints")
    serve.add_argument(
        "--host",
        type=host_argument,
        default="127.0.0.1",
        metavar="HOST",
        help="address to bind (default 127.0.0.1)",
    )
    serve.add_argument(
        "--port", type=port_argument, default=8026, metavar="PORT", help="port (default 8026)"
    )
    serve.set_defaults(handler=cmd_serve)


def _ledger(settings: Settings) -> Ledger:
    """The course's ledger, checked against state/manifest.json (course.state)."""
    return open_ledger(settings, course_id(settings, load_article(settings.course.article)))


def planned_first_due(settings: Settings) -> FirstDue:
    """When a (re)joining subscriber's next lesson is due, by the planner."""
    timing = Timing.from_settings(settings.schedule)
    return lambda zone, joined: first_due(joined, zone, timing)


def planned_resume_due(settings: Settings) -> ResumeDue:
    """When someone back after a stop gets their next lesson: never a second that local day."""
    timing = Timing.from_settings(settings.schedule)
    return lambda zone, now, last: resume_due(now, last, zone, timing)


def cmd_unsubscribe(args: argparse.Namespace, settings: Settings) -> int:
    email = operator_address(args.email, "unsubscribe")
    with _ledger(settings) as ledger:
        view = ledger.subscriber(email)
        changed = view is None or view.status not in SUPPRESSED_STATUSES
        if changed:
            entry = Suppression(
                email, Action.UNSUBSCRIBE, "by hand (course unsubscribe)", datetime.now(UTC)
            )
            suppress(
                SuppressionLog.in_project(settings.base_dir),
                ledger,
                [entry],
                first_due=planned_first_due(settings),
            )
    print(f"{email}: unsubscribed" if changed else f"{email}: already suppressed; nothing changed")
    return 0


def cmd_resubscribe(args: argparse.Namespace, settings: Settings) -> int:
    email = operator_address(args.email, "resubscribe")
    with _ledger(settings) as ledger:
        view = ledger.subscriber(email)
        if view is None:
            raise CourseError(f"resubscribe: {email} is not in the ledger; nothing to undo")
        if view.status == SubscriberStatus.REMOVED:
            raise CourseError(
                f"resubscribe: {email} left the subscribers list; add them back there"
            )
        if view.status not in SUPPRESSED_STATUSES:
            print(f"{email}: already {view.status}; nothing changed")
            return 0
        entry = Suppression(
            email, Action.RESUBSCRIBE, "by hand (course resubscribe)", datetime.now(UTC)
        )
        suppress(
            SuppressionLog.in_project(settings.base_dir),
            ledger,
            [entry],
            first_due=planned_first_due(settings),
            resume_due=planned_resume_due(settings),
        )
        back = ledger.subscriber(email)
    due = local_time(back.next_due_at if back else None, view.timezone)
    print(f"{email}: active again from day {view.next_day}, due {due}")
    return 0


def cmd_suppressions(args: argparse.Namespace, settings: Settings) -> int:
    with _ledger(settings) as ledger:
        text = suppression_csv(ledger.suppressions())
    if args.out is None:
        sys.stdout.write(text)
    else:
        write_atomic(args.out, text.encode("utf-8"))
        print(f"wrote {text.count(chr(10)) - 1} suppressed addresses to {args.out}")
    return 0


def public_limits(settings: Settings) -> ConnectionLimits:
    return ConnectionLimits(
        max_connections=settings.unsubscribe.max_connections,
        request_seconds=settings.unsubscribe.request_seconds,
    )


@contextmanager
def unsubscriber(settings: Settings, ledger: Ledger) -> Iterator[Unsubscriber]:
    """What the public endpoints need, with the thread that brings the ledger up to date."""
    course = load_article(settings.course.article)
    secret = load_secret(settings.unsubscribe.secret_env, settings.base_dir, os.environ)
    log = SuppressionLog.in_project(settings.base_dir)
    catch_up = LedgerCatchUp(log, ledger, planned_first_due(settings)).start()
    try:
        yield Unsubscriber(
            secret,
            course_id(settings, course),
            course_name(settings, course),
            ledger,
            log,
            catch_up,
        )
    finally:
        catch_up.stop()


@contextmanager
def public_app(settings: Settings, ledger: Ledger) -> Iterator[PublicApp]:
    """The unsubscribe endpoints, and a webhook for each configured provider."""
    routes = []
    with unsubscriber(settings, ledger) as endpoints:
        if settings.bounces.webhooks.any:
            # Only when configured: the webhooks bring cryptography and the bounce parsers.
            from course.web.webhooks import Webhooks, load_keys

            log = SuppressionLog.in_project(settings.base_dir)
            hooks = Webhooks(load_keys(settings), ledger, course_id=endpoints.course_id, log=log)
            routes = hooks.routes()
        yield create_public_app(endpoints, routes)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    log_to_stderr()
    # Bound first: a host or port it cannot listen on is refused before the ledger, the
    # manifest and the secret are set up.
    sock = bind(args.host, args.port, what="serve")
    with closing(sock), _ledger(settings) as ledger, public_app(settings, ledger) as app:
        server = serve_in_background(
            app, args.host, args.port, what="serve", limits=public_limits(settings), sock=sock
        )
        print(f"Unsubscribe endpoints on {server.url}unsubscribe/<token>", flush=True)
        for route in app.routes:
            path = getattr(route, "path", "")
            if path.startswith("/webhooks/") and "{" not in path:
                print(f"Webhook on {server.url}{path.lstrip('/')}", flush=True)
        try:
            server.wait()
        finally:
            server.stop()
    return 0
