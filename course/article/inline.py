"""Inline text as runs: building them (from Markdown tokens or HTML), cutting and trimming.

HTML is reduced to its text: `<b>`/`<strong>`, `<i>`/`<em>`, `<code>` and `<a href>` keep
their meaning as formatting, `<br>` is a line break, `<img>` an image; every other tag is
dropped and only its text stays. Nothing the article wrote as a tag reaches an email.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from html.parser import HTMLParser

from course.content import LINE_BREAK, Inline, Run, plain

_ABSOLUTE = re.compile(r"https?://[^\s<>\"]+\Z", re.IGNORECASE)
_BADGE = re.compile(
    r"^https?://(?:img\.shields\.io|shields\.io|badgen\.net|badge\.fury\.io|"
    r"(?:[\w-]+\.)?(?:travis-ci|circleci|codecov|coveralls|codacy|appveyor|awesome)\.\w+)/"
    r"|/badges?(?:[/.?_-]|$)|[/_-]badge\.svg",
    re.IGNORECASE,
)
_BLOCK_TAGS = frozenset(
    [
        "p",
        "div",
        "section",
        "article",
        "header",
        "footer",
        "aside",
        "nav",
        "main",
        "figure",
        "figcaption",
        "blockquote",
        "ul",
        "ol",
        "li",
        "table",
        "tr",
        "td",
        "th",
        "thead",
        "tbody",
        "dl",
        "dt",
        "dd",
        "details",
        "summary",
        "center",
        "hr",
        "pre",
        "form",
        "fieldset",
    ]
)
_HEADING_TAGS = {f"h{n}": n for n in range(1, 7)}
_SKIPPED_TAGS = frozenset(("script", "style", "noscript", "template", "svg", "iframe", "head"))


@dataclass(frozen=True)
class ImageRef:
    """An image where it stood in the text; `src` may be relative or empty (then dropped)."""

    src: str
    alt: str
    href: str = ""

    @property
    def usable(self) -> bool:
        return _ABSOLUTE.match(self.src.strip()) is not None

    @property
    def is_badge(self) -> bool:
        """A project badge (build passing, licence, "awesome"): README decoration."""
        return _BADGE.search(self.src) is not None


Segment = Inline | ImageRef


class InlineBuilder:
    """Accumulates runs with the formatting in force; images split the text into segments."""

    def __init__(self) -> None:
        self._segments: list[Segment] = []
        self._runs: list[Run] = []
        self.strong = 0
        self.emphasis = 0
        self.code = 0
        self._links: list[str] = []

    def text(self, text: str, *, code: bool = False) -> None:
        if not text:
            return
        url = self._links[-1] if self._links else ""
        self._runs.append(Run(text, url, self.strong > 0, self.emphasis > 0, code or self.code > 0))

    def line_break(self) -> None:
        self._runs.append(Run(LINE_BREAK))

    def open_link(self, href: str) -> None:
        # An in-page anchor (`#section`) is kept for now, so that a table of contents can be
        # told from text; `without_anchors` removes it before anything is rendered.
        href = href.strip()
        self._links.append(href if _is_followable(href) or href.startswith("#") else "")

    def close_link(self) -> None:
        if self._links:
            self._links.pop()

    def image(self, src: str, alt: str) -> None:
        href = self._links[-1] if self._links else ""
        self._flush()
        self._segments.append(ImageRef(src.strip(), " ".join(alt.split()), href))

    def html(self, fragment: str) -> None:
        """Inline HTML from Markdown (`<br>`, `<b>`, `</a>`…): formatting, never text."""
        _InlineHtml(self).feed_all(fragment)

    def finish(self) -> list[Segment]:
        self._flush()
        return self._segments

    def _flush(self) -> None:
        if self._runs:
            self._segments.append(merge(self._runs))
            self._runs = []


def _is_followable(href: str) -> bool:
    """Links that can work in an email: http(s) and mailto. Anchors and relative paths can't."""
    return re.match(r"(https?://|mailto:)\S", href.strip(), re.IGNORECASE) is not None


