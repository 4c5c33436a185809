"""Calls to action: find them in the article's text and link the ones the operator mapped."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from course.content import Inline, Run, plain

# Phrases that promise a link; in the source article they pointed at affiliate pages.
CALL_TO_ACTION = re.compile(
    r"(click here\b[^.!?)]*|here's the link\b[^.!?)]*"
    r"|read our [\w ]*disclosure|(?:you can )?check out this [\w ]*video\b[^.!?)]*"
    r"|watch(?:ing)? (?:this|that) [\w ]*video\b[^.!?)]*)",
    re.IGNORECASE,
)


_QUOTES = str.maketrans("’‘“”", "''\"\"")


def normalise(text: str) -> str:
    """Fold case and typographic apostrophes/quotes so phrases match as a reader sees them.

    Offsets in the folded text are offsets in the text: a character whose lower case is
    longer (İ) keeps its case.
    """
    quoted = text.translate(_QUOTES)
    folded = quoted.lower()
    if len(folded) == len(text):
        return folded
    return "".join(low if len(low := ch.lower()) == 1 else ch for ch in quoted)


def calls_to_action(text: str) -> list[str]:
    """Every call-to-action phrase in a paragraph, as written."""
    folded = normalise(text)
    return [text[m.start(1) : m.end(1)] for m in CALL_TO_ACTION.finditer(folded)]


def link_phrases(runs: Sequence[Run], links: Mapping[str, str]) -> Inline:
    """The runs with every occurrence of a mapped phrase linked (the article's own links and
    formatting kept); a phrase may span runs, and the earlier (then longer) one wins."""
    text = plain(runs)
    folded = normalise(text)
    spans: list[tuple[int, int, str]] = []
    position = 0
    for start, end, url in _spans(folded, links):
        if start >= position:
            spans.append((start, end, url))
            position = end
    if not spans:
        return tuple(runs)
    cuts = sorted({0, len(text), *(p for s in spans for p in s[:2])})
    linked: list[Run] = []
    offset = 0
    for run in runs:
        end = offset + len(run.text)
        points = [offset, *(c for c in cuts if offset < c < end), end]
        for lo, hi in itertools.pairwise(points):
            piece = replace(run, text=run.text[lo - offset : hi - offset])
            url = next((u for s, e, u in spans if s <= lo and hi <= e), "")
            if url and not piece.url and not piece.is_break:
                piece = replace(piece, url=url)
            if piece.text:
                linked.append(piece)
        offset = end
    return tuple(linked)


def _spans(folded: str, links: Mapping[str, str]) -> list[tuple[int, int, str]]:
    spans = []
    for phrase, url in links.items():
        key = normalise(phrase.strip())
        start = folded.find(key) if key else -1
        while start >= 0:
            spans.append((start, start + len(key), url))
            start = folded.find(key, start + len(key))
    return sorted(spans, key=lambda s: (s[0], -(s[1] - s[0])))


def unlinked(runs: Sequence[Run], links: Mapping[str, str]) -> list[str]:
    """Calls to action in the text that neither a mapped phrase nor the article links."""
    text = plain(runs)
    linked = [p for p in link_phrases(runs, links) if p.url]
    covered = [normalise(p.text) for p in linked]
    return [
        cta
        for cta in calls_to_action(text)
        if not any(normalise(cta) in c or c in normalise(cta) for c in covered)
    ]


def is_button(parts: Sequence[Run]) -> bool:
    """A one-sentence paragraph that opens with its only link reads best as a button."""
    urls = [p.url for p in parts if p.url]
    text = "".join(p.text for p in parts).strip(" ()")
    link_text = "".join(p.text for p in parts if p.url)
    contiguous = "".join((p.url and "L") or "-" for p in parts).strip("-").count("-") == 0
    opens_with_link = len(set(urls)) == 1 and contiguous and text.startswith(link_text.strip())
    one_sentence = re.search(r"[.!?]\s+\S", text) is None
    return opens_with_link and one_sentence and len(text) <= 120
