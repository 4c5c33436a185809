"""Checks MRML skips: unknown `mj-` tags pass through silently, and its errors carry no line."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from difflib import SequenceMatcher
from html.parser import HTMLParser

from course.errors import TemplateError

KNOWN_TAGS = frozenset(
    [
        "mjml",
        "mj-head",
        "mj-body",
        "mj-attributes",
        "mj-all",
        "mj-class",
        "mj-breakpoint",
        "mj-font",
        "mj-html-attributes",
        "mj-html-attribute",
        "mj-selector",
        "mj-preview",
        "mj-style",
        "mj-title",
        "mj-include",
        "mj-accordion",
        "mj-accordion-element",
        "mj-accordion-title",
        "mj-accordion-text",
        "mj-button",
        "mj-carousel",
        "mj-carousel-image",
        "mj-column",
        "mj-divider",
        "mj-group",
        "mj-hero",
        "mj-image",
        "mj-navbar",
        "mj-navbar-link",
        "mj-raw",
        "mj-section",
        "mj-social",
        "mj-social-element",
        "mj-spacer",
        "mj-table",
        "mj-text",
        "mj-wrapper",
    ]
)


class _TagWalker(HTMLParser):
    """Tracks open `mj-` tags with their lines; records the first problem found."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, int]] = []
        self.problem: Problem | None = None

    def _note(self, message: str, token: str) -> None:
        if self.problem is None:
            self.problem = Problem(self.getpos()[0], message, token)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not _is_mjml(tag):
            return
        self._check_tag(tag, dict(attrs))
        self.stack.append((tag, self.getpos()[0]))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if _is_mjml(tag):
            self._check_tag(tag, dict(attrs))

    def _check_tag(self, tag: str, attrs: dict[str, str | None]) -> None:
        if tag not in KNOWN_TAGS:
            self._note(f"unknown MJML tag <{tag}>", f"<{tag}")
        elif tag == "mj-style" and "inline" in attrs:
            self._note(
                "<mj-style inline> is not inlined by MRML; put styles in mj-attributes",
                f"<{tag}",
            )

    def handle_endtag(self, tag: str) -> None:
        if not _is_mjml(tag):
            return
        if not self.stack or self.stack[-1][0] != tag:
            opened = (
                f"<{self.stack[-1][0]}> from line {self.stack[-1][1]}" if self.stack else "nothing"
            )
            self._note(f"</{tag}> closes {opened}", f"</{tag}")
            return
        self.stack.pop()


def _is_mjml(tag: str) -> bool:
    return tag == "mjml" or tag.startswith("mj-")


def _walk(source: str) -> _TagWalker:
    walker = _TagWalker()
    walker.feed(source)
    walker.close()
    if walker.problem is None and walker.stack:
        tag, line = walker.stack[-1]
        walker.problem = Problem(line, f"<{tag}> is never closed", f"<{tag}")
    return walker


def check_mjml(source: str, where: str, templates: Mapping[str, str] | None = None) -> None:
    """Raise TemplateError naming the template (or the rendered line) MRML would mishandle.

    `templates` (name -> source) are the files the MJML was rendered from: the message names
    the one that holds the offending tag, and its line, rather than the one rendered.
    """
    problem = _walk(source).problem
    if problem is not None:
        raise TemplateError(f"{_position(problem, source, where, templates)}: {problem.message}")


def locate_mjml_error(source: str, where: str, templates: Mapping[str, str] | None = None) -> str:
    """Best guess at where MRML failed: a template and line, or the rendered line."""
    problem = _walk(source).problem
    return where if problem is None else _position(problem, source, where, templates)


@dataclass(frozen=True)
class Problem:
    """The first thing MRML would mishandle: the rendered line, what, and the tag's text."""

    line: int
    message: str
    token: str  # "<mj-colum" or "</mj-section": what to look for in the templates


def _position(
    problem: Problem, source: str, where: str, templates: Mapping[str, str] | None
) -> str:
    found = _blame(problem, source, templates or {})
    if found is None:
        return f"{where}: rendered MJML line {problem.line}"
    name, line = found
    return f"{name}: line {line}, rendered as {where}"


def _blame(problem: Problem, source: str, templates: Mapping[str, str]) -> tuple[str, int] | None:
    """The template line that holds the tag, most like the rendered line when several do."""
    rendered = source.splitlines()
    shown = rendered[problem.line - 1].strip() if 0 < problem.line <= len(rendered) else ""
    pattern = re.compile(re.escape(problem.token) + r"(?=[\s/>]|$)")
    candidates = [
        (name, number, text.strip())
        for name, template in templates.items()
        for number, text in enumerate(template.splitlines(), start=1)
        if pattern.search(text)
    ]
    if not candidates:
        return None
    best = max(candidates, key=lambda c: SequenceMatcher(None, c[2], shown).ratio())
    return best[0], best[1]
