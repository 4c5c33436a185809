"""Web-page furniture that comes along when an article is copied from its page.

Blog platforms wrap an article in things that are not the article: navigation ("Skip to
content", "Home » Blog"), buttons ("Follow", "Listen", "Share", "Subscribe now"), counters
(claps, comments), the byline and date, the reading time, photo credits, "back to top"
links, and after the last word the page's footer ("Share this:", "Related", "Written by",
"Leave a Reply", "Recommended from Medium"). In an email they are noise or, worse, buttons
that do nothing.

A line that is only furniture is dropped where it stands (`is_furniture`). A line that
opens the page's footer (`opens_footer`) ends the article: the structure drops it and
everything after it. Both are told by the whole line, never by a word inside a sentence,
and each drop is noted, quoting the line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from course.article.chunks import Chunk, ChunkKind, Notes
from course.article.shapes import item_marker, quote

FURNITURE_NOTE = "dropped as parts of the web page (navigation, buttons, byline), not the article"
_LISTED = 20
_PERSON = re.compile(r"[A-Z][\w'’-]+(?:\s+[A-Z][\w'’.-]*){1,3}")
DROPPED = (
    "dropped: it reads as part of the web page (navigation, a button, a byline), not the article"
)
# Symbols that decorate a furniture line: arrows on "back to top", bullets, separators.
_DECORATION = " \t\u00a0⬆↑▲^↩←→»«›‹•·|*_-–—:()[]"
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DATE = (
    rf"(?:{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?(?:\s+\d{{4}})?|\d{{1,2}}\s+{_MONTH},?(?:\s+\d{{4}})?"
    r"|\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4})"
)
_NAME = r"[^\W\d_][\w'’.-]*(?:\s+[^\W\d_][\w'’.-]*){0,3}"
# Furniture that is one of a few fixed phrases (looked up, lower case, in a set).
_PHRASES = frozenset(
    [
        "top of page",
        "back to top",
        "go to top",
        "scroll to top",
        "skip to content",
        "skip to main content",
        "skip to navigation",
        "menu",
        "main menu",
        "home",
        "search",
        "toggle",
        "toggle navigation",
        "share",
        "share this",
        "share this article",
        "share this post",
        "share this story",
        "tweet",
        "pin it",
        "email",
        "print",
        "facebook",
        "twitter",
        "x",
        "pinterest",
        "whatsapp",
        "linkedin",
        "reddit",
        "copy link",
        "advertisement",
        "sponsored content",
        "sign in",
        "sign up",
        "login",
        "log in",
        "subscribe",
        "subscribe now",
        "get the app",
        "open in app",
        "member-only story",
        "listen",
        "follow",
        "following",
        "clap",
        "claps",
        "save",
        "bookmark",
        "response",
        "responses",
        "reply",
        "close",
        "previous",
        "next",
        "read more",
        "continue reading",
        "loading",
        "cancel reply",
        "click to tweet",
        "tweet this",
        "pin this",
        "pin it for later",
        "pin this for later",
        "save for later",
        "save it for later",
        "save this for later",
    ]
)
# The rest, matched against the line in lower case.
_FURNITURE = re.compile(
    r"(?:share on \w+|(?:like )?loading\.*|"
    rf"\d+\s*min(?:ute)?s?\s+read(?:\s*[·•|]\s*{_DATE})?|"
    r"(?:\d+|an?)\s+(?:years?|months?|weeks?|days?|hours?|minutes?)\s+ago|"
    rf"(?:(?:posted|published|updated|last updated)(?:\s+on)?\s+)?{_DATE}(?:\s+by\s+{_NAME})?|"
    rf"(?:posted|published|written)\s+by\s+{_NAME}(?:\s+on\s+{_DATE})?|"
    r"(?:photo|image|picture)s?(?: credit)?(?: by| via|:)\s.{1,80}?|"
    r"(?:source|credit)s?:\s*(?:unsplash|pexels|pixabay|shutterstock|getty images|canva).*|"
    r"thanks for reading[^.!]*[.!]?\s*subscribe\b.*|"
    r"(?:related|read more|also read|read also|read next|recommended|you (?:may|might) also "
    r"like|see more)\s*:\s.{1,120}|"
    r"home\s*[>»/›].*"
    r")"
)
_BY_SEPARATOR = re.compile(r"\s*[·•|]\s*|,\s+(?=\D)")
# "By Sam Example · March 3, 2023": a byline, told by its capitals.
_BY = re.compile(r"[Bb]y\s+[A-Z][\w'’-]+(?:\s+[A-Z][\w'’.-]*){1,3}(?:\s*[·•|,]\s*.{1,40})?")
_BYLINE = re.compile(rf"\d+\s*min(?:ute)?s?\s+read.*|{_DATE}|(?:\d+|an?)\s+\w+\s+ago")
# A blog's section labels above or below an article: "More on Productivity".
_EDGE = re.compile(r"(?:more|read more|also) (?:on|in|about) .{1,40}", re.IGNORECASE)
_NAV_SEPARATOR = re.compile(r"\s*[•|·]\s*|\s+[–—/]\s+")
_NAV_PARTS = 3
_NAV_WORDS = 3
_MAX_FURNITURE_CHARS = 140
_MAX_FURNITURE_SPACES = 16
# A counter on its own: "12", "1.2K" (claps, comments, likes).
_COUNTER = re.compile(r"[\d.,]+\s*[kKmM]?")
_FOOTER = re.compile(
    r"(?:share this(?: article| post| story)?|like this|related(?: posts| articles| reading)?|"
    r"you (?:may|might) also like|more from .{1,60}|recommended from .{1,40}|"
    r"written by .{1,60}|leave a (?:reply|comment)(?: cancel reply)?|post navigation|"
    r"\d+ (?:comments?|responses?)|comments?|responses?|"
    r"keep reading with a .{1,40}|this post is for (?:paid )?subscribers)",
    re.IGNORECASE,
)


def _core(text: str) -> str:
    return " ".join(text.split()).strip(_DECORATION)


@lru_cache(maxsize=4096)
def is_furniture(text: str) -> bool:
    """A whole line that is web-page furniture, not the article's words."""
    if len(text) > _MAX_FURNITURE_CHARS or text.count(" ") > _MAX_FURNITURE_SPACES:
        return False
    flat = " ".join(text.split())
    core = _core(flat)
    if not core:
        # Nothing but separators and arrows ("--", "·", "⬆").
        return bool(flat)
    lower = core.lower()
    return (
        lower in _PHRASES
        or _FURNITURE.fullmatch(lower) is not None
        or _COUNTER.fullmatch(core) is not None
        or (_BY.fullmatch(core) is not None and _by_rest(core))
    )


