"""Bad articles get one line naming the file, the cause and the fix, never a traceback."""

from __future__ import annotations

import re
import time
import tracemalloc
from pathlib import Path

import pytest

from course.article import load_article
from course.cli import main
from course.errors import ArticleError

SHIPPED = Path(__file__).resolve().parents[1] / "examples" / "why-he-pushes-you-away.txt"


def build_error(project: Path, data: bytes, capsys: pytest.CaptureFixture[str]) -> str:
    """`course build` on an article with these bytes: exit 1, one line on stderr."""
    (project / "examples" / "why-he-pushes-you-away.txt").write_bytes(data)
    code = main(["--config", str(project / "schedule.yaml"), "build", "--out", str(project / "o")])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("course: error: ")
    return lines[0].removeprefix("course: error: ")


def shipped() -> str:
    return SHIPPED.read_text(encoding="utf-8")


def test_count_mismatch(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = shipped().replace("? 11 reasons", "? 12 reasons")
    message = build_error(project, text.encode(), capsys)
    assert message.endswith(
        "line 15: the heading says 12 reasons but the list has 11 items, the last "
        "`11) You’ve changed` on line 195; check that every item has its number and a blank "
        "line before it, or correct the count in the heading"
    )


def test_a_real_numbering_gap(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = shipped().replace("\n8) He’s insecure", "\n9) He’s insecure")
    message = build_error(project, text.encode(), capsys)
    assert "line 135: expected item 8, found item 9: `9) He’s insecure`; a number is " in message
    assert message.endswith(
        "Number the items in order in the article (or, if a new list starts here, number it from 1)"
    )


def test_a_missing_blank_line_is_no_gap(project: Path) -> None:
    """The same article with an item glued to its paragraph builds, with a note."""
    text = shipped().replace("about to you.\n\n2) He’s scared", "about to you.\n2) He’s scared")
    path = project / "examples" / "glued.txt"
    path.write_text(text, encoding="utf-8")
    course = load_article(path)
    assert course.days == 15
    assert course.notes == (
        f"{path}: line 28: item `2) He’s scared of his feelings` starts right under the "
        "paragraph above it, with no blank line; read as a new item (put a blank line before "
        "it to keep it that way)",
    )


def test_empty_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert build_error(project, b"", capsys).endswith(
        "the article is empty; put the article's text in it (title, intro, then the numbered items)"
    )


@pytest.mark.parametrize(
    ("data", "ending"),
    [
        (
            b"\x00\x01\x02binary\x00data" * 100,
            "byte 1: not a text file (it contains NUL bytes); "
            "save the article as plain text (.txt) or Markdown (.md)",
        ),
        (
            b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
            "this is a PDF document, not text; open it and save "
            "or export it as plain text (.txt) or Markdown (.md)",
        ),
        (
            b"PK\x03\x04\x14\x00\x06\x00",
            "this is a Word document or ZIP archive, not text; open "
            "it and save or export it as plain text (.txt) or Markdown (.md)",
        ),
    ],
)
def test_binary_file(
    project: Path, capsys: pytest.CaptureFixture[str], data: bytes, ending: str
) -> None:
    assert build_error(project, data, capsys).endswith(ending)


def test_a_20_mb_article_is_refused_at_once_with_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    with path.open("wb") as handle:
        block = shipped().encode() * 60  # about 1 MB
        for _ in range(20):
            handle.write(block)
    assert path.stat().st_size > 20_000_000
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(ArticleError) as caught:
        load_article(path)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert str(caught.value) == (
        f"{path}: the article is over 1 MB; an article that long would make hundreds of "
        "emails. Split it into several courses, or check that course.article names the "
        "article and not another file"
    )
    assert elapsed < 10
    assert peak < 4_000_000  # the file is never read past its first megabyte


def test_no_items_names_the_shapes_it_knows(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    message = build_error(project, b"A title\n\nJust some prose.\n\nAnd more prose.\n", capsys)
    assert message.endswith(
        "no numbered items found; number the items in the article as `1) Title`, `1. Title`, "
        "`## 1. Title`, `#1 – Title` or `Step 1: Title`, or put them as headings under a "
        "heading that announces them (`## 5 tips`)"
    )


def test_an_empty_lesson_fails_the_build(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = project / "schedule.yaml"
    config.write_text(re.sub(r"  edits:\n(?:    .*\n|      .*\n)+", "", config.read_text()))
    text = "Three tips\n\n1) One\n\nText of the first tip, long enough.\n\n2) Two\n\n3) Three\n\n"
    message = build_error(project, (text + "The third tip says enough too.\n").encode(), capsys)
    assert "1 lesson is empty or nearly so: day 2 (line 7, 'Two'): no text." in message


def test_structural_warnings(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = project / "schedule.yaml"
    config.write_text(re.sub(r"  edits:\n(?:    .*\n|      .*\n)+", "", config.read_text()))
    long_title = "A title that goes on and on " * 5
    body = "This lesson has a body of a dozen words or so, like most. "
    items = [f"{n}) Item {n}\n\n{body}\n" for n in range(1, 6)]
    items[1] = f"2) {long_title.strip()}\n\n{body}\n"
    items[3] = "4) Item 4\n\n" + (body * 8) + "\n"
    items[4] = "5) Item 5\n\nShort, but more than five words.\n"
    text = "Five items\n\n" + "\n".join(items)
    (project / "examples" / "why-he-pushes-you-away.txt").write_text(text, encoding="utf-8")
    code = main(["--config", str(config), "build", "--out", str(project / "o")])
    err = capsys.readouterr().err
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("course: warning: ")]
    assert any("day 2's title is 139 characters" in w for w in warnings), warnings
    assert any("day 4 ('Item 4') has 104 words, over 4× the median 13" in w for w in warnings)
    assert not any("day 5" in w for w in warnings)  # short, but not a quarter of the median
