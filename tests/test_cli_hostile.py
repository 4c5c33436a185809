"""Every command, run as an operator would, with arguments meant to break it.

Each row runs the real CLI as a subprocess in a copy of the shipped project and asserts the
exit code (2: the parser refused the arguments, 1: a one-line `course: error: ...`), that no
traceback is printed, and that a refused command wrote nothing.

Adding a command? Add rows for it here: `test_every_command_has_hostile_rows` insists.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO
from support import free_port

from course.cli import command_line, command_name

CSV = "subscribers: examples/subscribers.csv"
BOUNCES = "# bounces:                  # late bounces and complaints (`course bounces`)"


@dataclass(frozen=True)
class Hostile:
    """One hostile command line and what it must end in."""

    args: tuple[str, ...]
    exit: int
    says: str  # a fragment of the error line
    edit: tuple[str, str] | None = None  # run with --config: schedule.yaml with this replaced
    writes: bool = False  # may leave files behind (it failed after opening the ledger)

    @property
    def command(self) -> str:
        return command_name(self.args) or ""


PORT_RANGE = "expected a port number 1-65535"
NOT_AN_ADDRESS = "invalid email address"
CONTROL = "contains a control character"
ISO = "expected an ISO 8601 time"

ROWS = [
    # the command and its options
    Hostile(("buidl",), 2, "unknown command 'buidl'; did you mean 'build'?"),
    Hostile(("",), 2, "unknown command ''"),
    Hostile(("build", "--bogus"), 2, "course build: error: unrecognized arguments: --bogus"),
    Hostile(("lessons", "extra"), 2, "course lessons: error: unrecognized arguments: extra"),
    Hostile(("run", "--days", "3"), 2, "course run: error: unrecognized arguments"),
    Hostile(("subscribers", "--out", "x"), 2, "course subscribers: error: unrecognized"),
    # ports
    Hostile(("preview", "--port", "99999"), 2, PORT_RANGE),
    Hostile(("preview", "--port", "65536"), 2, PORT_RANGE),
    Hostile(("preview", "--port", "eighty"), 2, PORT_RANGE),
    Hostile(("serve", "--port", "70000"), 2, PORT_RANGE),
    Hostile(("serve", "--port", "-1"), 2, PORT_RANGE),
    Hostile(("serve", "--host", ""), 2, "expected a host name or IP address"),
    Hostile(("serve", "--host", "127.0.0.1\n"), 2, "expected a host name or IP address"),
    Hostile(
        ("serve", "--host", "nowhere.invalid", "--port", str(free_port())),
        1,
        "cannot resolve the host 'nowhere.invalid'; use an IP address",
    ),
    # output paths
    Hostile(("build", "--out", "schedule.yaml"), 1, "schedule.yaml: exists and is not a folder"),
    Hostile(("build", "--out", "/proc/forbidden"), 1, "/proc/forbidden: cannot create"),
    Hostile(("build", "--out", ""), 2, "expected a path"),
    Hostile(
        ("suppressions", "--out", "/nonexistent/dir/x.csv"),
        1,
        "/nonexistent/dir/x.csv: cannot write: the folder /nonexistent/dir does not exist",
        writes=True,
    ),
    Hostile(("suppressions", "--out", "examples"), 1, "examples: is a folder", writes=True),
    Hostile(("suppressions", "--out", "/proc/x.csv"), 1, "/proc/x.csv: cannot write", writes=True),
    # the config file
    Hostile(("lessons", "--config", "missing.yaml"), 1, "--config missing.yaml: no such file"),
    Hostile(("--config", "missing.yaml", "build"), 1, "--config missing.yaml: no such file"),
    Hostile(("--config", "examples", "lessons"), 1, "--config examples: is a folder"),
    Hostile(("--config", "", "lessons"), 2, "expected a path"),
    Hostile(("status", "--config"), 2, "expected one argument"),
    # missing files the config names
    Hostile(("send",), 1, "gone.csv: cannot read", edit=(CSV, "subscribers: gone.csv")),
    Hostile(("subscribers",), 1, "gone.csv: cannot read", edit=(CSV, "subscribers: gone.csv")),
    Hostile(("build",), 1, "cannot read the article", edit=("article: examples/", "article: x/")),
    # addresses typed by hand
    Hostile(("unsubscribe", "not-an-email"), 1, NOT_AN_ADDRESS),
    Hostile(("unsubscribe", ""), 1, NOT_AN_ADDRESS),
    Hostile(("unsubscribe", "ben@example.com\nBcc: eve@example.org"), 1, CONTROL),
    Hostile(("unsubscribe", "Ben <ben@example.com>"), 1, NOT_AN_ADDRESS),
    Hostile(("unsubscribe",), 2, "the following arguments are required: EMAIL"),
    Hostile(("resubscribe", "not-an-email"), 1, NOT_AN_ADDRESS),
    Hostile(("resubscribe", "ben@example.com\r\n"), 1, CONTROL),
    Hostile(("status", "--subscriber", "x"), 1, NOT_AN_ADDRESS),
    Hostile(("status", "--subscriber", "ben@\nexample.com"), 1, CONTROL),
    Hostile(("send-test", "--day", "1", "--to", "bad"), 1, NOT_AN_ADDRESS),
    Hostile(("send-test", "--day", "1", "--to", "you@example.org\n"), 1, CONTROL),
    Hostile(("send-test", "--day", "1", "--to", "you@example.org", "--as", "x"), 1, NOT_AN_ADDRESS),
    Hostile(
        ("send-test", "--day", "1", "--to", "you@example.org", "--as", "nobody@example.org"),
        1,
        "--as: 'nobody@example.org' is not a subscriber",
    ),
    # numbers and times
    Hostile(("send-test", "--day", "0", "--to", "you@example.org"), 2, "expected a whole number"),
    Hostile(("send-test", "--day", "99", "--to", "you@example.org"), 1, "--day: expected 1 to 15"),
    Hostile(("send", "--now", "yesterday"), 1, ISO),
    Hostile(("send", "--now", ""), 1, ISO),
    Hostile(("send", "--now", "9999-12-31T23:59"), 1, "--now: expected a time in the years"),
    Hostile(("simulate", "--days", "0"), 2, "expected a whole number of days"),
    Hostile(("simulate", "--days", "-3"), 2, "expected a whole number of days"),
    Hostile(("simulate", "--days", "99999999"), 2, "expected a whole number of days"),
    Hostile(("simulate", "--days", "2", "--start", "soon"), 1, ISO),
    Hostile(("simulate", "--days", "2", "--fresh", "--in-place"), 2, "not allowed with"),
    Hostile(("subscribers", "--report", "/nonexistent/r.csv"), 1, "/nonexistent/r.csv: cannot"),
    Hostile(("subscribers", "--report", ""), 2, "expected a path"),
    # checks and keys
    Hostile(("check", "--bogus"), 2, "course check: error: unrecognized arguments: --bogus"),
    Hostile(("check",), 1, "cannot read the article", edit=("article: examples/", "article: x/")),
    Hostile(("dkim-keygen", "--selector", "s1"), 2, "required: --domain"),
    Hostile(("dkim-keygen", "--domain", "", "--selector", "s1"), 1, "--domain: expected"),
    Hostile(("dkim-keygen", "--domain", "exa\nmple.com", "--selector", "s1"), 1, "--domain"),
    Hostile(("dkim-keygen", "--domain", "example.com", "--selector", "a b"), 1, "--selector"),
    Hostile(
        ("dkim-keygen", "--domain", "example.com", "--selector", "s1", "--out", "/proc/k.key"),
        1,
        "/proc/k.key: cannot",
    ),
    Hostile(
        ("dkim-keygen", "--domain", "example.com", "--selector", "s1", "--out", "schedule.yaml"),
        1,
        "schedule.yaml: already exists",
    ),
    # the bounce mailbox
    Hostile(("bounces", "--bogus"), 2, "course bounces: error: unrecognized arguments: --bogus"),
    Hostile(("bounces", "now"), 2, "course bounces: error: unrecognized arguments: now"),
    Hostile(
        ("bounces",),
        1,
        "bounces.password_env: set the environment variable BOUNCES_PASSWORD",
        edit=(BOUNCES, "bounces:\n  mailbox: imaps://nobody@127.0.0.1:1/INBOX"),
    ),
    Hostile(
        ("bounces", "--dry-run"),
        1,
        "bounces.mailbox",
        edit=(BOUNCES, "bounces:\n  mailbox: pop3://nowhere"),
    ),
    # state: init, backup, restore
    Hostile(("init", "--bogus"), 2, "course init: error: unrecognized arguments: --bogus"),
    Hostile(("init", "--fresh", "--new-secret"), 2, "not allowed with"),
    Hostile(("backup", "--out", ""), 2, "expected a path"),
    Hostile(
        ("backup", "--out", "/proc/x.tar.gz"),
        1,
        "/proc/x.tar.gz: cannot write there",
    ),
    Hostile(("backup", "--out", "examples"), 1, "examples: is a folder"),
    Hostile(("restore",), 2, "the following arguments are required: FILE"),
    Hostile(("restore", ""), 2, "expected a path"),
    Hostile(("restore", "missing.tar.gz"), 1, "missing.tar.gz: no such file"),
    Hostile(("restore", "schedule.yaml"), 1, "schedule.yaml: not a readable backup archive"),
    # a run that cannot start
    Hostile(("run",), 1, "ledger", edit=("ledger: sqlite:///state/course.db", "ledger: notaurl")),
]


@dataclass(frozen=True)
class Outcome:
    """How one hostile run ended, and whether the project folder changed."""

    returncode: int
    stdout: str
    stderr: str
    changed: bool


@pytest.fixture(scope="module")
def outcomes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[Hostile, Outcome]:
    """Every selected row, run a few at a time: each is a Python start-up and little else."""
    shipped = tmp_path_factory.mktemp("shipped")
    for name in ("templates", "examples"):
        shutil.copytree(REPO / name, shipped / name)
    shutil.copy(REPO / "schedule.yaml", shipped / "schedule.yaml")
    params = [getattr(item, "callspec", None) for item in request.session.items]
    selected = [p.params["row"] for p in params if p and isinstance(p.params.get("row"), Hostile)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            row: pool.submit(run_row, row, shipped, tmp_path_factory.mktemp("hostile"))
            for row in dict.fromkeys(selected)
        }
        return {row: future.result() for row, future in futures.items()}


def run_row(row: Hostile, shipped: Path, folder: Path) -> Outcome:
    project = folder / "project"
    shutil.copytree(shipped, project)
    args = list(row.args)
    if row.edit is not None:
        text = (project / "schedule.yaml").read_text()
        assert row.edit[0] in text, f"the edit {row.edit[0]!r} no longer matches schedule.yaml"
        (project / "hostile.yaml").write_text(text.replace(*row.edit))
        args += ["--config", "hostile.yaml"]
    before = files_in(project)
    result = subprocess.run(
        [sys.executable, "-m", "course.cli", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "200", "COURSE_SECRET": "hostile-test-secret"},
    )
    changed = files_in(project) != before
    return Outcome(result.returncode, result.stdout, result.stderr, changed)


def files_in(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")}


@pytest.mark.parametrize("row", ROWS, ids=lambda row: " ".join(row.args)[:60])
def test_hostile_arguments_end_in_one_line_and_an_exit_code(
    row: Hostile, outcomes: dict[Hostile, Outcome]
) -> None:
    result = outcomes[row]
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == row.exit, output
    problems = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(problems) == 1, result.stderr
    assert row.says in problems[0], result.stderr
    if row.exit == 1:
        warnings = ("course: warning: ", "course: error: ")
        assert all(line.startswith(warnings) for line in result.stderr.splitlines()), output
    if not row.writes:
        assert not result.changed, "a refused command left files behind"


def test_every_command_has_hostile_rows() -> None:
    _, commands = command_line([])
    missing = sorted(set(commands.choices) - {row.command for row in ROWS})
    assert not missing, f"add hostile rows for: {', '.join(missing)}"
