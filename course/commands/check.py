"""`course check`: every check over every lesson, exit 1 on any failure (for the operator's CI)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from course.build import build_course, sample_recipient
from course.checks import Judges, lesson_checks, view_message, worst
from course.checks.spam import SpamAssassin, SpamVerdict
from course.config import Settings
from course.dkim import Keyring


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = commands.add_parser(
        "check",
        help="run every check on every lesson; exit 1 if any fails",
        description="Builds every lesson as the sample subscriber gets it and checks it: "
        "size, links and calls to action, alt text, unsubscribe headers, the text part, "
        "contrast and text size, headings, DKIM (when sender.dkim is set) and "
        "SpamAssassin (when it is installed). Exits 1 when any check warns or fails.",
    )
    check.add_argument(
        "--verbose", "-v", action="store_true", help="show every check, not only failures"
    )
    check.add_argument(
        "--no-spamassassin",
        action="store_true",
        help="skip SpamAssassin even when it is installed",
    )
    check.set_defaults(handler=cmd_check)


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    build = build_course(settings)
    sample = sample_recipient(settings)
    now = datetime.now(UTC)
    messages = [lesson.build(sample, date=now)[1] for lesson in build.lessons]
    spam = _spam_verdicts(messages, skip=args.no_spamassassin)
    keyring = Keyring.of(build.sender.dkim)
    failed = 0
    skipped: dict[str, str] = {}
    for lesson, data, verdict in zip(build.lessons, messages, spam, strict=True):
        checks = lesson_checks(lesson.rendered, view_message(data), Judges(keyring, verdict))
        failures = [c for c in checks if c.failed]
        failed += len(failures)
        skipped.update((c.name, c.detail) for c in checks if c.level == "skipped")
        print(f"day {lesson.day:<3} {worst(checks)}")
        for check in checks if args.verbose else failures:
            print(f"    {check.name}: {check.level}: {check.detail}")
    count = len(build.lessons)
    if skipped:
        print("Skipped: " + "; ".join(f"{name} ({why})" for name, why in skipped.items()))
    if failed:
        print(f"{failed} failed check{'s' if failed != 1 else ''} in {count} lessons.")
        return 1
    print(f"All {count} lessons pass{_figures(spam)}.")
    return 0


def _spam_verdicts(messages: list[bytes], *, skip: bool) -> list[SpamVerdict | str]:
    if skip:
        return ["--no-spamassassin was given"] * len(messages)
    judge = SpamAssassin.find()
    if judge is None:
        return ["spamassassin is not installed"] * len(messages)
    return list(judge.score(messages))


def _figures(spam: list[SpamVerdict | str]) -> str:
    scores = [v.score for v in spam if isinstance(v, SpamVerdict)]
    if not scores:
        return ""
    return f" (SpamAssassin {min(scores):.1f} to {max(scores):.1f} points)"
