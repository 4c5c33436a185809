"""The `course` command: the only place that turns errors into exit codes."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from course.build import build_course, write_build
from course.config import Settings, default_settings, load_settings
from course.errors import CourseError
from course.tables import print_table

Command = Callable[[argparse.Namespace, Settings], int]
# Each command's module is imported only when that command runs (or for --help): the
# ledger, scheduler and web stacks took longer to import than `course build` takes to run.
COMMAND_MODULES = {
    **dict.fromkeys(
        ("subscribers", "send", "run", "simulate", "send-test", "status"),
        "course.commands.delivery",
    ),
    **dict.fromkeys(
        ("unsubscribe", "resubscribe", "suppressions", "serve"), "course.commands.optout"
    ),
    **dict.fromkeys(("init", "backup", "restore"), "course.commands.state"),
    "preview": "course.commands.preview",
    "dkim-keygen": "course.commands.dkim",
    "check": "course.commands.check",
    "bounces": "course.commands.bounces",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run one command, print a one-line error on failure (exit 1, Ctrl-C 130)."""
    args = parser(argv).parse_args(argv)
    try:
        settings = settings_for(args.config)
        for warning in settings.warnings:
            warn(warning)
        command: Command = args.handler
        return command(args, settings)
    except CourseError as exc:
        print(f"course: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("course: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly, as other Unix tools do.
        sys.stderr = sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 0


def settings_for(config: Path | None) -> Settings:
    """The given file; else ./schedule.yaml; else the embedded defaults."""
    if config is not None:
        return load_settings(config)
    default = Path("schedule.yaml")
    return load_settings(default) if default.exists() else default_settings(Path.cwd())


def parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="course",
        description="Dripcourse: turn an article into a daily email course, preview every "
        "lesson, and deliver it.",
    )
    top.add_argument(
        "--config", type=Path, default=None, help="path to schedule.yaml (default: ./schedule.yaml)"
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    build = commands.add_parser("build", help="render every lesson into files to open")
    build.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: out)")
    build.set_defaults(handler=cmd_build)
    lessons = commands.add_parser("lessons", help="table of the course's lessons")
    lessons.set_defaults(handler=cmd_lessons)
    wanted = _command_name(sys.argv[1:] if argv is None else argv)
    modules = (
        {COMMAND_MODULES[wanted]}
        if wanted in COMMAND_MODULES
        else set(COMMAND_MODULES.values())
        if wanted not in ("build", "lessons")
        else set()
    )
    for module in sorted(modules):
        importlib.import_module(module).add_commands(commands)
    return top


def _command_name(argv: Sequence[str]) -> str:
    """The sub-command named in argv, skipping --config and its value; "" if none."""
    rest = list(argv)
    while rest:
        word = rest.pop(0)
        if word == "--config":
            rest = rest[1:]
        elif not word.startswith("-"):
            return word
    return ""


def warn(message: str) -> None:
    print(f"course: warning: {message}", file=sys.stderr)


def cmd_build(args: argparse.Namespace, settings: Settings) -> int:
    build = build_course(settings)
    for warning in build.warnings:
        warn(warning)
    index = write_build(build, settings, args.out, now=datetime.now(UTC))
    print(f"Built {len(build.lessons)} lessons into {args.out}/")
    print(f"Open {index.resolve().as_uri()}")
    return 0


def cmd_lessons(args: argparse.Namespace, settings: Settings) -> int:
    build = build_course(settings)
    rows = [
        (
            str(p.day),
            p.rendered.lesson.kind,
            p.rendered.lesson.title,
            p.rendered.subject,
            p.rendered.preheader,
            f"{p.rendered.html_bytes / 1000:.1f} KB",
            "; ".join(p.rendered.lesson.edits),
        )
        for p in build.lessons
    ]
    print_table(("day", "kind", "title", "subject", "preheader", "html", "edits"), rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
