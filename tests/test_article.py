"""Tests for course.article: the shipped article, other listicles, malformed input, encodings."""

from __future__ import annotations

import dataclasses
import itertools
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from course.article import load_article, parse_article
from course.content import Block, BulletList, Course, Paragraph, Quote, Section
from course.errors import ArticleError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "examples" / "why-he-pushes-you-away.txt"
DATA = Path(__file__).resolve().parent / "data"
SOURCE = "why-he-pushes-you-away.txt"

TITLE = "11 reasons why he pushes you away when he loves you (and what to do about it)"
REASONS_HEADING = "Why do guys push you away when they love you? 11 reasons"
ACTION_HEADING = "What to do when he’s pushing you away?"
CLOSING_HEADING = "Can a relationship coach help you too?"
SHIPPED_TITLES = [
    "He’s stressed, busy, and preoccupied",
    "He’s scared of his feelings",
    "Want advice for your unique situation?",
    "He’s scared of commitment",
    "It’s moving too fast",
    "You’re leaving the honeymoon phase",
    "He’s having doubts",
    "He’s insecure",
    "He didn’t learn how to be in a relationship",
    "He’s been burned in the past",
    "You’ve changed",
    "Don’t jump to conclusions, ask him what’s going on",
    "Trigger his hero instinct",
    "Don’t try to “fix” him",
    "Focus on yourself",
]


def shipped_text() -> str:
    """The shipped article as text."""
    return SHIPPED.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def shipped() -> Course:
    """The shipped article, parsed."""
    return load_article(SHIPPED)


def normalise(text: str) -> str:
    """Whitespace runs (NBSP included) collapsed to one space."""
    return " ".join(text.split())


def block_texts(blocks: tuple[Block, ...]) -> Iterator[str]:
    """The text of each paragraph and quote, and of each bullet."""
    for block in blocks:
        if isinstance(block, BulletList):
            yield from block.items
        else:
            yield block.text


def all_blocks(course: Course) -> Iterator[Block]:
    """Every block of the course, wherever it sits."""
    yield from course.disclosure
    yield from course.welcome
    for lesson in course.lessons:
        yield from lesson.blocks
    for section in course.closing:
        yield from section.blocks


def texts(blocks: tuple[Block, ...]) -> list[str]:
    """The blocks' texts as a list, for comparing with what the article says."""
    return list(block_texts(blocks))


def parse_error(text: str, source: str = SOURCE) -> str:
    """The message of the ArticleError that parsing `text` raises."""
    with pytest.raises(ArticleError) as caught:
        parse_article(text, source=source)
    return str(caught.value)


# The shipped article


def test_shipped_article_has_the_fifteen_titles_as_written(shipped: Course) -> None:
    assert [lesson.title for lesson in shipped.lessons] == SHIPPED_TITLES


def test_shipped_article_gives_eleven_reasons_then_four_actions(shipped: Course) -> None:
    assert shipped.days == 15
    assert [lesson.day for lesson in shipped.lessons] == list(range(1, 16))
    assert [lesson.kind for lesson in shipped.lessons] == ["reason"] * 11 + ["action"] * 4
    assert [lesson.number for lesson in shipped.lessons] == [*range(1, 12), *range(1, 5)]


def test_shipped_article_title_and_headings(shipped: Course) -> None:
    assert shipped.title == TITLE
    assert shipped.reasons_heading == REASONS_HEADING
    assert shipped.action_heading == ACTION_HEADING
    assert shipped.source == str(SHIPPED)


def test_shipped_article_disclosure_and_welcome(shipped: Course) -> None:
    assert shipped.disclosure == (
        Paragraph(
            "We sometimes include products we think are useful for our readers. If you buy "
            "through links on this page, we may earn a small commission. "
            "Read our affiliate disclosure.",
            3,
        ),
    )
    assert [block.line for block in shipped.welcome] == [5, 7, 9, 11, 13]
    assert texts(shipped.welcome)[0] == (
        "Have you noticed some alarming signs your man is withdrawing from you?"
    )
    assert texts(shipped.welcome)[-1] == (
        "This article will help you get to the bottom of what is really going on "
        "and what to do about it."
    )


def test_shipped_article_closing_sections(shipped: Course) -> None:
    coach, footer = shipped.closing
    assert (coach.heading, coach.line) == (CLOSING_HEADING, 268)
    assert texts(coach.blocks)[:2] == [
        "If you want specific advice on your situation, it can be very helpful to speak "
        "to a relationship coach.",
        "I know this from personal experience…",
    ]
    assert texts(coach.blocks)[-1].startswith("The above link will give you $50 off")
    assert len(coach.blocks) == 8
    assert footer == Section(
        None,
        (
            Paragraph(
                "Did you like our article? Like me on Facebook to see more articles like "
                "this in your feed.",
                286,
            ),
        ),
        286,
    )