class _InlineHtml(HTMLParser):
    """Feeds inline HTML tags and text into an InlineBuilder."""

    def __init__(self, builder: InlineBuilder) -> None:
        super().__init__(convert_charrefs=True)
        self.builder = builder

    def feed_all(self, fragment: str) -> None:
        self.feed(fragment)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        open_tag(self.builder, tag, dict(attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        open_tag(self.builder, tag, dict(attrs))
        if tag not in ("br", "img"):
            close_tag(self.builder, tag)

    def handle_endtag(self, tag: str) -> None:
        close_tag(self.builder, tag)

    def handle_data(self, data: str) -> None:
        self.builder.text(data)


def open_tag(builder: InlineBuilder, tag: str, attrs: dict[str, str | None]) -> None:
    if tag in ("b", "strong"):
        builder.strong += 1
    elif tag in ("i", "em"):
        builder.emphasis += 1
    elif tag in ("code", "kbd", "tt"):
        builder.code += 1
    elif tag == "a":
        builder.open_link(attrs.get("href") or "")
    elif tag == "br":
        builder.line_break()
    elif tag == "img":
        builder.image(attrs.get("src") or "", attrs.get("alt") or "")


def close_tag(builder: InlineBuilder, tag: str) -> None:
    if tag in ("b", "strong"):
        builder.strong = max(0, builder.strong - 1)
    elif tag in ("i", "em"):
        builder.emphasis = max(0, builder.emphasis - 1)
    elif tag in ("code", "kbd", "tt"):
        builder.code = max(0, builder.code - 1)
    elif tag == "a":
        builder.close_link()


@dataclass(frozen=True)
class HtmlPiece:
    """One block an HTML block reduces to: a paragraph's segments, or a heading's."""

    segments: tuple[Segment, ...]
    level: int = 0  # 1-6 for <h1>…<h6>
    item: bool = False  # an <li>


class HtmlBlockReducer(HTMLParser):
    """An HTML block -> paragraphs and headings of text (with images), tags gone."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[HtmlPiece] = []
        self._builder = InlineBuilder()
        self._level = 0
        self._item = False
        self._skipping = 0

    def reduce(self, html: str) -> list[HtmlPiece]:
        self.feed(html)
        self.close()
        self._end_block()
        return self.pieces

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping += 1
        elif tag in _HEADING_TAGS or tag in _BLOCK_TAGS:
            self._end_block()
            self._level = _HEADING_TAGS.get(tag, 0)
            self._item = tag == "li"
        else:
            open_tag(self._builder, tag, dict(attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self._end_block()
        else:
            open_tag(self._builder, tag, dict(attrs))

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _HEADING_TAGS or tag in _BLOCK_TAGS:
            self._end_block()
        else:
            close_tag(self._builder, tag)

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self._builder.text(re.sub(r"\s+", " ", data))

    def _end_block(self) -> None:
        segments = tuple(
            segment
            for segment in (
                s if isinstance(s, ImageRef) else trim(s) for s in self._builder.finish()
            )
            if segment
        )
        if segments:
            self.pieces.append(HtmlPiece(segments, self._level, self._item))
        self._builder = InlineBuilder()
        self._level = 0
        self._item = False


def reduce_html_block(html: str) -> list[HtmlPiece]:
    return HtmlBlockReducer().reduce(html)


def merge(runs: Iterable[Run]) -> Inline:
    """Adjacent runs with the same formatting joined into one."""
    merged: list[Run] = []
    for run in runs:
        if not run.text:
            continue
        last = merged[-1] if merged else None
        if (
            last is not None
            and not last.is_break
            and not run.is_break
            and (last.url, last.strong, last.emphasis, last.code)
            == (run.url, run.strong, run.emphasis, run.code)
        ):
            merged[-1] = replace(last, text=last.text + run.text)
        else:
            merged.append(run)
    return tuple(merged)


def drop_prefix(runs: Sequence[Run], count: int) -> Inline:
    """The runs without their first `count` characters."""
    kept: list[Run] = []
    for run in runs:
        if count >= len(run.text):
            count -= len(run.text)
            continue
        kept.append(replace(run, text=run.text[count:]) if count else run)
        count = 0
    return tuple(kept)


def take_prefix(runs: Sequence[Run], count: int) -> Inline:
    """The first `count` characters of the runs."""
    kept: list[Run] = []
    for run in runs:
        if count <= 0:
            break
        kept.append(run if len(run.text) <= count else replace(run, text=run.text[:count]))
        count -= len(run.text)
    return tuple(kept)


def trim(runs: Sequence[Run], chars: str = " \t\n\u00a0", *, keep_breaks: bool = False) -> Inline:
    """Whitespace (and line breaks, unless kept) cut from both ends."""
    items = [r for r in runs if r.text]

    def blank(run: Run) -> bool:
        return (run.is_break and not keep_breaks) or (
            not run.is_break and not run.text.strip(chars)
        )

    while items and blank(items[0]):
        items.pop(0)
    while items and blank(items[-1]):
        items.pop()
    if not items:
        return ()
    if not items[0].is_break:
        items[0] = replace(items[0], text=items[0].text.lstrip(chars))
    if not items[-1].is_break:
        items[-1] = replace(items[-1], text=items[-1].text.rstrip(chars))
    return merge(items)


def trim_start(runs: Sequence[Run], chars: str) -> Inline:
    """Leading `chars` (and whitespace) cut: the ": " after a title."""
    text = plain(runs)
    stripped = len(text) - len(text.lstrip(chars + " \t\u00a0"))
    return drop_prefix(runs, stripped)


def collapse(runs: Sequence[Run]) -> Inline:
    """Whitespace runs inside text collapsed to one space (line breaks kept)."""
    out = [r if r.is_break else replace(r, text=re.sub(r"[ \t\r\n]+", " ", r.text)) for r in runs]
    return trim(out)


def is_anchor(run: Run) -> bool:
    return run.url.startswith("#")


def only_anchors(runs: Sequence[Run]) -> bool:
    """Runs that are in-page links and separators, nothing else (a table of contents line)."""
    linked = False
    for run in runs:
        if is_anchor(run):
            linked = True
        elif run.url or run.text.strip(" \t·|•-–—/>»\n"):
            return False
    return linked


def without_anchors(runs: Sequence[Run]) -> Inline:
    """In-page links (which go nowhere in an email) as plain text."""
    if not any(is_anchor(run) for run in runs):
        return tuple(runs)
    return merge(replace(run, url="") if is_anchor(run) else run for run in runs)
