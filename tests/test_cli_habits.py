"""The `course` command behaves as people expect of a command-line tool (issue 12, items 4-5).

--config before or after the command, --version, "did you mean", each command's own usage on
a bad option, a description in every command's --help, named metavars; addresses typed by
hand checked like the CSV's, with nothing written when one is refused.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support import run_course

from course import __version__
from course.arguments import TypedAddressError, operator_address
from course.cli import command_line
from course.subscribers import parse_subscribers


def run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_course(project, *args, env={"COURSE_SECRET": "habits-test-secret"})


def test_config_is_accepted_after_the_command_as_well_as_before(project: Path) -> None:
    config = project / "other.yaml"
    config.write_text(
        (project / "schedule.yaml").read_text().replace('"Day {{ day }} of', '"Lesson {{ day }} of')
    )
    before = run(project, "--config", "other.yaml", "lessons")
    after = run(project, "lessons", "--config", "other.yaml")
    assert after.returncode == 0, after.stderr
    assert after.stdout == before.stdout
    assert "Lesson 1 of 15" in after.stdout
    # After the command it wins over one given before, as the nearer option should.
    both = run(project, "--config", "missing.yaml", "lessons", "--config", "other.yaml")
    assert both.returncode == 0, both.stderr
    assert "Lesson 1 of 15" in both.stdout


def test_version(project: Path) -> None:
    result = run(project, "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"course {__version__}"


def test_a_mistyped_command_gets_a_suggestion(project: Path) -> None:
    result = run(project, "lesons")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "course: error: unknown command 'lesons'; did you mean 'lessons'?"
    )
    far = run(project, "frobnicate")
    assert far.stderr.splitlines()[-1] == (
        "course: error: unknown command 'frobnicate'; see course --help"
    )


def test_a_bad_option_shows_that_commands_usage(project: Path) -> None:
    result = run(project, "build", "--bogus")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "usage: course build [-h] [--config PATH] [--out DIR]",
        "course build: error: unrecognized arguments: --bogus",
    ]


def test_every_command_has_a_description_and_named_metavars() -> None:
    _, commands = command_line([])
    for name, command in commands.choices.items():
        assert command.description, f"`course {name} --help` has no description"
        usage = command.format_usage()
        # Every value is named for what it holds: no argparse-made OUT, PORT, EMAIL from dest.
        for action in command._actions:
            if action.option_strings and action.nargs != 0:
                named = action.metavar or action.choices
                assert named, f"course {name} {action.option_strings[0]}: no metavar"
        assert " email" not in usage, usage
    assert "EMAIL" in commands.choices["unsubscribe"].format_usage()
    assert "--out DIR" in commands.choices["build"].format_usage()
    assert "--port PORT" in commands.choices["serve"].format_usage()


def test_unsubscribe_and_resubscribe_are_idempotent(project: Path) -> None:
    assert run(project, "send", "--now", "2026-03-02T09:00Z").returncode == 0
    first = run(project, "unsubscribe", "Ben@Example.com")
    again = run(project, "unsubscribe", "ben@example.com")
    assert (first.returncode, again.returncode) == (0, 0), again.stderr
    assert first.stdout.strip() == "Ben@example.com: unsubscribed"
    assert again.stdout.strip() == "ben@example.com: already suppressed; nothing changed"
    back = run(project, "resubscribe", "ben@example.com")
    back_again = run(project, "resubscribe", "ben@example.com")
    assert (back.returncode, back_again.returncode) == (0, 0), back_again.stderr
    assert "active again" in back.stdout
    assert back_again.stdout.strip() == "ben@example.com: already active; nothing changed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("unsubscribe", "not-an-email"),
            "course: error: unsubscribe: 'not-an-email': invalid email address: "
            "An email address must have an @-sign.",
        ),
        (
            ("unsubscribe", "ben@example.com\nbcc@example.org"),
            "course: error: unsubscribe: 'ben@example.com\\nbcc@example.org' contains a "
            "control character (a line break?)",
        ),
        (
            ("resubscribe", "ben@@example.com"),
            "course: error: resubscribe: 'ben@@example.com': invalid email address: "
            "The part after the @-sign contains invalid characters: '@'.",
        ),
        (
            ("status", "--subscriber", "ben at example.com"),
            "course: error: --subscriber: 'ben at example.com': invalid email address: "
            "An email address must have an @-sign.",
        ),
        (
            ("send-test", "--day", "1", "--to", "you@localhost"),
            "course: error: --to: 'you@localhost': invalid email address: The part "
            "after the @-sign is not valid. It should have a period.",
        ),
    ],
)
def test_a_bad_typed_address_is_one_line_and_writes_nothing(
    project: Path, args: tuple[str, ...], message: str
) -> None:
    result = run(project, *args)
    assert result.returncode == 1
    assert result.stderr.strip() == message
    assert not (project / "state").exists()


ADDRESSES = [
    "ann@example.com",
    "Ann.Lee@EXAMPLE.com",
    "  ben@example.com ",
    "user@bücher.example",
    "user@xn--bcher-kva.example",
    "zoë@example.com",
    "postmaster@example.com",
    "dev+course@sub.example.org",
]


@pytest.mark.parametrize("typed", ADDRESSES)
def test_typed_addresses_are_normalised_exactly_as_the_csv_does(typed: str) -> None:
    csv = f"email\n{typed}\n"
    (row,) = parse_subscribers(csv, source="t.csv").subscribers
    assert operator_address(typed, "--to") == row.email


def test_idna_and_unicode_spellings_are_one_address() -> None:
    assert operator_address("user@xn--bcher-kva.example", "x") == "user@bücher.example"
    assert operator_address("user@BÜCHER.example", "x") == "user@bücher.example"


@pytest.mark.parametrize(
    "typed", ["", "plain", "a@b", "a@example.com\r", "a@example.com\x00", "<a@example.com>"]
)
def test_typed_addresses_the_csv_would_reject_are_refused(typed: str) -> None:
    with pytest.raises(TypedAddressError):
        operator_address(typed, "--to")


def test_the_readme_command_table_lists_every_command() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    table = section.split("| command | what it does |", 1)[1].split("\n\n", 1)[0]
    _, commands = command_line([])
    for name in commands.choices:
        assert f"`course {name}" in table, f"`course {name}` is missing from the command table"
