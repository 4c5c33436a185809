"""The preview in a real browser (Debian's chromium driven by Playwright).

Set DRIPCOURSE_SCREENSHOTS=docs to also write the screenshots in docs/.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from course.config import load_settings
from course.web.preview import start_preview

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1440, "height": 900}
PHONE = 375
RELOAD_TIMEOUT = 10_000  # ms; the page polls every second

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (scripts/test installs it)"
)


@dataclass
class Site:
    """A running preview and the project copy it serves."""

    project: Path
    url: str

    def edit(self, name: str, old: str, new: str) -> str:
        path = self.project / name
        original = path.read_text(encoding="utf-8")
        path.write_text(original.replace(old, new, 1), encoding="utf-8")
        return original


def copy_project(target: Path) -> Path:
    for name in ("templates", "examples"):
        shutil.copytree(REPO / name, target / name)
    shutil.copy(REPO / "schedule.yaml", target / "schedule.yaml")
    return target


def serve(project: Path) -> Iterator[Site]:
    server = start_preview(load_settings(project / "schedule.yaml"), 0, spamassassin=False)
    try:
        yield Site(project, server.url)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    yield from serve(copy_project(tmp_path_factory.mktemp("site")))


@pytest.fixture
def own_site(project: Path) -> Iterator[Site]:
    """A server of its own, for a test that edits the project."""
    yield from serve(project)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)
    opened = context.new_page()
    opened.set_default_timeout(RELOAD_TIMEOUT)
    yield opened
    context.close()


def screenshot(page: Page, name: str) -> None:
    """Write docs/<name>.png when DRIPCOURSE_SCREENSHOTS names a folder."""
    folder = os.environ.get("DRIPCOURSE_SCREENSHOTS")
    if folder:
        target = REPO / folder
        target.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(target / f"{name}.png"))


def frame_widths(page: Page) -> dict[str, int]:
    """The email frame's width, and its document's scroll and client widths."""
    widths: dict[str, int] = page.eval_on_selector(
        "iframe.email",
        """frame => ({
            frame: frame.clientWidth,
            scroll: frame.contentDocument.documentElement.scrollWidth,
            client: frame.contentDocument.documentElement.clientWidth,
        })""",
    )
    return widths


def simulate(project: Path) -> None:
    # --in-place: the inbox page shows the real inbox, which the sandbox never fills.
    command = [sys.executable, "-m", "course.cli", "simulate", "--in-place", "--days", "2"]
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_the_index_lists_every_day(page: Page, site: Site) -> None:
    page.goto(site.url)
    expect(page.locator("tr[data-day]")).to_have_count(15)
    expect(page.locator("tr[data-day='3'] .subject")).to_contain_text("Day 3 of 15")
    screenshot(page, "preview-index")


def test_a_lesson_at_phone_width_as_text_and_as_another_subscriber(page: Page, site: Site) -> None:
    errors: list[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.goto(site.url)
    page.click("tr[data-day='3'] a")
    expect(page).to_have_url(re.compile(r"/lessons/3$"))
    screenshot(page, "preview-lesson-desktop")

    page.click("[data-width='phone']")
    expect(page).to_have_url(re.compile(r"width=phone"))
    assert frame_widths(page)["frame"] == PHONE
    screenshot(page, "preview-lesson-phone")

    page.click("[data-tab='text']")
    expect(page.locator("[data-panel='text']")).to_be_visible()
    expect(page.locator("[data-panel='html']")).to_be_hidden()
    expect(page.locator("pre.text")).to_contain_text("Hi Sample Reader,")

    page.select_option("select[name='as']", "ben@example.com")
    expect(page).to_have_url(re.compile(r"as=ben%40example.com"))
    expect(page.locator("pre.text")).to_contain_text("Hi Ben,")  # still on the text tab
    page.click("[data-tab='html']")
    assert frame_widths(page)["frame"] == PHONE  # and still at phone width
    page.click("a[rel='next']")
    expect(page).to_have_url(re.compile(r"/lessons/4\?.*as=ben"))
    assert errors == []  # no script or policy errors along the way


def test_no_lesson_overflows_a_phone_screen(page: Page, site: Site) -> None:
    for day in range(1, 16):
        page.goto(f"{site.url}lessons/{day}?width=phone")
        widths = frame_widths(page)
        assert widths["frame"] == PHONE, day
        assert widths["scroll"] <= widths["client"], f"day {day} overflows: {widths}"


def test_the_inbox_fills_as_mail_arrives(page: Page, site: Site) -> None:
    page.goto(f"{site.url}inbox")
    expect(page.locator(".empty")).to_contain_text("The inbox is empty")
    simulate(site.project)
    expect(page.locator("tr[data-key]").first).to_be_visible()  # reloaded by itself
    page.fill("input[name='recipient']", "chika@")
    page.click("button:has-text('Filter')")
    expect(page.locator("tr[data-recipient='chika@example.com']")).not_to_have_count(0)
    expect(page.locator("tr[data-key]:not([data-recipient='chika@example.com'])")).to_have_count(0)
    page.locator("tr[data-key] td a").last.click()
    expect(page.locator("h1")).to_contain_text("Day")
    page.click("[data-tab='headers']")
    expect(page.locator("[data-panel='headers']")).to_contain_text("chika@example.com")


def test_send_test_from_the_page(page: Page, site: Site) -> None:
    page.goto(f"{site.url}lessons/5?as=dev@example.com")
    page.fill("input[name='to']", "me@example.org")
    page.click("button:has-text('Send test')")
    expect(page.locator(".notice.ok")).to_contain_text("sent to me@example.org")
    page.click(".notice.ok a")
    expect(page.locator("tr[data-recipient='me@example.org'][data-day='5']")).to_have_count(1)


def test_the_open_page_follows_edits_and_shows_template_errors(page: Page, own_site: Site) -> None:
    page.goto(f"{own_site.url}lessons/2")
    email = page.frame_locator("iframe.email")
    expect(email.locator("body")).to_contain_text("Hi Sample Reader,")
    original = own_site.edit("templates/lesson.mjml", "Hi {{", "Edited live. Hi {{")
    expect(email.locator("body")).to_contain_text("Edited live.")
    own_site.edit("templates/lesson.mjml", "{% endblock %}", "{% if %}{% endblock %}")
    expect(page.locator("pre.problem")).to_contain_text("lesson.mjml: line 26")
    (own_site.project / "templates" / "lesson.mjml").write_text(original, encoding="utf-8")
    expect(email.locator("body")).to_contain_text("Hi Sample Reader,")


def page_overflow(page: Page) -> dict[str, int]:
    """How wide the page's content is against the window: sideways scrolling if scroll > inner."""
    widths: dict[str, int] = page.evaluate(
        "() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})"
    )
    return widths


