"""Every check on one email; `course check` and the preview's checks panel both run these."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from course.checks.contrast import AA_RATIO, MIN_FONT_PX, pairings, too_small
from course.checks.markup import Heading, Markup, scan_html
from course.checks.results import Check, clip, listing
from course.checks.spam import TARGET_SCORE, SpamVerdict
from course.checks.view import MessageView
from course.dkim import Keyring, verify
from course.render import CLIP_LIMIT_BYTES, WARN_BYTES, RenderedLesson

SAFE_SCHEMES = ("http://", "https://", "mailto:")


@dataclass(frozen=True)
class Judges:
    """What the checks compare a message with, beyond the message itself.

    `keyring`: the public keys of the configured DKIM signers (empty: DKIM is not
    configured). `spam`: the message's SpamAssassin verdict, or why there is none.
    """

    keyring: Keyring = field(default_factory=lambda: Keyring({}))
    spam: SpamVerdict | str = "not scored"


def message_checks(view: MessageView, judges: Judges | None = None) -> list[Check]:
    """Every check that needs only the message as it went (or would go) out."""
    judges = judges or Judges()
    html = view.html or ""
    markup = scan_html(html)
    return [
        size_check(view),
        link_check(markup.hrefs),
        alt_check(markup.images_without_alt),
        unsubscribe_check(view),
        text_check(view),
        contrast_check(html),
        text_size_check(html),
        heading_check(markup),
        dkim_check(view, judges.keyring),
        spam_check(judges.spam),
    ]


def lesson_checks(
    rendered: RenderedLesson, view: MessageView, judges: Judges | None = None
) -> list[Check]:
    """The message checks plus what only the renderer knows (calls to action)."""
    checks = message_checks(view, judges)
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
        f"no link for {listing(phrases)}; map them under course.links in schedule.yaml",
    )


def link_check(hrefs: list[str]) -> Check:
    bad = [href for href in hrefs if not href.lower().startswith(SAFE_SCHEMES)]
    if not bad:
        return Check("Links", "ok", f"{len(hrefs)} links, all http(s) or mailto")
    return Check("Links", "error", f"not http(s) or mailto: {listing(bad)}")


def alt_check(images: list[str]) -> Check:
    if not images:
        return Check("Image alt text", "ok", "every image has alt text")
    return Check("Image alt text", "warning", f"no alt attribute: {listing(images)}")


def unsubscribe_check(view: MessageView) -> Check:
    if view.has_header("List-Unsubscribe") and view.has_header("List-Unsubscribe-Post"):
        return Check("List-Unsubscribe", "ok", "present (one-click)")
    return Check("List-Unsubscribe", "error", "missing: List-Unsubscribe and -Post headers")


def text_check(view: MessageView) -> Check:
    if view.text is None:
        return Check("Plain text", "error", "the message has no text/plain part")
    if not view.text.strip():
        return Check("Plain text", "error", "the text/plain part is empty")
    return Check("Plain text", "ok", f"{len(view.text.splitlines())} lines")


def contrast_check(html: str) -> Check:
    """WCAG AA for every text colour on its background, as the inline styles set them."""
    pairs = pairings(html)
    if not pairs:
        return Check("Contrast", "skipped", "no text in the HTML part")
    failing = [p for p in pairs if p.ratio < AA_RATIO]
    if failing:
        shown = "; ".join(f"{p.describe()} ({clip(p.sample, 40)!r})" for p in failing[:5])
        return Check("Contrast", "error", f"below {AA_RATIO}:1 (WCAG AA): {shown}")
    lowest = min(pairs, key=lambda p: p.ratio)
    return Check(
        "Contrast",
        "ok",
        f"{len(pairs)} colour pairs, all at least {AA_RATIO}:1; lowest {lowest.describe()}",
    )


def text_size_check(html: str) -> Check:
    small = list(too_small(html))
    if not small:
        return Check("Text size", "ok", f"all visible text at least {MIN_FONT_PX:.0f} px")
    texts = [f"{run.font_px:g} px: {run.text}" for run in small]
    return Check("Text size", "warning", f"under {MIN_FONT_PX:.0f} px: {listing(texts)}")


def heading_check(markup: Markup) -> Check:
    """One `<h1>` (the lesson title), levels that never skip, each styled inline."""
    headings = markup.headings
    problems = []
    top = [h for h in headings if h.level == 1]
    if len(top) != 1:
        problems.append(f"expected one <h1> (the lesson title), found {len(top)}")
    level = 0
    for heading in headings:
        if heading.level > level + 1:
            problems.append(f"<h{heading.level}> {clip(heading.text, 40)!r} skips a level")
        level = heading.level
    problems += [
        f"<h{h.level}> {clip(h.text, 40)!r} has no inline font-size and margin"
        for h in headings
        if not h.styled
    ]
    problems += [f"<h{h.level}> is empty" for h in headings if not h.text]
    if problems:
        return Check("Headings", "error", "; ".join(problems))
    return Check("Headings", "ok", _outline(headings))


def _outline(headings: list[Heading]) -> str:
    counts = [sum(1 for h in headings if h.level == n) for n in range(1, 7)]
    return ", ".join(f"{count} <h{n + 1}>" for n, count in enumerate(counts) if count)


def dkim_check(view: MessageView, keyring: Keyring) -> Check:
    """Each DKIM-Signature verifies (dkimpy, with the configured keys as the DNS)."""
    signatures = verify(view.data, keyring) if view.data else []
    if not keyring:
        if signatures:
            return Check("DKIM", "skipped", "signed, but no key is configured to verify with")
        return Check("DKIM", "skipped", "sender.dkim is not set")
    if not signatures:
        return Check("DKIM", "error", "not signed, though sender.dkim is configured")
    bad = [s for s in signatures if not s.valid]
    if bad:
        return Check("DKIM", "error", "; ".join(s.describe() for s in bad))
    missing = keyring.names() - {f"{s.selector}._domainkey.{s.domain}" for s in signatures}
    if missing:
        return Check("DKIM", "error", f"no signature for {', '.join(sorted(missing))}")
    return Check("DKIM", "ok", "verifies: " + ", ".join(s.describe() for s in signatures))


def spam_check(spam: SpamVerdict | str) -> Check:
    if isinstance(spam, str):
        return Check("SpamAssassin", "skipped", spam)
    if spam.score >= spam.required:
        return Check("SpamAssassin", "error", f"{spam.describe()}: scored as spam")
    if spam.score >= TARGET_SCORE:
        return Check("SpamAssassin", "warning", f"{spam.describe()}: aim for under {TARGET_SCORE}")
    return Check("SpamAssassin", "ok", spam.describe())
