"""`course bounces`: process the bounce mailbox once."""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from datetime import UTC, datetime

from course.bounces.service import open_bounce_mailbox, process_opened
from course.config import Settings
from course.ledger import Ledger
from course.tables import print_table


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bounces = commands.add_parser(
        "bounces", help="read the bounce mailbox once: bounces, complaints, auto-replies"
    )
    bounces.add_argument(
        "--dry-run", action="store_true", help="show what would happen; change and move nothing"
    )
    bounces.set_defaults(handler=cmd_bounces)


def cmd_bounces(args: argparse.Namespace, settings: Settings) -> int:
    with ExitStack() as stack:
        # An IMAP mailbox first: one that cannot be opened (no password, a server that is
        # down or refuses the login) is reported before the ledger, and state/ with it, is
        # created. A Maildir is created when opened, so it comes after the ledger.
        remote = settings.bounces.imap is not None
        mailbox = stack.enter_context(open_bounce_mailbox(settings)) if remote else None
        ledger = stack.enter_context(Ledger.open(settings.ledger, base_dir=settings.base_dir))
        if mailbox is None:
            mailbox = stack.enter_context(open_bounce_mailbox(settings))
        summary = process_opened(
            settings, mailbox, ledger, now=datetime.now(UTC), dry_run=args.dry_run
        )
    where = settings.bounces.mailbox
    prefix = "dry run: " if args.dry_run else ""
    print(f"{prefix}{where}: {summary.summary()}")
    if summary.lines:
        print()
        print_table(("message", "outcome"), [(line.title, line.outcome) for line in summary.lines])
    if summary.held:
        print(f"\nwaiting for you in {where} ({len(summary.held)}, flagged, unread):")
        print_table(("message", "why"), [(line.title, line.outcome) for line in summary.held])
    return 0