def test_on_a_phone_no_page_scrolls_sideways(browser: Browser, site: Site) -> None:
    context = browser.new_context(viewport={"width": PHONE, "height": 740})
    phone = context.new_page()
    phone.set_default_timeout(RELOAD_TIMEOUT)
    try:
        if not any((site.project / "state" / "inbox" / "new").glob("*")):
            simulate(site.project)
        phone.goto(site.url)
        widths = page_overflow(phone)
        assert widths["scroll"] <= widths["inner"], f"the index scrolls sideways: {widths}"
        # The lessons are cards: every day's subject, size and checks are on the screen.
        for cell in ("tr[data-day='15'] .subject", "tr[data-day='15'] .size", ".badge"):
            box = phone.locator(cell).first.bounding_box()
            assert box is not None, cell
            assert 0 <= box["x"] <= box["x"] + box["width"] <= PHONE, cell
        title = phone.locator(".top .where")
        assert title.evaluate("e => e.scrollWidth <= e.clientWidth"), "the title is clipped"

        phone.goto(f"{site.url}lessons/3")
        widths = page_overflow(phone)
        assert widths["scroll"] <= widths["inner"], f"the lesson scrolls sideways: {widths}"
        # No width chosen: the phone preset, and the frame fits inside the screen.
        expect(phone.locator("[data-width='phone']")).to_have_attribute("aria-pressed", "true")
        frame = frame_widths(phone)
        assert frame["frame"] <= PHONE
        assert frame["scroll"] <= frame["client"], f"the email overflows its frame: {frame}"
        phone.goto(f"{site.url}lessons/3?width=desktop")  # chosen: still no sideways page
        widths = page_overflow(phone)
        assert widths["scroll"] <= widths["inner"], f"desktop frame pushes the page: {widths}"
        phone.click("[data-tab='headers']")
        widths = page_overflow(phone)
        assert widths["scroll"] <= widths["inner"], f"the headers scroll sideways: {widths}"

        phone.goto(f"{site.url}inbox")
        widths = page_overflow(phone)
        assert widths["scroll"] <= widths["inner"], f"the inbox scrolls sideways: {widths}"
        phone.locator("tr[data-key] a[href^='/inbox/']").first.click()
        expect(phone.locator("iframe.email")).to_be_visible()
        for tab in ("html", "headers", "raw"):
            phone.click(f"[data-tab='{tab}']")
            widths = page_overflow(phone)
            assert widths["scroll"] <= widths["inner"], f"a message ({tab}) scrolls: {widths}"
        screenshot(phone, "preview-message-on-a-phone")
    finally:
        context.close()
