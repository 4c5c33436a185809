"""Every lesson in Chromium, light and dark (`prefers-color-scheme`): every visible text keeps
WCAG AA contrast on the background actually painted behind it. Two courses: the shipped one,
and one whose article uses every kind of block (quote, lists, code, image, headings,
inline code and emphasis, a button)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from playwright.sync_api import Browser, sync_playwright
from test_preview_browser import CHROMIUM, CHROMIUM_ARGS

from course.build import build_course, sample_recipient
from course.checks.contrast import AA_RATIO, contrast_ratio
from course.config import load_settings
from course.slots import fill

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (scripts/test installs it)"
)

# For each visible text node: its computed colour, and the first opaque background-color
# on it or an ancestor (the canvas when none is set), as "rgb(r, g, b)" strings.
COLOURS_JS = """() => {
  const found = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const opaque = (value) => value && !value.startsWith('rgba(0, 0, 0, 0)');
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const text = node.textContent.replace(/[\\s\\u200c]+/g, ' ').trim();
    if (!text) continue;
    const element = node.parentElement;
    const box = element.getBoundingClientRect();
    if (!box.width || !box.height || element.closest('[style*="display:none"]')) continue;
    let background = null;
    for (let at = element; at && !background; at = at.parentElement) {
      const paint = getComputedStyle(at).backgroundColor;
      if (opaque(paint)) background = paint;
    }
    const canvas = getComputedStyle(document.documentElement).colorScheme;
    found.push({text: text.slice(0, 40), colour: getComputedStyle(element).color,
                background: background || 'canvas', canvas: canvas,
                size: parseFloat(getComputedStyle(element).fontSize)});
  }
  return found;
}"""
Scheme = Literal["light", "dark"]


def rgb(value: str) -> tuple[int, int, int]:
    parts = value[value.index("(") + 1 : value.index(")")].split(",")
    r, g, b = (int(float(p)) for p in parts[:3])
    return (r, g, b)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def courses(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Each course's lessons as compiled HTML, filled in for the sample subscriber."""
    rich = tmp_path_factory.mktemp("rich")
    (rich / "schedule.yaml").write_text(
        f"course:\n  article: {REPO / 'tests' / 'data' / 'judges-every-block.md'}\n"
        f"  templates: {REPO / 'templates'}\n"
        '  links: {"Click here to get started": "https://example.com/start"}\n'
    )
    pages = {}
    for name, config in (
        ("shipped", REPO / "schedule.yaml"),
        ("every block", rich / "schedule.yaml"),
    ):
        settings = load_settings(config)
        values = sample_recipient(settings).values()
        lessons = build_course(settings).lessons
        pages[name] = [fill(x.rendered.html, x.rendered.slots, values) for x in lessons]
    return pages


def colours(browser: Browser, pages: list[str], scheme: Scheme) -> list[list[dict[str, object]]]:
    """The text colours of each page, in one browser context set to `scheme`."""
    context = browser.new_context(color_scheme=scheme, viewport={"width": 375, "height": 800})
    try:
        page = context.new_page()
        found = []
        for html in pages:
            page.set_content(html, wait_until="load")
            found.append(page.evaluate(COLOURS_JS))
        return found
    finally:
        context.close()


@pytest.mark.parametrize("course", ["shipped", "every block"])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_text_keeps_aa_contrast(
    browser: Browser, courses: dict[str, list[str]], course: str, scheme: Scheme
) -> None:
    backgrounds = set()
    for day, found in enumerate(colours(browser, courses[course], scheme), 1):
        assert len(found) > 5
        for item in found:
            assert item["background"] != "canvas", f"day {day}: unpainted {item}"
            colour, background = rgb(str(item["colour"])), rgb(str(item["background"]))
            ratio = contrast_ratio(colour, background)
            assert ratio >= AA_RATIO, f"{scheme} day {day}: {ratio:.2f}:1 {item}"
            assert float(str(item["size"])) >= 14, f"day {day}: {item}"
            backgrounds.add(background)
    if scheme == "dark":
        # The dark styles really applied: no light page, card or code box behind any text.
        assert (0xF3, 0xEE, 0xE8) not in backgrounds
        assert (0xFF, 0xFF, 0xFF) not in backgrounds
    else:
        assert {(0xF3, 0xEE, 0xE8), (0xFF, 0xFF, 0xFF)} <= backgrounds
