"""What the preview checks in every email, beside the email itself."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Literal

from course.render import CLIP_LIMIT_BYTES, WARN_BYTES, RenderedLesson
from course.web.preview_message import MessageView

Level = Literal["ok", "warning", "error"]
LEVELS: tuple[Level, ...] = ("ok", "warning", "error")
SAFE_SCHEMES = ("http://", "https://", "mailto:")
SHOWN = 5  # offending items listed per check; the count says how many there are in all


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, how it went, and the detail an operator acts on."""

    name: str
    level: Level
    detail: str


class _LinkScanner(HTMLParser):
    """Collects every href and every <img> that has no alt attribute."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.images_without_alt: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if "href" in found and tag in ("a", "area"):
            self.hrefs.append((found["href"] or "").strip())
        if tag == "img" and "alt" not in found:
            self.images_without_alt.append(found.get("src") or "(no src)")


def scan_html(html: str) -> _LinkScanner:
    scanner = _LinkScanner()
    scanner.feed(html)
    scanner.close()
    return scanner


def message_checks(view: MessageView) -> list[Check]:
    """Every check that needs only the message as it went (or would go) out."""
    scanner = scan_html(view.html or "")
    return [
        size_check(view),
        link_check(scanner.hrefs),
        alt_check(scanner.images_without_alt),
        unsubscribe_check(view),
        text_check(view),
    ]


def lesson_checks(rendered: RenderedLesson, view: MessageView) -> list[Check]:
    """The message checks plus what only the renderer knows (calls to action)."""
    checks = message_checks(view)
    checks.insert(1, cta_check(rendered.unlinked))
    return checks


def size_check(view: MessageView) -> Check:
    size = len((view.html or "").encode("utf-8"))
    detail = f"{size / 1000:.1f} KB; Gmail clips at {CLIP_LIMIT_BYTES / 1000:.0f} KB"
    if size >= CLIP_LIMIT_BYTES:
        return Check("HTML size", "error", f"{detail}: it will be clipped")
    if size >= WARN_BYTES:
        return Check("HTML size", "warning", f"{detail}: close to the limit")
    return Check("HTML size", "ok", detail)


def cta_check(unlinked: Iterable[str]) -> Check:
    phrases = list(unlinked)
    if not phrases:
        return Check("Calls to action", "ok", "every call to action has a link")
    return Check(
        "Calls to action",
        "warning",
        f"no link for {_listing(phrases)}; map them under course.links in schedule.yaml",
    )


def link_check(hrefs: list[str]) -> Check:
    bad = [href for href in hrefs if not href.lower().startswith(SAFE_SCHEMES)]
    if not bad:
        return Check("Links", "ok", f"{len(hrefs)} links, all http(s) or mailto")
    return Check("Links", "error", f"not http(s) or mailto: {_listing(bad)}")


def alt_check(images: list[str]) -> Check:
    if not images:
        return Check("Image alt text", "ok", "every image has alt text")
    return Check("Image alt text", "warning", f"no alt attribute: {_listing(images)}")


def unsubscribe_check(view: MessageView) -> Check:
    if view.has_header("List-Unsubscribe") and view.has_header("List-Unsubscribe-Post"):
        return Check("List-Unsubscribe", "ok", "present (one-click)")
    return Check("List-Unsubscribe", "warning", "missing: List-Unsubscribe and -Post headers")


def text_check(view: MessageView) -> Check:
    if view.text is None:
        return Check("Plain text", "error", "the message has no text/plain part")
    if not view.text.strip():
        return Check("Plain text", "error", "the text/plain part is empty")
    return Check("Plain text", "ok", f"{len(view.text.splitlines())} lines")


def worst(checks: Iterable[Check]) -> Level:
    return max((c.level for c in checks), key=LEVELS.index, default="ok")


def _listing(items: list[str]) -> str:
    shown = ", ".join(repr(_clip(item)) for item in items[:SHOWN])
    more = len(items) - SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
