"""Checks MRML skips: unknown `mj-` tags pass through silently, and its errors carry no line."""

from __future__ import annotations

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
        self.problem: tuple[int, str] | None = None

    def _note(self, message: str) -> None:
        if self.problem is None:
            self.problem = (self.getpos()[0], message)

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
            self._note(f"unknown MJML tag <{tag}>")
        elif tag == "mj-style" and "inline" in attrs:
            self._note("<mj-style inline> is not inlined by MRML; put styles in mj-attributes")

    def handle_endtag(self, tag: str) -> None:
        if not _is_mjml(tag):
            return
        if not self.stack or self.stack[-1][0] != tag:
            opened = (
                f"<{self.stack[-1][0]}> from line {self.stack[-1][1]}" if self.stack else "nothing"
            )
            self._note(f"</{tag}> closes {opened}")
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
        walker.problem = (line, f"<{tag}> is never closed")
    return walker


def check_mjml(source: str, where: str) -> None:
    """Raise TemplateError naming the line of the rendered MJML that MRML would mishandle."""
    problem = _walk(source).problem
    if problem is not None:
        line, message = problem
        raise TemplateError(f"{where}: rendered MJML line {line}: {message}")


def locate_mjml_error(source: str) -> str:
    """Best guess at where MRML failed, as ' at rendered line N' (or '')."""
    problem = _walk(source).problem
    return f" at rendered line {problem[0]}" if problem else ""
