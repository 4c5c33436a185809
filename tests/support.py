"""Helpers several test modules share: free loopback ports and running the real CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_course(
    project: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m course.cli ARGS` in `project`, as an operator would; never raises."""
    return subprocess.run(
        [sys.executable, "-m", "course.cli", *args],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def use_ledger(project: Path, url: str) -> None:
    """Point the project's schedule.yaml at the ledger `url`."""
    config = project / "schedule.yaml"
    text = config.read_text().replace("ledger: sqlite:///state/course.db", f"ledger: {url}")
    config.write_text(text)
