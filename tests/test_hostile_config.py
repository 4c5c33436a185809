"""Hostile values in schedule.yaml, through the real `course` command: one line, exit 1."""

from __future__ import annotations

import time
from pathlib import Path

from support import run_course


def _edit(project: Path, old: str, new: str) -> None:
    config = project / "schedule.yaml"
    text = config.read_text()
    assert old in text
    config.write_text(text.replace(old, new, 1))


def test_a_course_name_cannot_add_a_header(project: Path) -> None:
    _edit(
        project,
        '  name: "Why he pulls away: a 15-day course"',
        '  name: "Course\\r\\nBcc: x@evil.test"',
    )
    for command in (("build", "--out", "out"), ("send",)):
        result = run_course(project, *command)
        assert result.returncode == 1
        assert result.stderr == (
            "course: error: schedule.yaml: course.name: expected one line of text without "
            "control characters, got 'Course\\r\\nBcc: x@evil.test'\n"
        )
    assert not (project / "state" / "inbox").exists()


def test_a_yaml_bomb_is_a_short_error_at_once(project: Path) -> None:
    anchors = ['&a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    anchors += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    _edit(project, "  tick_seconds: 60", f"  tick_seconds: [{', '.join(anchors)}]")
    started = time.monotonic()
    result = run_course(project, "build", "--out", "out")
    assert time.monotonic() - started < 10
    assert result.returncode == 1
    assert result.stderr.startswith("course: error: schedule.yaml: line ")
    assert "aliases expand this value to more than 100,000 items" in result.stderr
    assert len(result.stderr) < 300
