"""The operator's edits (course.edits): omit, retitle, replace, lesson, welcome, closing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from course.article import parse_article
from course.build import build_course
from course.config import Settings, load_settings
from course.content import ListBlock
from course.edits import Edits, EditSource, apply_edits
from course.errors import CourseError
from course.render import lesson_label

SHIPPED_EDITS = re.compile(r"  edits:\n(?:    .*\n|      .*\n)+")


def with_edits(project: Path, edits: str) -> Settings:
    """schedule.yaml with `edits` (YAML under course.edits) in place of the shipped ones."""
    config = project / "schedule.yaml"
    block = "  edits:\n" + "".join(f"    {line}\n" for line in edits.strip("\n").splitlines())
    config.write_text(SHIPPED_EDITS.sub(block, config.read_text()))
    return load_settings(config)


def error_of(settings: Settings) -> str:
    with pytest.raises(CourseError) as caught:
        build_course(settings)
    return str(caught.value)


def test_the_shipped_course_is_edited_and_keeps_fifteen_days(project: Path) -> None:
    build = build_course(load_settings(project / "schedule.yaml"))
    assert len(build.lessons) == 15
    first, last = build.lesson(1).rendered, build.lesson(15).rendered
    assert "This course will help you get to the bottom" in first.html
    assert "This article" not in first.html + first.text
    assert "Facebook" not in last.html + last.text
    assert "Did you like our article" not in last.text
    assert "Can a relationship coach help you too?" in last.text
    # The advertisement stays: it is the article's third reason.
    assert build.lesson(3).rendered.subject == "Day 3 of 15: Want advice for your unique situation?"
    assert build.lesson(1).rendered.lesson.edits == ("replaced 'This article will help you'",)
    assert build.lesson(15).rendered.lesson.edits == (
        "omitted paragraphs containing 'Like me on Facebook'",
    )
    assert [p.rendered.lesson.edits for p in build.lessons[1:14]] == [()] * 13


@pytest.mark.parametrize(
    "reference", ["3", '"Want advice for your unique situation?"', '"reason 3"', '"Reason 3"']
)
def test_omitting_an_item_shortens_the_course(project: Path, reference: str) -> None:
    build = build_course(with_edits(project, f"omit:\n  - item: {reference}"))
    course = build.course
    assert course.days == 14
    assert build.lesson(3).rendered.subject == "Day 3 of 14: He’s scared of commitment"
    assert "Day 3 of 14" in build.lesson(3).rendered.text
    assert [lesson_label(course, lesson) for lesson in course.lessons[:3]] == [
        "Reason 1 of 10",
        "Reason 2 of 10",
        "Reason 3 of 10",
    ]
    assert course.lessons[2].edits == ("reason 4 in the article",)
    assert "10 reasons, then 4 things you can do" in " ".join(build.lesson(1).rendered.text.split())


def test_retitle_and_replace_reach_titles_bodies_and_subjects(project: Path) -> None:
    settings = with_edits(
        project,
        """
retitle:
  14: "Don't try to fix him"
replace:
  "relationship coach": "counsellor"
  "This article": "This course"
""",
    )
    build = build_course(settings)
    assert build.lesson(14).rendered.subject == "Day 14 of 15: Don't try to fix him"
    assert build.lesson(14).rendered.lesson.edits == ('retitled to "Don\'t try to fix him"',)
    everything = "".join(p.rendered.text for p in build.lessons)
    assert "relationship coach" not in everything
    assert "speak to a counsellor" in " ".join(build.lesson(15).rendered.text.split())
    assert "This course will help you" in " ".join(build.lesson(1).rendered.text.split())


def test_omit_paragraphs_drops_every_paragraph_with_the_phrase(project: Path) -> None:
    build = build_course(with_edits(project, 'omit:\n  - paragraphs: "relationship hero"'))
    everything = "".join(p.rendered.text for p in build.lessons)
    assert "Relationship Hero" not in everything
    assert build.lesson(3).rendered.lesson.edits == (
        "omitted paragraphs containing 'relationship hero'",
    )


def test_lesson_welcome_and_closing_from_markdown_files(project: Path) -> None:
    (project / "edits").mkdir()
    (project / "edits" / "day-3.md").write_text(
        "A word from us.\n\nIf you want help, **book a call** with "
        "[our coach](https://example.com/coach).\n",
        encoding="utf-8",
    )
    (project / "edits" / "welcome.md").write_text(
        "Welcome! For the next fifteen days, one short email a day.\n", encoding="utf-8"
    )
    (project / "edits" / "closing.md").write_text(
        "## Thank you\n\nWrite back and tell us how it went.\n", encoding="utf-8"
    )
    settings = with_edits(
        project,
        """
lesson:
  3: edits/day-3.md
