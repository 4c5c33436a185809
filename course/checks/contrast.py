"""Text colour against its background, read from the inline styles of compiled HTML.

Email clients that drop `<style>` show only inline styles, so those are what a reader
gets: every text run's colour and size come from the nearest element that sets them,
its background from the nearest that paints one (`background`, `background-color` or
`bgcolor`). Ratios are WCAG 2.x contrast ratios.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser

AA_RATIO = 4.5
MIN_FONT_PX = 14.0
DEFAULT_COLOUR = (0, 0, 0)
DEFAULT_BACKGROUND = (255, 255, 255)
DEFAULT_FONT_PX = 16.0
VOID = frozenset(
    ("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr")
)
NAMED = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "red": (255, 0, 0),
    "green": (0, 128, 0),
    "blue": (0, 0, 255),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
    "silver": (192, 192, 192),
    "yellow": (255, 255, 0),
    "orange": (255, 165, 0),
    "purple": (128, 0, 128),
    "navy": (0, 0, 128),
    "maroon": (128, 0, 0),
}
HEX = re.compile(r"#([0-9a-f]{3}|[0-9a-f]{6})\b")
RGB = re.compile(r"rgba?\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*(?:,\s*([\d.]+%?)\s*)?\)")
SIZE = re.compile(r"([\d.]+)\s*(px|pt|em|rem|%)")

Rgb = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class TextRun:
    """A run of text as a client without `<style>` shows it."""

    text: str
    colour: Rgb
    background: Rgb
    font_px: float
    hidden: bool

    @property
    def ratio(self) -> float:
        return contrast_ratio(self.colour, self.background)


@dataclass(frozen=True, slots=True)
class _Box:
    tag: str
    colour: Rgb
    background: Rgb
    font_px: float
    hidden: bool


def parse_colour(value: str) -> Rgb | None:
    """`#rgb`, `#rrggbb`, `rgb()`/`rgba()` (opaque only) or a basic name; None otherwise."""
    value = value.strip().lower()
    if match := HEX.match(value):
        digits = match[1]
        if len(digits) == 3:
            digits = "".join(ch * 2 for ch in digits)
        return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))
    if match := RGB.match(value):
        alpha = match[4]
        if alpha is not None and _alpha(alpha) < 1:
            return None  # a translucent paint: what shows through is the ancestor's
        return (int(match[1]), int(match[2]), int(match[3]))
    return NAMED.get(value.split()[0]) if value else None


def paint_colour(value: str) -> Rgb | None:
    """The colour in a `background` shorthand (`#fff url(x.png) no-repeat`), if any."""
    if found := parse_colour(value):
        return found
    value = value.lower()
    match = HEX.search(value) or RGB.search(value)
    return parse_colour(match[0]) if match else None


def _alpha(value: str) -> float:
    return float(value[:-1]) / 100 if value.endswith("%") else float(value)


def relative_luminance(rgb: Rgb) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(first: Rgb, second: Rgb) -> float:
    light, dark = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def hex_colour(rgb: Rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def inline_style(value: str | None) -> dict[str, str]:
    """`a:b;c:d` -> {'a': 'b', 'c': 'd'}; later declarations win, as in CSS."""
    found: dict[str, str] = {}
    for declaration in (value or "").split(";"):
        name, colon, rest = declaration.partition(":")
        if colon:
            found[name.strip().lower()] = rest.replace("!important", "").strip()
    return found


def font_size(value: str, parent_px: float) -> float:
    match = SIZE.match(value.strip().lower())
    if not match:
        return parent_px
    number, unit = float(match[1]), match[2]
    if unit == "px":
        return number
    if unit == "pt":
        return number * 4 / 3
    if unit == "%":
        return parent_px * number / 100
    if unit == "rem":
        return DEFAULT_FONT_PX * number
    return parent_px * number


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        root = _Box("", DEFAULT_COLOUR, DEFAULT_BACKGROUND, DEFAULT_FONT_PX, False)
        self.stack: list[_Box] = [root]
        self.runs: list[TextRun] = []
        self.skip = 0  # inside <head>, <style>, <title>: nothing a reader sees

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("head", "style", "title", "script"):
            self.skip += 1
        if tag in VOID:
            return
        found = dict(attrs)
        style = inline_style(found.get("style"))
        parent = self.stack[-1]
        # <font color> is old, but some templates still carry it.
        colour = parse_colour(style.get("color") or found.get("color") or "") or parent.colour
        paint = style.get("background-color") or style.get("background") or found.get("bgcolor")
        background = paint_colour(paint or "") or parent.background
        size = font_size(style["font-size"], parent.font_px) if "font-size" in style else None
        hidden = parent.hidden or style.get("display", "").lower() == "none"
        self.stack.append(
            _Box(tag, colour, background, parent.font_px if size is None else size, hidden)
        )

    def handle_endtag(self, tag: str) -> None:
        if tag in ("head", "style", "title", "script"):
            self.skip = max(0, self.skip - 1)
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        text = " ".join(data.replace("\u200c", " ").replace("\xa0", " ").split())
        if not text or self.skip:
            return
        box = self.stack[-1]
        self.runs.append(TextRun(text, box.colour, box.background, box.font_px, box.hidden))


def text_runs(html: str) -> list[TextRun]:
    """Every run of text in the body, with the colours and size its inline styles give it."""
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return reader.runs


@dataclass(frozen=True, slots=True)
class Pairing:
    """One text colour on one background, with how much text uses it."""

    colour: Rgb
    background: Rgb
    smallest_px: float
    sample: str
    runs: int
    hidden: bool

    @property
    def ratio(self) -> float:
        return contrast_ratio(self.colour, self.background)

    def describe(self) -> str:
        return (
            f"{hex_colour(self.colour)} on {hex_colour(self.background)}: {self.ratio:.2f}:1"
            f"{' (hidden preheader)' if self.hidden else ''}"
        )


def pairings(html: str) -> list[Pairing]:
    """The distinct (colour, background) pairs of the message, in order of first use."""
    grouped: dict[tuple[Rgb, Rgb, bool], list[TextRun]] = {}
    for run in text_runs(html):
        grouped.setdefault((run.colour, run.background, run.hidden), []).append(run)
    return [
        Pairing(
            colour,
            background,
            min(r.font_px for r in runs),
            runs[0].text[:60],
            len(runs),
            hidden,
        )
        for (colour, background, hidden), runs in grouped.items()
    ]


def too_small(html: str, minimum: float = MIN_FONT_PX) -> Iterator[TextRun]:
    """Visible text set smaller than `minimum` pixels."""
    return (r for r in text_runs(html) if not r.hidden and r.font_px < minimum)
