"""A whole web page saved as HTML (`<!DOCTYPE html>…`), narrowed to its article.

A saved page holds far more than the article: the head, scripts and styles, the site's
navigation, sidebars, forms and footer. When the page marks its article (`<article>`, else
`<main>`), only that is read; the rest goes either way. What goes is blanked, not cut, so
every line keeps its number, and the Markdown reader then reduces the HTML that is left.
"""

from __future__ import annotations

import re

_DOCUMENT = re.compile(
    r"\A\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)\b", re.IGNORECASE | re.DOTALL
)
_REGION = r"<({tag})\b[^>]*>.*?</\1\s*>"
_ALWAYS = re.compile(
    _REGION.format(tag="head|script|style|noscript|template|nav|aside|form|footer|iframe|svg"),
    re.IGNORECASE | re.DOTALL,
)
_MAIN = ("article", "main")


def is_web_page(text: str) -> bool:
    return _DOCUMENT.match(text[:2000]) is not None


def narrow_web_page(text: str) -> tuple[str, int, str]:
    """(the page with only its article left, how many lines were blanked, the tag that
    marked the article or "")."""
    kept = text
    marked = ""
    for tag in _MAIN:
        found = list(re.finditer(_REGION.format(tag=tag), kept, re.IGNORECASE | re.DOTALL))
        if found:
            # The longest one: a page may also have small <article> teasers in a sidebar.
            main = max(found, key=lambda match: len(match[0]))
            kept = _blank(kept[: main.start()]) + main[0] + _blank(kept[main.end() :])
            marked = tag
            break
    kept = _ALWAYS.sub(lambda match: _blank(match[0]), kept)
    blanked = sum(
        1
        for old, new in zip(text.split("\n"), kept.split("\n"), strict=True)
        if old.strip() and not new.strip()
    )
    return kept, blanked, marked


def _blank(text: str) -> str:
    """The text with everything but its line breaks removed."""
    return "\n" * text.count("\n")
