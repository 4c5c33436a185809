"""Structural checks on the (edited) course: what `course build` reports.

An empty or near-empty lesson fails the build, since nobody should get an email that
says nothing; the operator adds text in the article or omits the item in course.edits.
The rest are warnings: a title too long for a subject line, a lesson far longer or
shorter than the others (text that belongs elsewhere, or text that went missing).
"""

from __future__ import annotations

from collections.abc import Iterable

from course.article.shapes import count_words
from course.content import CodeBlock, Course, Image, Lesson, block_texts
from course.errors import ArticleError

NEAR_EMPTY_WORDS = 5  # fewer words than this and a lesson says nothing
IMAGE_WORDS = 5  # an image says at least this much
MAX_TITLE_CHARS = 100
OUTLIER_RATIO = 4
MIN_LESSONS_FOR_OUTLIERS = 5


def lesson_words(lesson: Lesson) -> int:
    words = 0
    for block in lesson.blocks:
        if isinstance(block, Image):
            words += IMAGE_WORDS
        elif isinstance(block, CodeBlock):
            words += count_words(block.text)
        else:
            words += sum(count_words(text) for text in block_texts(block))
    return words


def check_lessons(course: Course) -> None:
    """Refuse a course with an empty or near-empty lesson, naming them and the fixes."""
    thin = [lesson for lesson in course.lessons if lesson_words(lesson) < NEAR_EMPTY_WORDS]
    if not thin:
        return
    described = "; ".join(
        f"day {lesson.day} (line {lesson.line}, {lesson.title!r}): "
        + ("no text" if not lesson.blocks else f"{lesson_words(lesson)} words")
        for lesson in thin[:5]
    )
    more = f" and {len(thin) - 5} more" if len(thin) > 5 else ""
    first = thin[0]
    raise ArticleError(
        f"{course.source}: {len(thin)} {'lesson is' if len(thin) == 1 else 'lessons are'} "
        f"empty or nearly so: {described}{more}. Give each its text in the article (under its "
        "title, before the next item), or drop it in schedule.yaml with course.edits: omit: "
        f"[{{item: {_item_ref(course, first)}}}], or give it a body with course.edits: lesson: "
        f"{{{_item_ref(course, first)}: FILE.md}}"
    )


def structural_warnings(course: Course) -> list[str]:
    warnings = []
    for lesson in course.lessons:
        if len(lesson.title) > MAX_TITLE_CHARS:
            warnings.append(
                f"{course.source}: line {lesson.line}: day {lesson.day}'s title is "
                f"{len(lesson.title)} characters (a subject line shows about 60); shorten it "
                f"with course.edits: retitle: {{{_item_ref(course, lesson)}: …}}"
            )
    words = [lesson_words(lesson) for lesson in course.lessons]
    if len(words) >= MIN_LESSONS_FOR_OUTLIERS:
        median = median_of(words)
        for lesson, count in zip(course.lessons, words, strict=True):
            if count < NEAR_EMPTY_WORDS:
                continue
            if count > median * OUTLIER_RATIO:
                warnings.append(
                    f"{course.source}: line {lesson.line}: day {lesson.day} ({lesson.title!r}) "
                    f"has {count} words, over {OUTLIER_RATIO}× the median {median:g}; does it "
                    "hold text that belongs to another item or to the closing?"
                )
            elif count * OUTLIER_RATIO < median:
                warnings.append(
                    f"{course.source}: line {lesson.line}: day {lesson.day} ({lesson.title!r}) "
                    f"has {count} words, under a quarter of the median {median:g}; is some of "
                    "its text missing?"
                )
    return warnings


def median_of(values: Iterable[int]) -> float:
    """The median (statistics.median costs more to import than a build takes here)."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[middle])
    return (ordered[middle - 1] + ordered[middle]) / 2


def _item_ref(course: Course, lesson: Lesson) -> str:
    """How course.edits names the item: its place among the article's items."""
    return str(course.lessons.index(lesson) + 1) if not lesson.edits else f'"{lesson.title}"'
