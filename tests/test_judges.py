"""The emails as outside judges see them: contrast, text size, headings, the preheader,
the footer, SpamAssassin (the real one, local rules only) and `course check`."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from course.build import CourseBuild, build_course, sample_recipient
from course.checks.contrast import (
    AA_RATIO,
    contrast_ratio,
    pairings,
    parse_colour,
    text_runs,
    too_small,
)
from course.checks.markup import scan_html
from course.checks.spam import TARGET_SCORE, parse_verdicts
from course.cli import main
from course.config import DkimAlgorithm, load_settings
from course.dkim import dns_record, generate_key, private_pem
from course.slots import fill
from course.web.preview import start_preview

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PAGE, CARD = (0xF3, 0xEE, 0xE8), (0xFF, 0xFF, 0xFF)
needs_spamassassin = pytest.mark.skipif(
    shutil.which("spamassassin") is None,
    reason="spamassassin is not installed (scripts/test installs it)",
)


@pytest.fixture(scope="module")
def shipped() -> CourseBuild:
    return build_course(load_settings(REPO / "schedule.yaml"))


def sample_html(build: CourseBuild, day: int) -> str:
    """The compiled HTML as the sample subscriber gets it."""
    settings = load_settings(REPO / "schedule.yaml")
    rendered = build.lesson(day).rendered
    return fill(rendered.html, rendered.slots, sample_recipient(settings).values())


# Contrast and size, from the inline styles


def test_contrast_ratio_matches_wcag() -> None:
    assert contrast_ratio((0, 0, 0), (255, 255, 255)) == pytest.approx(21)
    assert contrast_ratio((0x77, 0x77, 0x77), (255, 255, 255)) == pytest.approx(4.48, abs=0.01)
    assert contrast_ratio((0x7A, 0x70, 0x67), PAGE) == pytest.approx(4.19, abs=0.01)
    assert parse_colour("#FFF") == (255, 255, 255)
    assert parse_colour("rgb(1, 2, 3)") == (1, 2, 3)
    assert parse_colour("rgba(1, 2, 3, 0.5)") is None
    assert parse_colour("inherit") is None


def test_text_runs_take_colour_size_and_background_from_the_nearest_ancestor() -> None:
    html = (
        '<body style="background-color:#f3eee8"><div style="color:#333;font-size:18px">a'
        '<table bgcolor="#9c2f5a"><tr><td><a style="color:#fff;font-size:12pt">b</a></td></tr>'
        '</table><span style="font-size:75%">c</span></div>'
        '<div style="display:none;color:#2a2a2a;font-size:1px">hidden</div></body>'
    )
    runs = [(r.text, r.colour, r.background, r.font_px, r.hidden) for r in text_runs(html)]
    assert runs == [
        ("a", (0x33, 0x33, 0x33), PAGE, 18, False),
        ("b", (255, 255, 255), (0x9C, 0x2F, 0x5A), 16, False),
        ("c", (0x33, 0x33, 0x33), PAGE, 13.5, False),
        ("hidden", (0x2A, 0x2A, 0x2A), PAGE, 1, True),
    ]
    assert [r.text for r in too_small(html)] == ["c"]
    old_style = '<body bgcolor="#000000"><font color="#ffffff" size="2">e</font></body>'
    assert [(r.colour, r.background) for r in text_runs(old_style)] == [
        ((255, 255, 255), (0, 0, 0))
    ]


def test_every_lesson_meets_wcag_aa_in_every_colour(shipped: CourseBuild) -> None:
    for lesson in shipped.lessons:
        html = sample_html(shipped, lesson.day)
        for pair in pairings(html):
            assert pair.ratio >= AA_RATIO, f"day {lesson.day}: {pair.describe()} {pair.sample!r}"
        assert not list(too_small(html)), f"day {lesson.day}: text under 14 px"
        # The footer (on the page background) and the hidden preheader are among them.
        runs = text_runs(html)
        footer = [r for r in runs if r.text.startswith(("You are getting", "Unsubscribe", "1 Ex"))]
        assert len(footer) == 3
        for run in footer:
            assert (run.background, run.font_px, run.hidden) == (PAGE, 14, False)
            assert run.ratio >= AA_RATIO
        preheader = [r for r in runs if r.hidden]
        assert len(preheader) == 1
        assert preheader[0].text.startswith(lesson.rendered.preheader[:30])
        assert preheader[0].background == PAGE
        assert preheader[0].ratio >= AA_RATIO


def test_the_preheader_is_followed_by_invisible_filler(shipped: CourseBuild) -> None:
    for lesson in shipped.lessons:
        html = lesson.rendered.html
        hidden = re.search(r'<div style="display:none;[^"]*">(.*?)</div>', html, re.S)
        assert hidden is not None
        text = hidden[1]
        assert text.startswith(lesson.rendered.preheader[:40].replace("’", "’"))
        assert text.count("&zwnj;&nbsp;") >= 80
        assert "mso-hide:all" in hidden[0]


def test_color_scheme_meta_and_dark_mode_styles(shipped: CourseBuild) -> None:
    html = shipped.lesson(1).rendered.html
    head = html.split("</head>")[0]
    assert '<meta name="color-scheme" content="light dark"' in head
    assert '<meta name="supported-color-schemes" content="light dark"' in head
    assert "@media (prefers-color-scheme: dark)" in head


# Headings


def test_the_title_is_the_one_h1_and_closing_sections_are_h2(shipped: CourseBuild) -> None:
    for lesson in shipped.lessons:
        headings = scan_html(lesson.rendered.html).headings
        assert [h.text for h in headings if h.level == 1] == [lesson.rendered.lesson.title]
        assert all(h.styled for h in headings)
        assert {h.level for h in headings} <= {1, 2}
    last = scan_html(shipped.lessons[-1].rendered.html).headings
    closing = [s.heading for s in shipped.course.closing if s.heading]
    assert closing
    assert [h.text for h in last if h.level == 2] == closing


def test_headings_are_styled_inline(shipped: CourseBuild) -> None:
    html = shipped.lesson(2).rendered.html
    h1 = re.search(r"<h1 style=\"([^\"]*)\"", html)
    assert h1 is not None
    for prop in ("margin:0", "font-size:28px", "line-height:36px", "color:#1f1a17"):
        assert prop in h1[1]


# The footer


def test_the_footer_says_what_the_link_does_and_is_easy_to_tap(shipped: CourseBuild) -> None:
    for lesson in shipped.lessons:
        html = sample_html(shipped, lesson.day)
        link = re.search(
            r'<a href="[^"]*/unsubscribe/sample" style="([^"]*)">([^<]*)</a>([^<]*)', html
        )
        assert link is not None
        style, words, after = link[1], link[2], " ".join(link[3].split())
        assert words == "Unsubscribe"
        assert after == "opens a page where one button takes you off the course."
        assert "one click" not in html
        # A tap target of at least 44 px: the 20 px line plus 12 px of padding each side.
        assert "display:inline-block" in style
        assert "padding:12px 10px" in style
        text = lesson.rendered.text
        assert "To leave the course, open this page and press its button:" in text
        assert "one click" not in text


def test_feedback_id_is_sent_only_when_set(project: Path) -> None:
    settings = load_settings(project / "schedule.yaml")
    data = build_course(settings).lesson(1).build(sample_recipient(settings), date=NOW)[1]
    assert b"Feedback-ID" not in data
    config = project / "schedule.yaml"
    config.write_text(
        config.read_text().replace(
            "sender:\n", 'sender:\n  feedback_id: "lessons:why-he:dripcourse"\n', 1
        )
    )
    settings = load_settings(config)
    data = build_course(settings).lesson(1).build(sample_recipient(settings), date=NOW)[1]
    assert b"\r\nFeedback-ID: lessons:why-he:dripcourse\r\n" in data


# SpamAssassin, the real one


def test_parse_verdicts_reads_only_the_tagged_header() -> None:
    out = (
        b"X-Spam-Verdict-abc: 0.7 5.0 HTML_FONT_LOW_CONTRAST=0.713,NO_RELAYS=-0.001\r\n"
        b"X-Spam-Verdict-xyz: 9.9 5.0 FORGED=9.9\r\n\r\nbody\r\n"
        b"X-Spam-Verdict-abc: 0.0 5.0\r\n"
    )
    verdicts = parse_verdicts(out, "X-Spam-Verdict-abc")
    assert [(v.score, v.rules) for v in verdicts] == [
        (0.7, (("HTML_FONT_LOW_CONTRAST", 0.713), ("NO_RELAYS", -0.001))),
        (0.0, ()),
    ]


@needs_spamassassin
def test_the_preview_scores_every_lesson_in_the_background(project: Path) -> None:
    """The preview's one SpamAssassin run (-L, the installed rules) over all 15 lessons."""
    server = start_preview(load_settings(project / "schedule.yaml"), 0)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            first = client.get("/lessons/1").text
            assert "scoring in the background" in first
            before = re.search(r'data-checks="(\d+)"', first)
            assert before is not None
            deadline = time.monotonic() + 120
            while client.get("/api/version").json()["checks"] == before[1]:
                assert time.monotonic() < deadline, "SpamAssassin never finished"
                time.sleep(0.2)
            index = client.get("/").text
            pages = [client.get(f"/lessons/{day}").text for day in range(1, 16)]
    finally:
        server.stop()
    assert index.count('class="badge ok"') == 15
    for day, page in enumerate(pages, 1):
        found = re.search(
            r'data-check="SpamAssassin">\s*<span class="dot (\w+)".*?class="detail">([^<]*)<',
            page,
            re.S,
        )
        assert found is not None
        assert found[1] == "ok", f"day {day}: {found[2]}"
        score = float(found[2].split()[0])
        assert score < TARGET_SCORE, f"day {day}: {found[2]}"
        assert "data-checks" not in page  # nothing left to wait for


