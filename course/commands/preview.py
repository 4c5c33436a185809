"""`course preview`: the operator's web preview of the course and the local inbox."""

from __future__ import annotations

import argparse
import sys

from course.arguments import port_argument
from course.commands.interrupt import sigterm_as_interrupt
from course.config import Settings
from course.web.preview import start_preview


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    preview = commands.add_parser(
        "preview", help="browse every lesson and the local inbox on http://127.0.0.1"
    )
    preview.add_argument(
        "--port",
        type=port_argument,
        default=None,
        metavar="PORT",
        help="port on 127.0.0.1 (default: preview.port, 8025)",
    )
    preview.set_defaults(handler=cmd_preview)


def cmd_preview(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until Ctrl-C (or SIGTERM), then stop cleanly with exit 0."""
    port = settings.preview.port if args.port is None else args.port
    server = start_preview(settings, port)
    print(f"Preview: {server.url}", flush=True)
    print("Ctrl-C stops it.", file=sys.stderr, flush=True)
    try:
        with sigterm_as_interrupt():
            server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
