"""Read a listicle article (plain text, Markdown or web copy) into a `Course`.

The pipeline, one module each:

- `encoding`: bytes -> text (UTF-8, else a confident guess, else an error with the fix);
- `lines`: web copy's habits undone (item lines glued to a paragraph, single newlines);
- `frontmatter`, `markdown` (markdown-it-py's token tree), `text`: text -> chunks;
- `title`: the course's title;
- `items`, `runs`, `structure`: which numbered lists are the items, where each item
  ends, and where every other paragraph goes (welcome, disclosure, lesson, closing).

Every paragraph of the article lands in exactly one place. What reading found worth
telling (a guessed encoding, a renumbered list, a dropped image) is in `Course.notes`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from course.article.chunks import ChunkKind, Notes
from course.article.encoding import read_article
from course.article.frontmatter import FrontMatter, front_matter_lines
from course.article.furniture import drop_furniture
from course.article.lines import prepare, split_lines
from course.article.shapes import count_of, quote
from course.article.structure import Structure, structure
from course.article.text import read_text
from course.article.title import find_title
from course.article.webpage import is_web_page, narrow_web_page
from course.content import Block, Course, Lesson, Paragraph, Part
from course.errors import ArticleError

__all__ = ["is_markdown", "load_article", "parse_article"]

MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdown", ".mkd", ".mkdn", ".mdx", ".html", ".htm")
PLAIN_SUFFIXES = (".txt", ".text")
# Markdown's own marks: an ATX heading, **bold**, a [link](url) or image, a code fence.
# (HTML tags are no sign: both readers reduce them to text.)
_MARKDOWN_SIGNS = re.compile(
    r"^ {0,3}#{1,6} \S|\*\*\S[^*\n]*\*\*|__\S[^_\n]*__|!?\[[^\]\n]+\]\([^)\s]+\)|^ {0,3}```",
    re.MULTILINE,
)
_DISCLOSURE = re.compile(r"\b(?:affiliates?|commissions?|sponsored|disclosure)\b", re.IGNORECASE)
# "None of these are sponsored", "no affiliate links": a statement that there is none.
_NO_DISCLOSURE = re.compile(
    r"\b(?:not|no|none|never|without|isn[’']t|aren[’']t|wasn[’']t)\b(?:\W+\w+){0,3}?\W+"
    r"(?:affiliates?|commissions?|sponsored|disclosure)\b",
    re.IGNORECASE,
)


def load_article(path: Path) -> Course:
    """Read and parse the article at `path`; ArticleError names the file, cause and fix."""
    decoded = read_article(path)
    course = parse_article(decoded.text, source=str(path))
    if decoded.note:
        from dataclasses import replace

        course = replace(course, notes=(decoded.note, *course.notes))
    return course


def is_markdown(source: str, text: str) -> bool:
    """Markdown by its suffix; for .txt and others, by Markdown's own marks in the text."""
    suffix = Path(source).suffix.lower()
    if suffix in MARKDOWN_SUFFIXES:
        return True
    lines = text.lstrip("\ufeff").splitlines()
    if front_matter_lines(lines)[0]:
        return True
    return _MARKDOWN_SIGNS.search(text[:200_000]) is not None


