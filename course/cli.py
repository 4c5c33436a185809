"""The `course` command: the only place that turns errors into exit codes."""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from course import __version__
from course.arguments import path_argument
from course.build import build_course, write_build
from course.config import Settings, default_settings, load_settings
from course.errors import CourseError
from course.tables import print_table

Command = Callable[[argparse.Namespace, Settings], int]
# Each command's module is imported only when that command runs (or for --help): the
# ledger, scheduler and web stacks took longer to import than `course build` takes to run.
COMMAND_MODULES = {
    **dict.fromkeys(
        ("subscribers", "send", "run", "simulate", "send-test"),
        "course.commands.delivery",
    ),
    **dict.fromkeys(
        ("unsubscribe", "resubscribe", "suppressions", "serve"), "course.commands.optout"
    ),
    **dict.fromkeys(("init", "backup", "restore"), "course.commands.state"),
    "status": "course.commands.status",
    "preview": "course.commands.preview",
    "dkim-keygen": "course.commands.dkim",
    "check": "course.commands.check",
    "bounces": "course.commands.bounces",
}
KNOWN_COMMANDS = ["build", "lessons", *COMMAND_MODULES]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run one command, print a one-line error on failure (exit 1, Ctrl-C 130)."""
    words = list(sys.argv[1:] if argv is None else argv)
    args = parse_command_line(*command_line(words), words)
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
    except OSError as exc:
        # A file or folder the operator named that the system refuses: still one line.
        print(f"course: error: {os_problem(exc)}", file=sys.stderr)
        return 1


def parse_command_line(
    top: argparse.ArgumentParser, command_set: CommandSet, words: list[str]
) -> argparse.Namespace:
    """Parse argv; an unknown command or option is reported by the parser it belongs to."""
    commands = command_set.choices
    wanted = command_name(words)
    if wanted is not None and wanted not in KNOWN_COMMANDS:
        close = difflib.get_close_matches(wanted, KNOWN_COMMANDS, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else f"; see {top.prog} --help"
        top.error(f"unknown command {wanted!r}{hint}")
    args, extra = top.parse_known_args(words)
    if extra:
        # Without this, argparse blames the top-level parser and shows its usage.
        commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def os_problem(exc: OSError) -> str:
    """`path: reason` for an OSError, as one line."""
    reason = exc.strerror or str(exc)
    return f"{exc.filename}: {reason}" if exc.filename else reason


def settings_for(config: Path | None) -> Settings:
    """The given file; else ./schedule.yaml; else the embedded defaults."""
    if config is not None:
        return load_settings(config, given=True)
    default = Path("schedule.yaml")
    return load_settings(default) if default.exists() else default_settings(Path.cwd())


if TYPE_CHECKING:
    SubCommands = argparse._SubParsersAction[argparse.ArgumentParser]
else:  # argparse's class is generic only in the type stubs
    SubCommands = argparse._SubParsersAction


class CommandSet(SubCommands):
    """Sub-commands that each take --config too, and show their help line as a description."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs.setdefault("description", kwargs.get("help"))
        command = super().add_parser(name, **kwargs)
        # SUPPRESS: when absent after the command, the value given before it (or None) stays.
        command.add_argument(
            "--config",
            type=path_argument,
            default=argparse.SUPPRESS,
            metavar="PATH",
            help="path to schedule.yaml (default: ./schedule.yaml, else the embedded defaults)",
        )
        return command


def parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line, with the commands that argv needs (all of them for --help)."""
    return command_line(argv)[0]


def command_line(argv: Sequence[str] | None = None) -> tuple[argparse.ArgumentParser, CommandSet]:
    """The top-level parser and its sub-commands."""
    top = argparse.ArgumentParser(
        prog="course",
        description="Dripcourse: turn an article into a daily email course, preview every "
        "lesson, and deliver it.",
    )
    top.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    top.add_argument(
        "--config",
        type=path_argument,
        default=None,
        metavar="PATH",
        help="path to schedule.yaml (default: ./schedule.yaml, else the embedded defaults); "
        "also accepted after the command",
    )
    commands = cast(
        CommandSet,
        top.add_subparsers(dest="command", required=True, metavar="COMMAND", action=CommandSet),
    )
    build = commands.add_parser("build", help="render every lesson into files to open")
    build.add_argument(
        "--out",
        type=path_argument,
        default=Path("out"),
        metavar="DIR",
        help="output folder (default: out)",
    )
    build.set_defaults(handler=cmd_build)
    lessons = commands.add_parser("lessons", help="table of the course's lessons")
    lessons.set_defaults(handler=cmd_lessons)
    wanted = command_name(sys.argv[1:] if argv is None else argv)
    if wanted is None:  # --help or --version: every command, for the list
        modules = set(COMMAND_MODULES.values())
    elif wanted in COMMAND_MODULES:
        modules = {COMMAND_MODULES[wanted]}
    else:  # build, lessons, or a mistyped name that parse_command_line reports
        modules = set()
    for module in sorted(modules):
        importlib.import_module(module).add_commands(commands)
    return top, commands


def command_name(argv: Sequence[str]) -> str | None:
    """The sub-command named in argv, skipping --config and its value; None if none."""
    rest = list(argv)
    while rest:
        word = rest.pop(0)
        if word == "--config":
            rest = rest[1:]
        elif not word.startswith("-"):
            return word
    return None


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
