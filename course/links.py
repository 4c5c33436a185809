"""Calls to action: find them in the article's text and link the ones the operator mapped."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# Phrases that promise a link; in the source article they pointed at affiliate pages.
CALL_TO_ACTION = re.compile(
    r"(click here\b[^.!?)]*|here's the link\b[^.!?)]*"
    r"|read our [\w ]*disclosure|(?:you can )?check out this [\w ]*video\b[^.!?)]*"
    r"|watch(?:ing)? (?:this|that) [\w ]*video\b[^.!?)]*)",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Inline:
    """A run of text, linked when `url` is set."""

    text: str
    url: str = ""


def normalise(text: str) -> str:
    """Fold case and typographic apostrophes/quotes so phrases match as a reader sees them."""
    return text.translate(str.maketrans("’‘“”", "''\"\"")).casefold()


def calls_to_action(text: str) -> list[str]:
    """Every call-to-action phrase in a paragraph, as written."""
    folded = normalise(text)
    return [text[m.start(1) : m.end(1)] for m in CALL_TO_ACTION.finditer(folded)]


def link_phrases(text: str, links: Mapping[str, str]) -> tuple[Inline, ...]:
    """Split text into runs, linking every occurrence of a mapped phrase."""
    folded = normalise(text)
    spans = sorted(_spans(folded, links))
    parts: list[Inline] = []
    position = 0
    for start, end, url in spans:
        if start < position:
            continue  # overlapping phrases: the earlier (then longer) one wins
        parts.extend(_plain(text[position:start]))
        parts.append(Inline(text[start:end], url))
        position = end
    parts.extend(_plain(text[position:]))
    return tuple(parts)


def _spans(folded: str, links: Mapping[str, str]) -> list[tuple[int, int, str]]:
    spans = []
    for phrase, url in links.items():
        key = normalise(phrase.strip())
        start = folded.find(key) if key else -1
        while start >= 0:
            spans.append((start, start + len(key), url))
            start = folded.find(key, start + len(key))
    return sorted(spans, key=lambda s: (s[0], -(s[1] - s[0])))


def _plain(text: str) -> list[Inline]:
    return [Inline(text)] if text else []


def unlinked(text: str, links: Mapping[str, str]) -> list[str]:
    """Calls to action in the text that no mapped phrase covers."""
    linked = [p for p in link_phrases(text, links) if p.url]
    covered = [normalise(p.text) for p in linked]
    return [
        cta
        for cta in calls_to_action(text)
        if not any(normalise(cta) in c or c in normalise(cta) for c in covered)
    ]


def is_button(parts: tuple[Inline, ...]) -> bool:
    """A one-sentence paragraph that opens with its only link reads best as a button."""
    linked = [p for p in parts if p.url]
    text = "".join(p.text for p in parts).strip(" ()")
    opens_with_link = text.startswith(linked[0].text) if len(linked) == 1 else False
    one_sentence = re.search(r"[.!?]\s+\S", text) is None
    return opens_with_link and one_sentence and len(text) <= 120