def _by_rest(core: str) -> bool:
    """What follows a byline's name is dates and reading times, if anything."""
    parts = _BY_SEPARATOR.split(core)
    return all(_BYLINE.fullmatch(part.strip().lower()) for part in parts[1:])


def opens_footer(text: str) -> bool:
    """A whole line that opens the page's footer: the article has ended above it."""
    if len(text) > _MAX_FURNITURE_CHARS:
        return False
    return _FOOTER.fullmatch(_core(text)) is not None


def drop_furniture(chunks: Sequence[Chunk], notes: Notes) -> list[Chunk]:
    """The chunks without the one-line paragraphs and headings that are furniture, and
    without the author's name right above a byline's furniture ("Sam Example", then
    "Follow" or the date). One note lists what went.

    A line that opens the page's footer stays: the structure ends the article there."""
    kept: list[Chunk] = []
    dropped: list[Chunk] = []
    first_item, last_item = _item_span(chunks)
    footer = next(
        (i for i in range(last_item + 1, len(chunks)) if footer_line(chunks[i])), len(chunks)
    )
    for index, chunk in enumerate(chunks):
        text = chunk.text
        if index < first_item and _one_line(chunk) and (is_nav_line(text) or _edge(text)):
            dropped.append(chunk)
            continue
        if index < footer and _one_line(chunk) and is_furniture(text) and not opens_footer(text):
            if kept and _byline(text) and _is_name(kept[-1]):
                dropped.append(kept.pop())
            dropped.append(chunk)
            continue
        kept.append(chunk)
    if dropped:
        dropped.sort(key=lambda chunk: chunk.line)
        listed = "; ".join(f"line {c.line} {quote(c.text, 60)}" for c in dropped[:_LISTED])
        more = f"; and {len(dropped) - _LISTED} more" if len(dropped) > _LISTED else ""
        notes.add(None, f"{FURNITURE_NOTE}: {listed}{more}")
    return kept


def _item_span(chunks: Sequence[Chunk]) -> tuple[int, int]:
    """The first and the last chunk that look like items (a numbered line or list). The
    structure cuts the page's footer after the last, so nothing after the first footer line
    there is dropped line by line; navigation is looked for only above the first."""
    items = [
        i
        for i, c in enumerate(chunks)
        if c.kind is ChunkKind.LIST or (c.lines and item_marker(c.text) is not None)
    ]
    return (items[0], items[-1]) if items else (len(chunks), -1)


def _edge(text: str) -> bool:
    return _EDGE.fullmatch(_core(text)) is not None and not text.rstrip().endswith(".")


def is_nav_line(text: str) -> bool:
    """A line of three or more short names between separators: "Website • Contributing •
    License", "Home | About | Contact"."""
    parts = [part.strip() for part in _NAV_SEPARATOR.split(text.strip())]
    return len(parts) >= _NAV_PARTS and all(
        part
        and len(part.split()) <= _NAV_WORDS
        and part[-1] not in ".,;:!?"
        and not part[0].islower()
        for part in parts
    )


def _byline(text: str) -> bool:
    """Furniture that follows an author's name: a follow button, a date, a reading time."""
    core = _core(text).lower()
    return core in ("follow", "following") or _BYLINE.fullmatch(core) is not None


def _is_name(chunk: Chunk) -> bool:
    """A line that is only a person's name: two to four capitalised words."""
    return _one_line(chunk) and _PERSON.fullmatch(chunk.text.strip()) is not None


def _one_line(chunk: Chunk) -> bool:
    return chunk.kind in (ChunkKind.PARAGRAPH, ChunkKind.HEADING) and len(chunk.lines) == 1


def footer_line(chunk: Chunk) -> bool:
    """A heading or one-line paragraph that opens the page's footer."""
    return _one_line(chunk) and opens_footer(chunk.text)
