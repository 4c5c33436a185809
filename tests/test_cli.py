"""The `course` command as an operator runs it: files, tables, one-line errors."""

from __future__ import annotations

import argparse
import email
import email.policy
import subprocess
from pathlib import Path

import pytest
from support import run_course

from course.cli import COMMAND_MODULES, main, parser


def run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point in `project`, as an operator would."""
    return run_course(project, *args)


def test_build_writes_every_day_and_an_index(project: Path) -> None:
    result = run(project, "build", "--out", "out")
    assert result.returncode == 0, result.stderr
    out = project / "out"
    names = sorted(p.name for p in out.iterdir())
    expected = [f"day-{d:02d}.{ext}" for d in range(1, 16) for ext in ("eml", "html", "txt")]
    assert names == sorted([*expected, "index.html"])
    index = (out / "index.html").read_text()
    assert all(f'href="day-{d:02d}.html"' in index for d in range(1, 16))
    assert "Built 15 lessons into out/" in result.stdout


def test_built_eml_parses_back(project: Path) -> None:
    assert run(project, "build", "--out", "out").returncode == 0
    data = (project / "out" / "day-07.eml").read_bytes()
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["Date"]
    assert message["Message-ID"]
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_lessons_prints_a_table(project: Path) -> None:
    result = run(project, "lessons")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["day", "kind", "title", "subject", "preheader", "html", "edits"]
    assert len(lines) == 16
    assert lines[14].startswith("14   action  Don’t try to “fix” him")
    # The shipped edits show where they changed the course.
    assert lines[1].rstrip().endswith("replaced 'This article will help you'")
    assert "omitted paragraphs containing 'Like me on" in lines[15]


def test_unlinked_calls_to_action_are_warned_about(project: Path) -> None:
    config = project / "schedule.yaml"
    text = config.read_text()
    start = text.index("  links:")
    end = text.index("\nsender:")
    config.write_text(text[:start] + "  links: {}\n" + text[end:])
    result = run(project, "build", "--out", "out")
    assert result.returncode == 0
    assert (
        "course: warning: day 3: call to action has no link: 'Click here to check out "
        "Relationship Hero and see if they can help you, too'; map it under course.links "
        "in schedule.yaml"
    ) in result.stderr


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ('send_time: "08:00"', 'send_time: "25:00"'),
            "course: error: {config}: schedule.send_time: expected HH:MM, got '25:00'",
        ),
        (
            ("backend: inbox", "backend: pigeon"),
            "course: error: {config}: delivery.backend: expected one of inbox, file, memory, smtp, "
            "got 'pigeon'",
        ),
        (
            ("tick_seconds: 60", "tick_secs: 60"),
            "course: error: {config}: schedule.tick_secs: unknown key; "
            "did you mean 'tick_seconds'?",
        ),
        (
            ("article: examples/why", "article: examples/missing-why"),
            "course: error: examples/missing-why-he-pushes-you-away.txt: cannot read the "
            "article: No such file or directory",
        ),
    ],
)
def test_errors_are_one_line_without_traceback(
    project: Path, edit: tuple[str, str], message: str
) -> None:
    config = project / "schedule.yaml"
    config.write_text(config.read_text().replace(*edit))
    result = run(project, "build")
    assert result.returncode == 1
    expected = message.format(config=Path("schedule.yaml"), project=project)
    assert result.stderr.strip() == expected
    assert "Traceback" not in result.stderr


def test_broken_article_error_names_file_and_line(project: Path) -> None:
    article = project / "examples" / "why-he-pushes-you-away.txt"
    article.write_text(
        article.read_text(encoding="utf-8").replace(
            "5) It’s moving too fast", "6) It’s moving too fast"
        ),
        encoding="utf-8",
    )
    result = run(project, "lessons")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "course: error: examples/why-he-pushes-you-away.txt: line 87: expected item 5, "
        "found item 6: `6) It’s moving too fast`; a number is skipped, or the item before it "
        "lost its number or its blank line. Number the items in order in the article (or, if "
        "a new list starts here, number it from 1)"
    )


def test_main_returns_exit_code_in_process(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project)
    assert main(["lessons"]) == 0
    assert "Focus on yourself" in capsys.readouterr().out


def test_embedded_defaults_when_no_config(project: Path) -> None:
    (project / "schedule.yaml").unlink()
    result = run(project, "lessons")
    assert result.returncode == 0, result.stderr
    assert "Focus on yourself" in result.stdout


def test_every_command_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    top = parser([])
    commands = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(commands.choices) == sorted(["build", "lessons", *COMMAND_MODULES])
    for name in commands.choices:
        assert f"`course {name}" in readme, f"README does not document `course {name}`"