def test_shipped_article_standalone_lines_stay_in_their_lesson(shipped: Course) -> None:
    assert "Well, yes and no." in texts(shipped.lessons[3].blocks)
    assert texts(shipped.lessons[12].blocks)[-1] == "Here’s the link again."
    assert texts(shipped.lessons[14].blocks)[-1].startswith("This isn’t to try and make him")


def test_shipped_article_every_paragraph_lands_exactly_once(shipped: Course) -> None:
    paragraphs: list[str] = []
    headings: list[str] = []
    raw_lines = shipped_text().splitlines()
    for is_blank, run in itertools.groupby(raw_lines, key=lambda line: not line.strip()):
        lines = [normalise(line) for line in run]
        if is_blank:
            continue
        if all(line.startswith("•") for line in lines):
            paragraphs.extend(normalise(line.removeprefix("•")) for line in lines)
        elif len(lines) == 1 and (
            re.fullmatch(r"\d+\) .+", lines[0])
            or lines[0] in {TITLE, REASONS_HEADING, ACTION_HEADING, CLOSING_HEADING}
        ):
            headings.append(lines[0])
        else:
            paragraphs.append(" ".join(lines))

    placed = [normalise(text) for block in all_blocks(shipped) for text in block_texts((block,))]
    assert Counter(placed) == Counter(paragraphs)
    stored_headings = [
        shipped.title,
        shipped.reasons_heading,
        *(f"{lesson.number}) {lesson.title}" for lesson in shipped.lessons[:11]),
        shipped.action_heading,
        *(f"{lesson.number}) {lesson.title}" for lesson in shipped.lessons[11:]),
        *(section.heading for section in shipped.closing if section.heading),
    ]
    assert headings == stored_headings


def test_shipped_article_keeps_bullets_as_lists(shipped: Course) -> None:
    reason_9 = shipped.lessons[8].blocks[-1]
    action_2 = shipped.lessons[12].blocks[5]
    assert isinstance(reason_9, BulletList)
    assert isinstance(action_2, BulletList)
    assert len(reason_9.items) == 11
    assert (reason_9.items[0], reason_9.items[-1], reason_9.line) == (
        "avoid emotional closeness in relationships",
        "be overly focused on their own needs and comfort",
        169,
    )
    assert action_2.items == (
        "Asking for his help",
        "Supporting his goals and dreams",
        "Letting him know he makes you happy",
        "Showing your appreciation for what he does for you",
    )
    bullet_lists = [block for block in all_blocks(shipped) if isinstance(block, BulletList)]
    assert bullet_lists == [reason_9, action_2]


def test_shipped_article_perpetua_neo_quote_is_a_quote(shipped: Course) -> None:
    quotes = [block for block in all_blocks(shipped) if isinstance(block, Quote)]
    assert len(quotes) == 1
    assert quotes[0] in shipped.lessons[7].blocks
    assert quotes[0].line == 149
    assert quotes[0].text.startswith("“We are run by stories")
    assert quotes[0].text.endswith("‘I’m unlovable.'”")


def test_shipped_article_strips_trailing_whitespace(shipped: Course) -> None:
    # The article ends several lines with a no-break space and a space.
    assert texts(shipped.lessons[2].blocks)[0] == "Last year my relationship reached a dead-end."
    assert all(
        text == text.strip() for block in all_blocks(shipped) for text in block_texts((block,))
    )


def test_shipped_article_line_numbers_point_into_the_file(shipped: Course) -> None:
    raw_lines = shipped_text().splitlines()
    for lesson in shipped.lessons:
        assert raw_lines[lesson.line - 1] == f"{lesson.number}) {lesson.title}"
    for block in all_blocks(shipped):
        first = next(block_texts((block,)))
        assert normalise(raw_lines[block.line - 1]).removeprefix("• ").startswith(first[:20])


def test_parsing_the_shipped_article_is_fast() -> None:
    text = shipped_text()
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        parse_article(text, source=SOURCE)
        timings.append(time.perf_counter() - started)
    assert min(timings) < 0.05


def test_parse_article_is_pure() -> None:
    text = shipped_text()
    assert parse_article(text, source=SOURCE) == parse_article(text, source=SOURCE)


# Encodings and line endings


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda text: "\ufeff" + text.replace("\n", "\r\n"), id="bom-crlf"),
        pytest.param(lambda text: text.replace("\n", "\r"), id="lone-cr"),
    ],
)
def test_line_endings_and_bom_give_the_same_course(variant: Callable[[str], str]) -> None:
    text = shipped_text()
    expected = parse_article(text, source="lf.txt")
    assert parse_article(variant(text), source="other.txt") == dataclasses.replace(
        expected, source="other.txt"
    )