welcome: edits/welcome.md
closing: edits/closing.md
""",
    )
    build = build_course(settings)
    day3 = build.lesson(3).rendered
    assert "<strong>book a call</strong>" in day3.html
    assert 'href="https://example.com/coach"' in day3.html
    assert "Last year my relationship" not in day3.text
    assert day3.lesson.edits == ("body from day-3.md",)
    first = build.lesson(1).rendered
    assert "Welcome! For the next fifteen days" in first.text
    assert "Have you noticed some alarming signs" not in first.text
    last = build.lesson(15).rendered
    assert "Write back and tell us how it went." in last.text
    assert "Can a relationship coach" not in last.text
    assert ">Thank you</" in last.html


def test_edits_can_live_in_a_file_of_their_own(project: Path) -> None:
    (project / "course-edits.yaml").write_text(
        'omit:\n  - item: "reason 3"\nretitle:\n  1: "Stress"\n', encoding="utf-8"
    )
    config = project / "schedule.yaml"
    config.write_text(SHIPPED_EDITS.sub("  edits: course-edits.yaml\n", config.read_text()))
    build = build_course(load_settings(config))
    assert build.course.days == 14
    assert build.lesson(1).rendered.subject == "Day 1 of 14: Stress"


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        (
            'omit:\n  - paragraphs: "Like me on MySpace"',
            "course.edits.omit[1]: no paragraph contains 'Like me on MySpace'; fix the phrase "
            "(as the course has it now) or remove this edit",
        ),
        (
            'replace:\n  "This essay": "This course"',
            "course.edits.replace.This essay: 'This essay' is nowhere in the course; fix the "
            "phrase (as the course has it now) or remove this edit",
        ),
        (
            'retitle:\n  "He is scared of comitment": "Fear"',
            "course.edits.retitle.He is scared of comitment: no item is called 'He is scared "
            "of comitment'; did you mean 'He’s scared of commitment'?",
        ),
        (
            "omit:\n  - item: 16",
            "course.edits.omit[1]: there is no item 16; the article has 15 items (numbered "
            "from 1 across all its lists)",
        ),
        (
            "lesson:\n  2: edits/missing.md",
            "course.edits.lesson.2: {project}/edits/missing.md does not exist; create it or "
            "fix the path",
        ),
        (
            "rename:\n  1: x",
            "course.edits.rename: unknown edit; expected one of omit, retitle, "
            "replace, lesson, welcome, closing",
        ),
    ],
)
def test_an_edit_that_matches_nothing_is_an_error_naming_it(
    project: Path, edits: str, message: str
) -> None:
    settings = with_edits(project, edits)
    assert error_of(settings) == f"{settings.source}: " + message.format(project=project)


def test_omitting_an_empty_lesson_lets_the_build_pass(project: Path) -> None:
    article = project / "examples" / "why-he-pushes-you-away.txt"
    text = article.read_text(encoding="utf-8")
    start = text.index("Whilst intimacy can be")
    end = text.index("3) Want advice")
    article.write_text(text[:start] + text[end:], encoding="utf-8")
    settings = load_settings(project / "schedule.yaml")
    message = error_of(settings)
    assert message.startswith(
        f"{article}: 1 lesson is empty or nearly so: day 2 (line 29, 'He’s scared of his "
        "feelings'): no text. Give each its text in the article"
    )
    assert "course.edits: omit: [{item: 2}]" in message
    edited = with_edits(
        project,
        """
replace:
  "This article will help you": "This course will help you"
omit:
  - item: 2
""",
    )
    assert build_course(edited).course.days == 14


def test_a_course_without_a_title_needs_a_name(project: Path) -> None:
    article = project / "examples" / "why-he-pushes-you-away.txt"
    text = article.read_text(encoding="utf-8")
    # A first line that is a long paragraph is no title.
    article.write_text("Okay so. " * 40 + "\n\n" + text.split("\n", 2)[2], encoding="utf-8")
    config = project / "schedule.yaml"
    config.write_text(
        config.read_text().replace('  name: "Why he pulls away: a 15-day course"\n', "")
    )
    settings = load_settings(config)
    assert error_of(settings) == (
        f"{config}: course.name: required, since the article has no title ({article} starts "
        "with no heading or short first line that could be one); set course.name, or give "
        "the article a title line"
    )


def test_omitting_a_nested_entry_keeps_the_others_at_their_depth(tmp_path: Path) -> None:
    course = parse_article(
        "# 2 tips\n\n## 1. One\n\n- a\n  - a.1 (sponsored)\n  - a.2\n- b\n\n## 2. Two\n\nText.\n",
        source="a.md",
    )
    edits = Edits(
        {"omit": [{"paragraphs": "sponsored"}]},
        EditSource(tmp_path / "schedule.yaml", "course.edits.", tmp_path),
    )
    block = apply_edits(course, edits).lessons[0].blocks[0]
    assert isinstance(block, ListBlock)
    assert (block.texts, block.levels) == (("a", "a.2", "b"), (0, 1, 0))
