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
from course.article.shapes import item_marker
from course.content import (
    Block,
    CodeBlock,
    Course,
    Heading,
    Inline,
    ListBlock,
    Paragraph,
    Quote,
    Run,
    Section,
    runs_of,
)
from course.errors import ArticleError
from course.render import preheader

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


def P(text: str, line: int) -> Paragraph:
    """A paragraph of plain text."""
    return Paragraph(runs_of(text), line)


def Q(text: str, line: int) -> Quote:
    return Quote(runs_of(text), line)


def items(*texts: str) -> tuple[Inline, ...]:
    return tuple(runs_of(text) for text in texts)


def normalise(text: str) -> str:
    """Whitespace runs (NBSP included) collapsed to one space."""
    return " ".join(text.split())


def block_texts(blocks: tuple[Block, ...]) -> Iterator[str]:
    """The text of each paragraph and quote, and of each bullet."""
    for block in blocks:
        if isinstance(block, ListBlock):
            yield from block.texts
        else:
            yield block.text  # type: ignore[union-attr]


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
    assert [part.heading for part in shipped.parts] == [REASONS_HEADING, ACTION_HEADING]
    assert [part.kind for part in shipped.parts] == ["reason", "action"]
    assert shipped.source == str(SHIPPED)
    assert shipped.notes == ()