def test_load_article_strips_the_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + shipped_text().replace("\n", "\r\n").encode())
    assert load_article(path) == dataclasses.replace(load_article(SHIPPED), source=str(path))


def test_load_article_refuses_non_utf8_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("Title\r\n\r\n1) Caf\u00e9 au lait\r\n".encode("latin-1"))
    with pytest.raises(ArticleError) as caught:
        load_article(path)
    assert str(caught.value) == f"{path}: line 3: not UTF-8 (byte 0xe9)"


def test_load_article_reports_an_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.txt"
    with pytest.raises(ArticleError) as caught:
        load_article(path)
    assert str(caught.value).startswith(f"{path}: cannot read the article: ")


# Other listicles


def test_plain_listicle_of_five_reasons_and_three_steps() -> None:
    course = load_article(DATA / "five-reasons-three-steps.txt")
    assert course.title == "Why he went quiet: 5 reasons (and 3 things to try)"
    assert course.reasons_heading == "Is he pulling away? 5 signs to watch for"
    assert course.action_heading == "What can you do about it?"
    assert [
        (lesson.day, lesson.kind, lesson.number, lesson.title) for lesson in course.lessons
    ] == [
        (1, "reason", 1, "He is tired"),
        (2, "reason", 2, "Is it really about you?"),
        (3, "reason", 3, "He needs room"),
        (4, "reason", 4, "Old habits"),
        (5, "reason", 5, "He is unsure"),
        (6, "action", 1, "Ask him gently"),
        (7, "action", 2, "Give him time"),
        (8, "action", 3, "Look after yourself"),
    ]
    assert texts(course.disclosure) == [
        "This post contains affiliate links. We may earn a commission at no cost to you."
    ]
    assert course.welcome == (
        Paragraph("He used to text every morning. Now the mornings are silent.", 5),
        Paragraph("Here is what may be going on.", 8),
    )


def test_plain_listicle_blocks() -> None:
    lessons = load_article(DATA / "five-reasons-three-steps.txt").lessons
    assert lessons[0].blocks[0] == Paragraph("Long weeks drain anyone.", 14)
    assert lessons[2].blocks == (
        Paragraph("Sound familiar?", 24),
        Paragraph("Everyone needs some time alone.", 26),
        Quote('"Space is not rejection; it is how many people recharge."', 28),
    )
    assert lessons[3].blocks[1] == BulletList(
        (
            "keeping feelings private",
            "solving problems alone, without asking for help",
            "going quiet under stress",
        ),
        34,
    )


def test_plain_listicle_closing() -> None:
    course = load_article(DATA / "five-reasons-three-steps.txt")
    assert course.lessons[-1].blocks == (Paragraph("See your friends.", 55),)
    assert course.closing == (
        Section(
            "Final thoughts",
            (Paragraph("Quiet spells pass.", 59), Paragraph("Most of them, anyway.", 61)),
            57,
        ),
        Section(None, (Paragraph("Enjoyed this? Share it with a friend.", 63),), 63),
    )


def test_markdown_listicle_of_four_reasons_and_two_steps() -> None:
    course = load_article(DATA / "four-reasons-two-steps.md")
    assert course.title == "4 reasons your plants keep dying"
    assert course.reasons_heading == "Why do houseplants die? 4 reasons"
    assert course.action_heading == "What to do about it"
    assert [
        (lesson.day, lesson.kind, lesson.number, lesson.title) for lesson in course.lessons
    ] == [
        (1, "reason", 1, "Too much water"),
        (2, "reason", 2, "Too little light"),
        (3, "reason", 3, "The wrong pot"),
        (4, "reason", 4, "Pests"),
        (5, "action", 1, "Check the soil before watering"),
        (6, "action", 2, "Rotate the plant weekly"),
    ]
    assert course.disclosure == (
        Paragraph("*Disclosure:* we may earn a commission from links on this page.", 3),
    )
    assert course.welcome == (Paragraph("Houseplants are easy to love and easy to kill.", 5),)


def test_markdown_listicle_blocks() -> None:
    lessons = load_article(DATA / "four-reasons-two-steps.md").lessons
    assert lessons[0].blocks == (
        Paragraph("Roots need air as well as water.", 12),
        Quote("Overwatering kills more houseplants than neglect does.", 14),
        Paragraph("Signs of overwatering:", 17),
        BulletList(("yellow leaves", "soft stems", "a musty smell"), 19),
    )
    # A heading inside an item and a lone numbered line are text, not new items.
    assert lessons[1].blocks == (
        Paragraph("A note on windows", 25),
        Paragraph("1. North-facing windows give the least light.", 27),
    )
    # Text between the action heading and step 1 opens step 1.
    assert lessons[4].blocks == (
        Paragraph("Two habits fix most problems.", 39),
        Paragraph("Push a finger into the soil.", 43),
    )