def parse_article(text: str, *, source: str, markdown: bool | None = None) -> Course:
    """Parse the article text; `source` names it in messages and in Course.source."""
    notes = Notes(source)
    is_md = is_markdown(source, text) if markdown is None else markdown
    if is_web_page(text):
        text, blanked, marked = narrow_web_page(text)
        is_md = True
        if blanked:
            read = f"only its <{marked}> was read" if marked else "read as HTML"
            notes.add(
                None,
                f"a saved web page: {read}; {blanked} lines of the page (head, scripts, "
                "navigation, sidebars, footer) dropped",
            )
    raw = split_lines(text)
    front = FrontMatter()
    span, delimiter = front_matter_lines(raw)
    verbatim = 0
    if delimiter == "+++":
        from course.article.frontmatter import parse_front_matter

        front = parse_front_matter("\n".join(raw[1 : span - 1]), True, notes)
        raw = [""] * span + raw[span:]
        is_md = True
    elif delimiter == "---":
        verbatim = span
        is_md = True
    if not is_md:
        raw = [line.rstrip() for line in raw]
    elif "{" in text or ":::" in text or "[!" in text or "import " in text or "export " in text:
        from course.article.templating import untemplate

        untemplated = untemplate(raw, span)
        raw = untemplated.lines
        if untemplated.dropped:
            listed = "; ".join(
                f"line {line} {quote(tag, 50)}" for line, tag in untemplated.dropped[:12]
            )
            more = len(untemplated.dropped) - 12
            notes.add(
                None,
                "template tags dropped (the blog's generator runs them, an email cannot): "
                + listed
                + (f"; and {more} more" if more > 0 else ""),
            )
    lines = prepare(raw, verbatim, markdown=is_md)
    if is_md:
        # Imported here: markdown-it-py (and YAML for front matter) cost more to import
        # than a plain-text article takes to read.
        from course.article.frontmatter import parse_front_matter
        from course.article.markdown import read_markdown

        by_suffix = Path(source).suffix.lower() in MARKDOWN_SUFFIXES
        yaml_text, chunks = read_markdown(lines, notes, indented_code=by_suffix)
        if yaml_text is not None:
            front = parse_front_matter(yaml_text, False, notes)
    else:
        chunks = read_text(lines, notes)
    if not any(c.kind is not ChunkKind.RULE for c in chunks):
        raise ArticleError(
            f"{source}: the article is empty; put the article's text in it (title, intro, then "
            "the numbered items)"
        )
    if lines.single_newlines:
        notes.add(None, "no blank lines between paragraphs: read one paragraph per line")
    chunks = drop_furniture(chunks, notes)
    title, chunks = find_title(chunks, front.title, is_md, notes)
    found = structure(chunks, title, is_md, notes, source)
    _check_counts(found, chunks_heading_lines(found, chunks), title, source, notes)
    for plan in found.parts:
        for item in plan.items:
            if item.glued:
                notes.add(
                    item.line,
                    f"item {quote(item.source, 60)} starts right under the paragraph above it, "
                    "with no blank line; read as a new item (put a blank line before it to "
                    "keep it that way)",
                )
    return _course(found, title, front, source, notes)


def chunks_heading_lines(found: Structure, chunks: Sequence[object]) -> list[int]:
    lines = []
    for plan in found.parts:
        heading = None if plan.heading is None else chunks[plan.heading]
        lines.append(getattr(heading, "line", 0))
    return lines


def _check_counts(
    found: Structure, heading_lines: list[int], title: str, source: str, notes: Notes
) -> None:
    for plan, heading, line in zip(found.parts, found.headings, heading_lines, strict=True):
        counted = count_of(heading)
        if counted is None:
            continue
        said, noun = counted
        items = len(plan.items)
        if said > items:
            last = plan.items[-1]
            raise ArticleError(
                f"{source}: line {line}: the heading says {said} {noun} but the list has "
                f"{items} {'item' if items == 1 else 'items'}, the last {quote(last.source, 60)} "
                f"on line {last.line}; check that every item has its number and a blank line "
                "before it, or correct the count in the heading"
            )
        if said < items:
            notes.add(
                line,
                f"the heading says {said} {noun} but the list has {items} items; all are "
                "lessons (correct the heading if it is wrong)",
            )
    counted = count_of(title)
    sizes = {len(plan.items) for plan in found.parts}
    total = sum(sizes) if len(found.parts) > 1 else 0
    if counted and counted[0] not in sizes and counted[0] != total:
        notes.add(
            None,
            f"the title says {counted[0]} {counted[1]} but the article has "
            + ", ".join(str(len(plan.items)) for plan in found.parts)
            + " items",
        )


def _course(found: Structure, title: str, front: FrontMatter, source: str, notes: Notes) -> Course:
    lessons: list[Lesson] = []
    bodies = iter(found.bodies)
    for index, plan in enumerate(found.parts):
        for number, item in enumerate(plan.items, start=1):
            lessons.append(
                Lesson(
                    day=len(lessons) + 1,
                    part=index,
                    kind=plan.kind,
                    number=number,
                    title=item.title,
                    blocks=next(bodies),
                    line=item.line,
                )
            )
    disclosure, welcome = _split_preamble(found.welcome)
    parts = tuple(
        Part(heading, plan.kind, plan.items[0].line)
        for heading, plan in zip(found.headings, found.parts, strict=True)
    )
    return Course(
        title=title,
        description=front.description,
        disclosure=disclosure,
        welcome=welcome,
        parts=parts,
        lessons=tuple(lessons),
        closing=found.closing,
        source=source,
        notes=tuple(notes.items),
    )


def _split_preamble(blocks: Sequence[Block]) -> tuple[tuple[Block, ...], tuple[Block, ...]]:
    """(disclosure, welcome): the affiliate/commission paragraphs, then everything else."""
    disclosure: list[Block] = []
    welcome: list[Block] = []
    for block in blocks:
        is_disclosure = (
            isinstance(block, Paragraph)
            and _DISCLOSURE.search(block.text) is not None
            and _NO_DISCLOSURE.search(block.text) is None
        )
        (disclosure if is_disclosure else welcome).append(block)
    return tuple(disclosure), tuple(welcome)