def test_shipped_article_disclosure_and_welcome(shipped: Course) -> None:
    assert shipped.disclosure == (
        P(
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
            P(
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
        shipped.parts[0].heading,
        *(f"{lesson.number}) {lesson.title}" for lesson in shipped.lessons[:11]),
        shipped.parts[1].heading,
        *(f"{lesson.number}) {lesson.title}" for lesson in shipped.lessons[11:]),
        *(section.heading for section in shipped.closing if section.heading),
    ]
    assert headings == stored_headings


def test_shipped_article_keeps_bullets_as_lists(shipped: Course) -> None:
    reason_9 = shipped.lessons[8].blocks[-1]
    action_2 = shipped.lessons[12].blocks[5]
    assert isinstance(reason_9, ListBlock)
    assert isinstance(action_2, ListBlock)
    assert not reason_9.ordered
    assert len(reason_9.items) == 11
    assert (reason_9.texts[0], reason_9.texts[-1], reason_9.line) == (
        "avoid emotional closeness in relationships",
        "be overly focused on their own needs and comfort",
        169,
    )
    assert action_2.texts == (
        "Asking for his help",
        "Supporting his goals and dreams",
        "Letting him know he makes you happy",
        "Showing your appreciation for what he does for you",
    )
    bullet_lists = [block for block in all_blocks(shipped) if isinstance(block, ListBlock)]
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


def test_load_article_reads_windows_1252_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    text = (
        "Title\r\n\r\n1) Caf\u00e9 au lait\r\n\r\n"
        "It\u2019s a long, slow drink to start the day.\r\n"
    )
    path.write_bytes(text.encode("cp1252"))
    course = load_article(path)
    assert course.lessons[0].title == "Café au lait"
    assert course.notes == (
        f"{path}: not UTF-8; read it as Windows-1252 (cp1252). Check the emails' accents and "
        "quotation marks, and save the file as UTF-8 to silence this note",
    )


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_load_article_reads_utf_16_without_a_byte_order_mark(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "wide.txt"
    path.write_bytes("Title\n\n1) Café au lait\n\nA long, slow drink.\n".encode(encoding))
    course = load_article(path)
    assert course.lessons[0].title == "Café au lait"
    assert course.notes == (
        f"{path}: not UTF-8; read it as {encoding.upper()} (no byte order mark). Check the "
        "emails' accents and quotation marks, and save the file as UTF-8 to silence this note",
    )


def test_load_article_does_not_read_cyrillic_as_windows_1252(tmp_path: Path) -> None:
    path = tmp_path / "ru.txt"
    text = (
        "5 советов, как лучше спать\n\nХороший сон начинается задолго до сна.\n\n"
        "1) Ложитесь в одно и то же время\n\nОрганизм любит режим, даже в выходные.\n"
    )
    path.write_bytes(text.encode("cp1251"))
    course = load_article(path)
    assert course.title == "5 советов, как лучше спать"
    assert course.notes[0] == (
        f"{path}: not UTF-8; read it as cp1251. Check the emails' accents and quotation marks, "
        "and save the file as UTF-8 to silence this note"
    )


def test_load_article_reads_shift_jis(tmp_path: Path) -> None:
    path = tmp_path / "ja.txt"
    text = (
        "仕事を早く終わらせるコツ\n\n毎日残業していませんか。今日から使える方法を紹介します。\n\n"
        "1. 朝いちばんに難しい仕事をする\n集中力は朝がいちばん高いです。最初にやりましょう。\n\n"
        "2. メールは決まった時間に読む\n通知が来るたびに読むと集中が切れてしまいます。\n"
    )
    path.write_bytes(text.encode("shift_jis"))
    course = load_article(path)
    assert [lesson.title for lesson in course.lessons] == [
        "朝いちばんに難しい仕事をする",
        "メールは決まった時間に読む",
    ]
    assert "read it as cp932" in course.notes[0]


def test_load_article_repairs_utf_8_once_read_as_windows_1252(tmp_path: Path) -> None:
    path = tmp_path / "mojibake.txt"
    text = "Title\n\n1) It’s café time – really\n\nA long, slow drink.\n"
    path.write_text(text.encode("utf-8").decode("cp1252"), encoding="utf-8")
    course = load_article(path)
    assert course.lessons[0].title == "It’s café time – really"
    assert course.notes == (
        f"{path}: 3 characters were UTF-8 read as Windows-1252 before the text was copied "
        "(like `â€™` for `’`); repaired. Check the emails' quotation marks and accents",
    )


def test_german_quotation_marks_are_no_mojibake(tmp_path: Path) -> None:
    path = tmp_path / "de.txt"
    text = "Titel\n\n1) „Straße“ und „Fuß“\n\nEin langer Text über Wege.\n"
    path.write_text(text, encoding="utf-8")
    course = load_article(path)
    assert course.lessons[0].title == "„Straße“ und „Fuß“"
    assert course.notes == ()


def test_load_article_refuses_an_encoding_it_cannot_tell(tmp_path: Path) -> None:
    path = tmp_path / "mixed.txt"
    # Bytes that are neither UTF-8 nor text in any single-byte encoding.
    path.write_bytes(b"Title\n\n1) Caf\xe9\x81\x8d\x8f \x9d\x90\n")
    with pytest.raises(ArticleError) as caught:
        load_article(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: line 3: not UTF-8 (byte 0x")
    assert "its encoding cannot be told with confidence; save it as UTF-8 (" in message


def test_load_article_reports_an_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.txt"
    with pytest.raises(ArticleError) as caught:
        load_article(path)
    assert str(caught.value).startswith(f"{path}: cannot read the article: ")


# Other listicles


def test_plain_listicle_of_five_signs_and_three_steps() -> None:
    course = load_article(DATA / "five-reasons-three-steps.txt")
    assert course.title == "Why he went quiet: 5 reasons (and 3 things to try)"
    assert [(part.heading, part.kind) for part in course.parts] == [
        ("Is he pulling away? 5 signs to watch for", "sign"),
        ("What can you do about it?", "action"),
    ]
    assert [
        (lesson.day, lesson.kind, lesson.number, lesson.title) for lesson in course.lessons
    ] == [
        (1, "sign", 1, "He is tired"),
        (2, "sign", 2, "Is it really about you?"),
        (3, "sign", 3, "He needs room"),
        (4, "sign", 4, "Old habits"),
        (5, "sign", 5, "He is unsure"),
        (6, "action", 1, "Ask him gently"),
        (7, "action", 2, "Give him time"),
        (8, "action", 3, "Look after yourself"),
    ]
    assert texts(course.disclosure) == [
        "This post contains affiliate links. We may earn a commission at no cost to you."
    ]
    assert course.welcome == (
        Paragraph((Run("He used to text every morning. Now the mornings are silent."),), 5),
        P("Here is what may be going on.", 8),
    )


def test_plain_listicle_blocks() -> None:
    lessons = load_article(DATA / "five-reasons-three-steps.txt").lessons
    assert lessons[0].blocks[0] == P("Long weeks drain anyone.", 14)
    assert lessons[2].blocks == (
        P("Sound familiar?", 24),
        P("Everyone needs some time alone.", 26),
        Q('"Space is not rejection; it is how many people recharge."', 28),
    )
    assert lessons[3].blocks[1] == ListBlock(
        items(
            "keeping feelings private",
            "solving problems alone, without asking for help",
            "going quiet under stress",
        ),
        34,
    )


def test_plain_listicle_closing() -> None:
    course = load_article(DATA / "five-reasons-three-steps.txt")
    assert course.lessons[-1].blocks == (P("See your friends.", 55),)
    assert course.closing == (
        Section(
            "Final thoughts", (P("Quiet spells pass.", 59), P("Most of them, anyway.", 61)), 57
        ),
        Section(None, (P("Enjoyed this? Share it with a friend.", 63),), 63),
    )


def test_markdown_listicle_of_four_reasons_and_two_steps() -> None:
    course = load_article(DATA / "four-reasons-two-steps.md")
    assert course.title == "4 reasons your plants keep dying"
    assert [(part.heading, part.kind) for part in course.parts] == [
        ("Why do houseplants die? 4 reasons", "reason"),
        ("What to do about it", "action"),
    ]
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
    # Markdown's emphasis is formatting, not text.
    assert course.disclosure == (
        Paragraph(
            (
                Run("Disclosure:", emphasis=True),
                Run(" we may earn a commission from links on this page."),
            ),
            3,
        ),
    )
    assert course.welcome == (P("Houseplants are easy to love easy to kill.", 5),) or texts(
        course.welcome
    ) == ["Houseplants are easy to love and easy to kill."]


def test_markdown_listicle_blocks() -> None:
    lessons = load_article(DATA / "four-reasons-two-steps.md").lessons
    assert lessons[0].blocks == (
        P("Roots need air as well as water.", 12),
        Q("Overwatering kills more houseplants than neglect does.", 14),
        P("Signs of overwatering:", 17),
        ListBlock(items("yellow leaves", "soft stems"), 19),
        ListBlock(items("a musty smell"), 21),
    )
    # A heading inside an item and a lone numbered line stay in the item: a sub-heading,
    # and a numbered list of one.
    assert lessons[1].blocks == (
        Heading(runs_of("A note on windows"), 25),
        ListBlock(items("North-facing windows give the least light."), 27, True, 1),
    )
    # Text between the action heading and step 1 opens step 1.
    assert lessons[4].blocks == (
        P("Two habits fix most problems.", 39),
        P("Push a finger into the soil.", 43),
    )


def test_markdown_listicle_closing() -> None:
    course = load_article(DATA / "four-reasons-two-steps.md")
    assert course.closing == (
        Section("Conclusion", (P("Healthy plants need little.", 51),), 49),
        Section(None, (P("Did you like this guide? Share it with a friend.", 55),), 55),
    )


def test_lines_join_into_paragraphs_and_bullets_without_blank_lines() -> None:
    text = (
        "Title\n\n1) Item\n\nWays include:\n"
        "  • one\n    still one\n• two\nAfter the list,\nstill after.\n"
    )
    blocks = parse_article(text, source="x.txt").lessons[0].blocks
    assert [type(b).__name__ for b in blocks] == ["Paragraph", "ListBlock", "Paragraph"]
    assert texts(blocks) == [
        "Ways include:",
        "one still one",
        "two",
        "After the list, still after.",
    ]
    assert [b.line for b in blocks] == [5, 6, 9]


def test_only_a_wholly_quoted_paragraph_is_a_quote() -> None:
    text = "Title\n\n1) Item\n\n“A,” he said, “b.”\n\n“One quotation.”\n"
    assert parse_article(text, source="x.txt").lessons[0].blocks == (
        P("“A,” he said, “b.”", 5),
        Q("“One quotation.”", 7),
    )


def test_pure_listicle_takes_its_kind_from_the_title() -> None:
    course = load_article(DATA / "pure-listicle.txt")
    assert [(lesson.kind, lesson.number, lesson.title) for lesson in course.lessons] == [
        ("habit", 1, "They plan"),
        ("habit", 2, "They rest"),
        ("habit", 3, "They say no"),
    ]
    assert [part.heading for part in course.parts] == [""]
    assert course.closing == ()
    assert course.welcome == (P("Some people never seem rushed.", 3),)


def test_numbering_restart_without_heading_starts_the_actions() -> None:
    course = load_article(DATA / "restart-without-heading.txt")
    assert [(lesson.day, lesson.kind, lesson.number) for lesson in course.lessons] == [
        (1, "reason", 1),
        (2, "reason", 2),
        (3, "action", 1),
        (4, "action", 2),
    ]
    assert [part.heading for part in course.parts] == ["", ""]
    assert course.lessons[1].blocks == (P("Also because.", 9),)


def test_a_third_list_is_a_third_part() -> None:
    text = (DATA / "restart-without-heading.txt").read_text(encoding="utf-8")
    third = "\n1) Third list\n\nIts own text.\n\n2) Its second item\n\nMore text.\n"
    course = parse_article(text + third, source="fixes.txt")
    assert [(lesson.part, lesson.kind, lesson.number) for lesson in course.lessons] == [
        (0, "lesson", 1),
        (0, "lesson", 2),
        (1, "lesson", 1),
        (1, "lesson", 2),
        (2, "lesson", 1),
        (2, "lesson", 2),
    ]


# Malformed articles


def test_gap_in_the_numbering() -> None:
    text = shipped_text().replace("\n5) It’s moving", "\n6) It’s moving")
    assert parse_error(text) == (
        "why-he-pushes-you-away.txt: line 87: expected item 5, found item 6: "
        "`6) It’s moving too fast`; a number is skipped, or the item before it lost its "
        "number or its blank line. Number the items in order in the article (or, if a new "
        "list starts here, number it from 1)"
    )


def test_repeat_in_the_numbering() -> None:
    text = shipped_text().replace("\n5) It’s moving", "\n4) It’s moving")
    assert parse_error(text) == (
        "why-he-pushes-you-away.txt: line 87: expected item 5, found item 4: "
        "`4) It’s moving too fast`; item 4 comes again. Number the items in order in the "
        "article (or, if a new list starts here, number it from 1)"
    )


def test_error_quotes_at_most_80_characters() -> None:
    long_title = "It’s moving too fast " + "and then faster still " * 20
    text = shipped_text().replace("\n5) It’s moving too fast", "\n6) " + long_title)
    message = parse_error(text)
    quoted = re.search(r"`([^`]*)`", message)
    assert quoted is not None
    assert len(quoted[1]) == 80
    assert quoted[1].endswith("…")
    assert "\n" not in message


def test_heading_count_larger_than_the_list_is_refused() -> None:
    text = shipped_text()
    reason_11 = text.index("11) You’ve changed")
    text = text[:reason_11] + text[text.index(ACTION_HEADING) :]
    assert parse_error(text) == (
        "why-he-pushes-you-away.txt: line 15: the heading says 11 reasons but the list has "
        "10 items, the last `10) He’s been burned in the past` on line 181; check that every "
        "item has its number and a blank line before it, or correct the count in the heading"
    )


def test_heading_count_smaller_than_the_list_is_a_note() -> None:
    text = shipped_text().replace("? 11 reasons", "? 10 reasons")
    course = parse_article(text, source=SOURCE)
    assert course.days == 15
    assert course.notes == (
        f"{SOURCE}: line 15: the heading says 10 reasons but the list has 11 items; all are "
        "lessons (correct the heading if it is wrong)",
        f"{SOURCE}: the title says 11 reasons but the article has 11, 4 items",
    ) or course.notes[0].startswith(f"{SOURCE}: line 15: the heading says 10 reasons")


def test_action_heading_count_must_match_the_steps() -> None:
    text = (DATA / "four-reasons-two-steps.md").read_text(encoding="utf-8")
    text = text.replace("## What to do about it", "## 3 steps to take")
    assert parse_error(text, "plants.md").startswith(
        "plants.md: line 37: the heading says 3 steps but the list has 2 items"
    )


def test_gap_in_the_action_steps_names_the_marker_as_written() -> None:
    text = (DATA / "five-reasons-three-steps.txt").read_text(encoding="utf-8")
    text = text.replace("3. Look after yourself", "4. Look after yourself")
    assert parse_error(text, "quiet.txt").startswith(
        "quiet.txt: line 53: expected item 3, found item 4: `4. Look after yourself`; "
    )


def test_no_numbered_items() -> None:
    with pytest.raises(ArticleError) as caught:
        load_article(DATA / "no-items.txt")
    assert str(caught.value) == (
        f"{DATA / 'no-items.txt'}: no numbered items found; number the items in the article "
        "as `1) Title`, `1. Title`, `## 1. Title`, `#1 – Title` or `Step 1: Title`, or put "
        "them as headings under a heading that announces them (`## 5 tips`)"
    )


def test_empty_article() -> None:
    assert parse_error(" \n\r\n\t\n", "empty.txt") == (
        "empty.txt: the article is empty; put the article's text in it (title, intro, then "
        "the numbered items)"
    )


def test_a_countdown_is_read_in_the_article_order() -> None:
    text = (
        "Top 3 reasons to garden\n\n#3 You get outside\n\nFresh air every evening.\n\n"
        "#2 You move more\n\nDigging is exercise in disguise.\n\n"
        "#1 Tomatoes taste better\n\nThey taste of summer, not of the fridge.\n"
    )
    course = parse_article(text, source="garden.txt")
    assert [(lesson.number, lesson.title) for lesson in course.lessons] == [
        (1, "You get outside"),
        (2, "You move more"),
        (3, "Tomatoes taste better"),
    ]
    assert course.notes == ()


def test_a_countdown_that_stops_before_1_is_a_note() -> None:
    text = (
        "Top 3 reasons to garden\n\n#3 You get outside\n\nFresh air every evening.\n\n"
        "#2 You move more\n\nDigging is exercise in disguise.\n\n"
        "And the number one reason:\n\nTomatoes taste of summer.\n"
    )
    course = parse_article(text, source="garden.txt")
    assert course.days == 2
    assert course.notes[0].startswith("garden.txt: line 7: this countdown ends at item 2: ")


def test_a_table_of_contents_is_dropped_with_a_note() -> None:
    text = (
        "# 2 tips for tea\n\n## Table of contents\n\n- [Warm the pot](#warm)\n"
        "- [Time it](#time)\n\n## 1. Warm the pot\n\nA cold pot cools the water too soon. "
        "See [the steps](#time).\n\n## 2. Time it\n\nThree to five minutes, then pour.\n"
    )
    course = parse_article(text, source="tea.md")
    assert course.welcome == ()
    assert course.notes == (
        "tea.md: line 3: `Table of contents` dropped with its list",
        "tea.md: line 5: a table of contents dropped: its links go nowhere in an email",
    )
    # An in-page link elsewhere is text: it goes nowhere in an email.
    assert course.lessons[0].blocks[0] == Paragraph(
        runs_of("A cold pot cools the water too soon. See the steps."), 10
    )


def test_web_copy_read_as_markdown_keeps_its_bullets_and_indented_items() -> None:
    text = (
        "3 signs of a **good** cafe\n\n"
        "       1. The milk is steamed, not boiled. You can taste the difference.\n\n"
        "       2. The cups are warm. A cold cup steals the heat.\n\n"
        "       3. Nobody hurries you. Stay as long as you like:\n\n"
        "  • with a book\n  • with a friend\n"
    )
    course = parse_article(text, source="cafe.txt")
    assert [lesson.title for lesson in course.lessons] == [
        "The milk is steamed, not boiled",
        "The cups are warm",
        "Nobody hurries you",
    ]
    assert course.lessons[2].blocks[-1] == ListBlock(items("with a book", "with a friend"), 9)


def test_a_plain_table_of_contents_repeating_the_titles_is_dropped() -> None:
    text = (
        "How to sleep better: 3 tips\n\nContents\n1. Keep a schedule\n2. Cut the caffeine\n"
        "3. Cool the room\n\n1. Keep a schedule\n\nSame time every day, weekends too.\n\n"
        "2. Cut the caffeine\n\nNo coffee after lunch: it lingers.\n\n3. Cool the room\n\n"
        "A cooler bedroom helps most people.\n"
    )
    course = parse_article(text, source="sleep.txt")
    assert [lesson.title for lesson in course.lessons] == [
        "Keep a schedule",
        "Cut the caffeine",
        "Cool the room",
    ]
    assert course.welcome == ()
    assert course.notes == (
        "sleep.txt: line 3: a table of contents dropped (lines 3-6): it repeats the items' titles",
    )


def test_an_introduction_heading_is_no_title() -> None:
    text = "## Introduction\n\nWhy lists work.\n\n## 1. First\n\nOne.\n\n## 2. Second\n\nTwo.\n"
    course = parse_article(text, source="x.md")
    assert course.title == ""
    assert [type(b).__name__ for b in course.welcome] == ["Heading", "Paragraph"]


# Web-page furniture, the page's footer, and the sign-off after the last item.


@pytest.mark.parametrize(
    "line",
    [
        "Follow",
        "5 min read",
        "8 min read · Mar 3, 2023",
        "1.2K",
        "--",
        "⬆ back to top",
        "Posted on June 3, 2022 by Anna Example",
        "Photo by Someone Example on Unsplash",
        "Subscribe now",
    ],
)
def test_a_line_of_web_page_furniture_is_dropped_with_a_note(line: str) -> None:
    text = f"2 tips\n\nIntro.\n\n{line}\n\n1) One\n\nText one.\n\n2) Two\n\nText two.\n"
    course = parse_article(text, source="a.txt")
    assert [plain_text(b) for b in course.welcome] == ["Intro."]
    assert "dropped as parts of the web page" in course.notes[0]
    assert f"line 5 `{line}`" in course.notes[0]


@pytest.mark.parametrize(
    "line",
    [
        "Follow the recipe exactly the first time.",
        "Share your plan with a friend.",
        "It was June 3, 2022 when I started.",
        "12 people came.",
        "Listen to your body, not the plan.",
    ],
)
def test_a_sentence_that_mentions_furniture_stays(line: str) -> None:
    text = f"2 tips\n\nIntro.\n\n{line}\n\n1) One\n\nText one.\n\n2) Two\n\nText two.\n"
    course = parse_article(text, source="a.txt")
    assert [plain_text(b) for b in course.welcome] == ["Intro.", line]
    assert course.notes == ()


def test_the_page_footer_after_the_last_item_is_cut_with_a_note() -> None:
    text = (
        "2 tips\n\n1) One\n\nText one.\n\n2) Two\n\nText two.\n\nRelated\n\n"
        "How to sleep better\n\nIn “Health”\n"
    )
    course = parse_article(text, source="a.txt")
    assert [plain_text(b) for b in course.lessons[-1].blocks] == ["Text two."]
    assert course.closing == ()
    assert course.notes == (
        "a.txt: lines 11-15 dropped: from `Related` on it reads as the web page's footer, not "
        "the article",
    )


def test_a_sign_off_after_the_last_item_opens_the_closing() -> None:
    text = (
        "# 2 tips\n\n## 1. One\n\nText one.\n\n## 2. Two\n\nText two.\n\nMore on two.\n\n"
        "### Your turn\n\nWhich of these will you try first?\n"
    )
    course = parse_article(text, source="a.md")
    assert [plain_text(b) for b in course.lessons[-1].blocks] == ["Text two.", "More on two."]
    assert course.closing == (
        Section("Your turn", (Paragraph(runs_of("Which of these will you try first?"), 15),), 13),
    )


def test_a_last_item_with_only_a_sign_off_like_paragraph_keeps_it() -> None:
    text = "2 tips\n\n1) One\n\nText one.\n\n2) Pick one\n\nThat's it: pick one and start.\n"
    course = parse_article(text, source="a.txt")
    assert [plain_text(b) for b in course.lessons[-1].blocks] == ["That's it: pick one and start."]
    assert course.closing == ()


def plain_text(block: Block) -> str:
    assert isinstance(block, Paragraph | Quote | Heading)
    return block.text


@pytest.mark.parametrize(
    ("line", "number", "title"),
    [
        ("1 - Cats need a routine", 1, "Cats need a routine"),
        ("12 – Publish", 12, "Publish"),
        ("Step Three: Loosen the roots", 3, "Loosen the roots"),
        ("Astuce n°2 : Éviter les écrans", 2, "Éviter les écrans"),
        ("Tipp Nr. 4: Früh ins Bett", 4, "Früh ins Bett"),
        ("IV. Send the decisions", 4, "Send the decisions"),
        ("3\ufe0f\u20e3 A thermometer", 3, "A thermometer"),
        ("\U0001f51f The last one", 10, "The last one"),
        ("🔥 1. Start with the hardest", 1, "Start with the hardest"),
        ("2、把相似的工作放在一起", 2, "把相似的工作放在一起"),
        ("十二、最后", 12, "最后"),
        ("（3）第三", 3, "第三"),
    ],
)
def test_item_markers_of_other_shapes(line: str, number: int, title: str) -> None:
    marker = item_marker(line)
    assert marker is not None
    assert (marker.number, line[marker.length :]) == (number, title)


@pytest.mark.parametrize(
    "line",
    [
        "2 - 3 cups of flour",
        "1.5 cups of flour",
        "V. S. Naipaul wrote it",
        "2019. A good year",
        "Figure 2: the setup",
        "One: two",
    ],
)
def test_lines_that_only_look_like_items(line: str) -> None:
    assert item_marker(line) is None


# What static-site generators add to a post.


def test_template_tags_in_code_stay_as_written() -> None:
    text = (
        '# 2 tips for Hugo\n\n## 1. Use a figure\n\nWrite `{{< figure src="a.png" >}}` in '
        'the post:\n\n```\n{{< figure src="a.png" >}}\n{% include x.html %}\n```\n\n'
        "## 2. Use notices\n\n{{< notice >}}\nText in a notice.\n{{< /notice >}}\n"
    )
    course = parse_article(text, source="a.md")
    first, second = course.lessons
    assert first.blocks[0] == Paragraph(
        (Run("Write "), Run('{{< figure src="a.png" >}}', code=True), Run(" in the post:")), 5
    )
    assert first.blocks[1] == CodeBlock('{{< figure src="a.png" >}}\n{% include x.html %}', 7)
    assert [plain_text(b) for b in second.blocks] == ["Text in a notice."]
    assert course.notes == (
        "a.md: template tags dropped (the blog's generator runs them, an email cannot): "
        "line 14 `{{< notice >}}`",
    )


def test_a_liquid_highlight_becomes_code_and_a_comment_goes_with_its_text() -> None:
    text = (
        "# 2 tips\n\n## 1. One\n\n{% comment %}\nA draft note.\n{% endcomment %}\nText one.\n\n"
        "## 2. Two\n\n{% highlight python %}\nprint('hi')\n{% endhighlight %}\n\nText two.\n"
    )
    course = parse_article(text, source="a.md")
    assert [plain_text(b) for b in course.lessons[0].blocks] == ["Text one."]
    assert course.lessons[1].blocks[0] == CodeBlock("print('hi')", 12)
    assert course.notes == (
        "a.md: template tags dropped (the blog's generator runs them, an email cannot): "
        "line 5 `{% comment %}`",
    )


def test_a_github_alert_becomes_a_bold_label() -> None:
    text = "# 2 tips\n\n> [!TIP]\n> Read this first.\n\n## 1. One\n\nText.\n\n## 2. Two\n\nText.\n"
    course = parse_article(text, source="a.md")
    assert course.welcome == (Quote((Run("Tip:", strong=True), Run(" Read this first.")), 3),)


# Items that number nothing: questions and answers, bold lines.


def test_questions_and_answers_on_their_own_paragraphs() -> None:
    text = (
        "Sleep FAQ\n\nQ. Why is sleep important?\n\nA. It restores the body and the mind.\n\n"
        "Q. Is napping bad?\n\nA. Not if it is short: twenty minutes is plenty.\n"
    )
    course = parse_article(text, source="faq.txt")
    assert [(lesson.kind.value, lesson.title) for lesson in course.lessons] == [
        ("question", "Why is sleep important?"),
        ("question", "Is napping bad?"),
    ]
    assert [plain_text(b) for b in course.lessons[1].blocks] == [
        "Not if it is short: twenty minutes is plenty."
    ]


def test_bold_lines_with_their_text_in_the_next_paragraph() -> None:
    text = (
        "# Habits of Calm Parents\n\nNobody is calm all the time.\n\n"
        "**They pause before answering.**\n\nA pause turns a reaction into a response.\n\n"
        "**They name the feeling.**\n\nNaming helps more than hushing.\n\n"
        "**They pick their battles.**\n\nNot every odd sock is worth an argument.\n"
    )
    course = parse_article(text, source="calm.md")
    assert [lesson.title for lesson in course.lessons] == [
        "They pause before answering",
        "They name the feeling",
        "They pick their battles",
    ]
    assert course.lessons[0].kind.value == "habit"
    assert [plain_text(b) for b in course.lessons[2].blocks] == [
        "Not every odd sock is worth an argument."
    ]


def test_two_bold_lines_in_an_essay_are_no_list() -> None:
    text = (
        "# A walk in the park\n\n**It rained.**\n\nWe walked anyway.\n\n"
        "**It stopped.**\n\nThe sun came out.\n"
    )
    with pytest.raises(ArticleError, match="no numbered items found"):
        parse_article(text, source="walk.md")


def test_bullets_are_the_items_only_when_the_count_says_so() -> None:
    bullets = (
        "- Keep a schedule – the body loves a routine, weekends too.\n"
        "- Cool the room – between sixteen and eighteen degrees is best.\n"
        "- Dim the lights – an hour before bed, to tell your body it is late.\n"
    )
    counted = parse_article(f"3 tips for sleep\n\nTry these:\n\n{bullets}", source="a.txt")
    assert [lesson.title for lesson in counted.lessons] == [
        "Keep a schedule",
        "Cool the room",
        "Dim the lights",
    ]
    with pytest.raises(ArticleError, match="no numbered items found"):
        parse_article(f"4 tips for sleep\n\nTry these:\n\n{bullets}", source="a.txt")
    with pytest.raises(ArticleError, match="no numbered items found"):
        parse_article("3 tips\n\n- Sleep\n- Eat\n- Walk\n", source="a.txt")


def test_a_paragraph_that_says_it_is_not_sponsored_stays_in_the_welcome() -> None:
    text = "2 tips\n\nThis post is not sponsored.\n\n1) One\n\nText one.\n\n2) Two\n\nText two.\n"
    course = parse_article(text, source="a.txt")
    assert course.disclosure == ()
    assert [plain_text(b) for b in course.welcome] == ["This post is not sponsored."]


@pytest.mark.parametrize(
    ("first", "title"),
    [
        ("7 Ways to Drink More Water | Example Health", "7 Ways to Drink More Water"),
        ("Cats | Dogs", "Cats | Dogs"),
        ("Work | Rest | Play: 3 habits of calm people and their long weekends", None),
    ],
)
def test_a_site_name_after_the_title_is_dropped(first: str, title: str | None) -> None:
    text = f"{first}\n\n1) One\n\nText one.\n\n2) Two\n\nText two.\n\n3) Three\n\nText three.\n"
    course = parse_article(text, source="a.txt")
    assert course.title == (title or first)


def test_a_saved_web_page_without_an_article_element_drops_its_head_nav_and_footer() -> None:
    text = (
        "<!doctype html>\n<html><head><title>Tab</title><style>p { color: red; }</style></head>\n"
        "<body>\n<nav><a href='/'>Home</a></nav>\n<h1>2 tips</h1>\n\n<h2>1. One</h2>\n\n"
        "<p>Text one.</p>\n\n<h2>2. Two</h2>\n\n<p>Text two.</p>\n<footer>© Site</footer>\n"
        "</body></html>\n"
    )
    course = parse_article(text, source="page.html")
    assert course.title == "2 tips"
    assert [lesson.title for lesson in course.lessons] == ["One", "Two"]
    assert [plain_text(b) for b in course.lessons[1].blocks] == ["Text two."]
    assert course.notes[0].startswith("page.html: a saved web page: read as HTML; 2 lines of")


def test_a_linked_title_keeps_its_link_in_the_lesson() -> None:
    text = (
        "# 2 tools\n\n## 1. [Draft](https://draft.example.com)\n\nA plain writing space.\n\n"
        "## 2. Notes\n\n1. **[Ink](https://ink.example.com)** – a pen app for tablets and "
        "phones, with layers.\n"
    )
    course = parse_article(text, source="a.md")
    first = course.lessons[0]
    assert first.title == "Draft"
    assert first.blocks[0] == Paragraph((Run("Draft", url="https://draft.example.com"),), 3)
    assert preheader(first) == "A plain writing space."


def test_mixed_bold_entries_of_one_list_are_one_list() -> None:
    text = (
        "# 3 tools\n\n1. **Draft** – a plain writing space with history.\n\n"
        "2. Ink – a pen app for tablets, with layers.\n\n3. **Dot** – a dot grid for notes.\n"
    )
    course = parse_article(text, source="a.md")
    assert [lesson.title for lesson in course.lessons] == ["Draft", "Ink", "Dot"]


def test_numbered_headings_are_one_list_whether_bold_or_not() -> None:
    text = (
        "# 3 tips\n\n## **1. One**\n\nText one.\n\n## 2. Two\n\nText two.\n\n"
        "## **3. Three**\n\nText three.\n"
    )
    course = parse_article(text, source="a.md")
    assert [lesson.title for lesson in course.lessons] == ["One", "Two", "Three"]


@pytest.mark.parametrize(
    ("text", "note"),
    [
        (
            "# 4 tips\n\n## 1. One\n\nText one.\n\n## 2. Two\n\nText two.\n\n### 3. Three\n\n"
            "Text three.\n\n## 4. Four\n\nText four.\n",
            "a.md: line 11: item 3 `3. Three` is a ### heading, the others a ## heading; read "
            "as item 3 of the list (write it like the others to silence this note)",
        ),
        (
            "4 tips\n\n1. One\nText one.\n\n2. Two\nText two.\n\n3) Three\nText three.\n\n"
            "4. Four\nText four.\n",
            "a.md: line 9: item 3 `3) Three Text three.` has `)` after its number, the others "
            "`.`; read as item 3 of the list (write it like the others to silence this note)",
        ),
    ],
)
def test_one_item_written_differently_is_read_in_its_place(text: str, note: str) -> None:
    course = parse_article(text, source="a.md", markdown=text.startswith("#"))
    assert [lesson.title for lesson in course.lessons] == ["One", "Two", "Three", "Four"]
    assert course.notes == (note,)


def test_nested_bullets_keep_their_depth() -> None:
    markdown = "# 2 tips\n\n## 1. One\n\n- a\n  - a.1\n    - a.1.1\n- b\n\n## 2. Two\n\nText two.\n"
    first = parse_article(markdown, source="a.md").lessons[0].blocks[0]
    assert isinstance(first, ListBlock)
    assert first.levels == (0, 1, 2, 0)
    plain_text_article = "2 tips\n\n1) One\nText:\n- a\n  - a.1\n- b\n\n2) Two\nText two.\n"
    block = parse_article(plain_text_article, source="a.txt").lessons[0].blocks[1]
    assert isinstance(block, ListBlock)
    assert (block.texts, block.levels) == (("a", "a.1", "b"), (0, 1, 0))