def test_markdown_listicle_closing() -> None:
    course = load_article(DATA / "four-reasons-two-steps.md")
    assert course.closing == (
        Section("Conclusion", (Paragraph("Healthy plants need little.", 51),), 49),
        Section(None, (Paragraph("Did you like this guide? Share it with a friend.", 55),), 55),
    )


def test_lines_join_into_paragraphs_and_bullets_without_blank_lines() -> None:
    text = (
        "Title\n\n1) Item\n\nWays include:\n"
        "  • one\n    still one\n• two\nAfter the list,\nstill after.\n"
    )
    assert parse_article(text, source="x.txt").lessons[0].blocks == (
        Paragraph("Ways include:", 5),
        BulletList(("one still one", "two"), 6),
        Paragraph("After the list, still after.", 9),
    )


def test_only_a_wholly_quoted_paragraph_is_a_quote() -> None:
    text = "Title\n\n1) Item\n\n“A,” he said, “b.”\n\n“One quotation.”\n"
    assert parse_article(text, source="x.txt").lessons[0].blocks == (
        Paragraph("“A,” he said, “b.”", 5),
        Quote("“One quotation.”", 7),
    )


def test_pure_listicle_without_action_steps() -> None:
    course = load_article(DATA / "pure-listicle.txt")
    assert [(lesson.kind, lesson.number, lesson.title) for lesson in course.lessons] == [
        ("reason", 1, "They plan"),
        ("reason", 2, "They rest"),
        ("reason", 3, "They say no"),
    ]
    assert (course.reasons_heading, course.action_heading, course.closing) == ("", "", ())
    assert course.welcome == (Paragraph("Some people never seem rushed.", 3),)


def test_numbering_restart_without_heading_starts_the_actions() -> None:
    course = load_article(DATA / "restart-without-heading.txt")
    assert [(lesson.day, lesson.kind, lesson.number) for lesson in course.lessons] == [
        (1, "reason", 1),
        (2, "reason", 2),
        (3, "action", 1),
        (4, "action", 2),
    ]
    assert course.action_heading == ""
    assert course.lessons[1].blocks == (Paragraph("Also because.", 9),)


# Malformed articles


def test_gap_in_the_numbering() -> None:
    text = shipped_text().replace("\n5) It’s moving", "\n6) It’s moving")
    assert parse_error(text) == (
        "why-he-pushes-you-away.txt: line 87: expected item 5, found 6) It’s moving too fast"
    )


def test_repeat_in_the_numbering() -> None:
    text = shipped_text().replace("\n5) It’s moving", "\n4) It’s moving")
    assert parse_error(text) == (
        "why-he-pushes-you-away.txt: line 87: expected item 5, found 4) It’s moving too fast"
    )


def test_heading_count_must_match_the_list() -> None:
    text = shipped_text()
    reason_11 = text.index("11) You’ve changed")
    text = text[:reason_11] + text[text.index(ACTION_HEADING) :]
    assert parse_error(text) == (
        "why-he-pushes-you-away.txt: line 15: heading says 11 reasons but the list has 10 items"
    )


def test_action_heading_count_must_match_the_steps() -> None:
    text = (DATA / "four-reasons-two-steps.md").read_text(encoding="utf-8")
    text = text.replace("## What to do about it", "## 3 steps to take")
    assert parse_error(text, "plants.md") == (
        "plants.md: line 37: heading says 3 steps but the list has 2 items"
    )


def test_gap_in_the_action_steps_names_the_marker_as_written() -> None:
    text = (DATA / "five-reasons-three-steps.txt").read_text(encoding="utf-8")
    text = text.replace("3. Look after yourself", "4. Look after yourself")
    assert parse_error(text, "quiet.txt") == (
        "quiet.txt: line 53: expected item 3, found 4. Look after yourself"
    )


def test_a_third_list_is_refused() -> None:
    text = (DATA / "restart-without-heading.txt").read_text(encoding="utf-8")
    assert parse_error(text + "\n1) Third list\n", "fixes.txt") == (
        "fixes.txt: line 19: expected item 3, found 1) Third list"
    )


def test_no_numbered_items() -> None:
    with pytest.raises(ArticleError) as caught:
        load_article(DATA / "no-items.txt")
    assert str(caught.value) == (
        f'{DATA / "no-items.txt"}: no numbered items found (expected lines like "1) Title")'
    )


def test_empty_article() -> None:
    assert parse_error(" \n\r\n\t\n", "empty.txt") == "empty.txt: the article is empty"
