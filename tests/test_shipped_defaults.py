"""The shipped schedule.yaml and the embedded defaults tell one story (issue 12, item 12)."""

from __future__ import annotations

import copy
import dataclasses
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from conftest import REPO
from support import run_course

from course.config import Settings, parse_settings

SHIPPED = REPO / "schedule.yaml"
# Maps whose entries are the operator's own data: the map as a whole differs or not.
WHOLE = {("course", "links"), ("course", "edits")}


def leaves(node: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in node.items():
        here = (*path, str(key))
        if isinstance(value, dict) and here not in WHOLE:
            yield from leaves(value, here)
        else:
            yield here


def settled(text: str) -> Settings:
    return dataclasses.replace(parse_settings(text, source=SHIPPED), warnings=())


def differs_from_default(data: dict[str, Any], path: tuple[str, ...]) -> bool:
    """Whether leaving this key out (so the default applies) changes the settings."""
    without = copy.deepcopy(data)
    node = without
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return settled(yaml.safe_dump(without, allow_unicode=True)) != settled(yaml.safe_dump(data))


def key_lines(lines: list[str]) -> dict[tuple[str, ...], int]:
    """Each key path of the YAML text -> the index of the line that sets it."""
    found: dict[tuple[str, ...], int] = {}
    stack: list[tuple[int, str]] = []
    for number, line in enumerate(lines):
        stripped = line.lstrip()
        match = re.match(r'("[^"]*"|[^\s#"-][^:]*):(\s|$)', stripped)
        if match is None:
            continue
        indent = len(line) - len(stripped)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match[1].strip('"')))
        found[tuple(key for _, key in stack)] = number
    return found


def comment_for(lines: list[str], index: int) -> str:
    """A key's trailing comment and the comment lines right above it."""
    notes = [lines[index].partition(" #")[2]]
    above = index - 1
    while above >= 0 and lines[above].strip().startswith("#"):
        notes.append(lines[above])
        above -= 1
    return " ".join(notes)


def test_every_difference_from_the_embedded_defaults_is_commented() -> None:
    text = SHIPPED.read_text()
    data = yaml.safe_load(text)
    lines = text.splitlines()
    where = key_lines(lines)
    differing = [path for path in leaves(data) if differs_from_default(data, path)]
    assert differing, "the shipped file should show off a few settings"
    for path in differing:
        comment = comment_for(lines, where[path])
        assert "default" in comment.lower(), (
            f"schedule.yaml: {'.'.join(path)} differs from the embedded default; "
            "its comment should say what the default is"
        )


def test_the_header_promises_what_the_file_keeps() -> None:
    assert "the embedded defaults\n# except where a comment says otherwise" in SHIPPED.read_text()


def test_a_call_to_action_repeated_across_lessons_is_warned_about_once(project: Path) -> None:
    (project / "schedule.yaml").unlink()  # the embedded defaults map no links
    result: subprocess.CompletedProcess[str] = run_course(project, "build")
    assert result.returncode == 0, result.stderr
    warnings = result.stderr.splitlines()
    disclosure = [w for w in warnings if "'Read our affiliate disclosure'" in w]
    assert disclosure == [
        "course: warning: 15 lessons (days 1-15): call to action has no link: "
        "'Read our affiliate disclosure'; map it under course.links in schedule.yaml"
    ]
    assert len(warnings) == len(set(warnings)) <= 8
    assert "course: warning: day 3: call to action has no link: 'Click here to check out" in (
        result.stderr
    )
