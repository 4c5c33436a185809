"""`course bounces`: process the bounce mailbox once."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from course.bounces.service import process_once
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
    with Ledger.open(settings.ledger, base_dir=settings.base_dir) as ledger:
        summary = process_once(settings, ledger, now=datetime.now(UTC), dry_run=args.dry_run)
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
