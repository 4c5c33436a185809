"""Hostile values in schedule.yaml, through the real `course` command: one line, exit 1."""

from __future__ import annotations

import email
import email.policy
import time
from email.message import EmailMessage
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


def test_placeholder_look_alikes_in_the_article_stay_plain_text(project: Path) -> None:
    article = project / "examples" / "why-he-pushes-you-away.txt"
    text = article.read_text()
    old = "Before your mind races off"
    article.write_text(text.replace(old, "Marker __DC_SLOT_0__ and __DC_SLOT_99__. " + old, 1))
    assert run_course(project, "build", "--out", "out").returncode == 0
    result = run_course(project, "send", "--now", "2026-03-02T12:00:00+00:00")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    messages = [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in (project / "state" / "inbox" / "new").iterdir()
    ]
    assert len(messages) == 7
    for message in messages:
        assert isinstance(message, EmailMessage)
        body = message.get_body(("plain",))
        assert body is not None
        assert "Marker __DC_SLOT_0__ and __DC_SLOT_99__." in body.get_content()
    built = (project / "out" / "day-01.txt").read_text()
    assert "Marker __DC_SLOT_0__ and __DC_SLOT_99__." in built