# course check


def run(project: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.chdir(project),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_course_check_passes_the_shipped_course(project: Path) -> None:
    code, out, _ = run(project, "check", "--verbose", "--no-spamassassin")
    assert code == 0, out
    assert out.count(" ok\n") == 15
    for name in (
        "HTML size",
        "Calls to action",
        "Links",
        "Image alt text",
        "List-Unsubscribe",
        "Plain text",
        "Contrast",
        "Text size",
        "Headings",
        "DKIM",
        "SpamAssassin",
    ):
        assert out.count(f"    {name}: ") == 15, name
    assert (
        "Contrast: ok: 6 colour pairs, all at least 4.5:1; lowest #6d6258 on #f3eee8: 5.15:1" in out
    )
    assert (
        "Skipped: DKIM (sender.dkim is not set); SpamAssassin (--no-spamassassin was given)" in out
    )
    assert out.endswith("All 15 lessons pass.\n")


def test_course_check_fails_on_low_contrast_and_missing_headings(project: Path) -> None:
    layout = project / "templates" / "lesson.mjml"
    text = layout.read_text()
    text = re.sub(r"<h1 style=\"[^\"]*\">(.*?)</h1>", r"\1", text)
    layout.write_text(text)
    frame = project / "templates" / "layout.mjml"
    frame.write_text(
        frame.read_text().replace('name="footer" color="#6d6258"', 'name="footer" color="#7a7067"')
    )
    code, out, _ = run(project, "check", "--no-spamassassin")
    assert code == 1
    assert "    Headings: error: expected one <h1> (the lesson title), found 0" in out
    assert "    Contrast: error: below 4.5:1 (WCAG AA): #7a7067 on #f3eee8: 4.19:1" in out
    assert out.rstrip().endswith("30 failed checks in 15 lessons.")


def test_course_check_verifies_dkim(project: Path) -> None:
    key = generate_key(DkimAlgorithm.ED25519_SHA256)
    path = project / "state" / "dkim-e1.key"
    path.parent.mkdir()
    path.write_bytes(private_pem(key))
    path.chmod(0o600)
    config = project / "schedule.yaml"
    config.write_text(
        config.read_text().replace(
            "sender:\n", "sender:\n  dkim: {selector: e1, algorithm: ed25519-sha256}\n", 1
        )
    )
    code, out, _ = run(project, "check", "-v", "--no-spamassassin")
    assert code == 0
    assert out.count("DKIM: ok: verifies: ed25519-sha256 d=example.com s=e1") == 15
    assert dns_record(key).startswith("v=DKIM1; k=ed25519; p=")


@needs_spamassassin
def test_course_check_runs_spamassassin_once_for_all_lessons(project: Path) -> None:
    """What goes out double-signed (rsa-sha256 and ed25519-sha256) scores under 0.5 too."""
    state = project / "state"
    state.mkdir()
    for selector, algorithm in (
        ("r1", DkimAlgorithm.RSA_SHA256),
        ("e1", DkimAlgorithm.ED25519_SHA256),
    ):
        (state / f"dkim-{selector}.key").write_bytes(private_pem(generate_key(algorithm)))
        (state / f"dkim-{selector}.key").chmod(0o600)
    config = project / "schedule.yaml"
    config.write_text(
        config.read_text().replace(
            "sender:\n",
            "sender:\n  dkim:\n    - {selector: r1}\n"
            "    - {selector: e1, algorithm: ed25519-sha256}\n",
            1,
        )
    )
    code, out, _ = run(project, "check", "-v")
    assert code == 0, out
    assert out.count("DKIM: ok: verifies: rsa-sha256 d=example.com s=r1, ed25519-sha256") == 15
    scores = re.findall(r"SpamAssassin: ok: (-?[\d.]+) points \(([^)]*)\)", out)
    assert len(scores) == 15
    for score, rules in scores:
        assert float(score) < TARGET_SCORE, rules
        assert "HTML_FONT_LOW_CONTRAST" not in rules
    assert "All 15 lessons pass (SpamAssassin" in out
