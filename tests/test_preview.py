"""`course preview` over real HTTP: a uvicorn server on a free loopback port, a project copy."""

from __future__ import annotations

import email
import email.policy
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from markupsafe import escape
from support import free_port

from course.backends.inbox import read_inbox
from course.build import build_course
from course.checks import (
    alt_check,
    link_check,
    size_check,
    text_check,
    unsubscribe_check,
    view_message,
    worst,
)
from course.checks.markup import scan_html
from course.config import load_settings
from course.ledger import Ledger
from course.web import preview_inbox
from course.web.preview import PreviewError, start_preview

REPO = Path(__file__).resolve().parent.parent
HOSTILE = "<script>alert(1)</script>"
PAST = "2025-01-06T12:00:00+00:00"


@dataclass
class Preview:
    """A running preview of one project copy, and a client for it."""

    project: Path
    client: httpx.Client
    url: str

    def get(self, path: str, **params: str) -> httpx.Response:
        # httpx drops a query already in `path` when given params, even empty ones.
        return self.client.get(path, params=params) if params else self.client.get(path)

    def page(self, path: str, **params: str) -> str:
        response = self.get(path, **params)
        assert response.status_code == 200, response.text
        return response.text

    def edit(self, name: str, old: str, new: str) -> str:
        """Replace `old` in a project file; returns the original text to restore."""
        path = self.project / name
        original = path.read_text(encoding="utf-8")
        assert old in original, f"{old!r} not in {name}"
        path.write_text(original.replace(old, new, 1), encoding="utf-8")
        return original

    def token(self, day: int = 1) -> str:
        match = re.search(r'name="token" value="([^"]+)"', self.page(f"/lessons/{day}"))
        assert match
        return match[1]

    def origin(self) -> str:
        return self.url.rstrip("/")


def copy_project(target: Path) -> Path:
    for name in ("templates", "examples"):
        shutil.copytree(REPO / name, target / name)
    shutil.copy(REPO / "schedule.yaml", target / "schedule.yaml")
    return target


@contextmanager
def serving(project: Path) -> Iterator[Preview]:
    server = start_preview(load_settings(project / "schedule.yaml"), 0, spamassassin=False)
    try:
        with httpx.Client(base_url=server.url, timeout=20) as client:
            yield Preview(project, client, server.url)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Preview]:
    """One server for the tests that only read (its project is never edited)."""
    with serving(copy_project(tmp_path_factory.mktemp("shared"))) as preview:
        yield preview


@pytest.fixture(scope="module")
def mailed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Preview]:
    """One server over an inbox holding three simulated days, for tests that only read."""
    project = copy_project(tmp_path_factory.mktemp("mailed"))
    simulate(project, 3)
    with serving(project) as preview:
        yield preview


@pytest.fixture
def preview(project: Path) -> Iterator[Preview]:
    """A server of its own, for tests that edit the project or deliver mail."""
    with serving(project) as running:
        yield running


COURSE = (sys.executable, "-m", "course.cli")


def simulate(project: Path, days: int) -> None:
    result = subprocess.run(
        # In the past, so that mail sent now (a send test) is the newest in the inbox.
        # --in-place: these tests read the real inbox, which the sandbox never fills.
        [*COURSE, "simulate", "--in-place", "--days", str(days), "--start", PAST],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def rows(page: str, attribute: str) -> list[str]:
    return re.findall(rf'<tr [^>]*{attribute}="([^"]*)"', page)


def panel_shown(page: str, tab: str) -> bool:
    return re.search(rf'data-panel="{tab}"\s*>', page) is not None


def check_level(page: str, name: str) -> str:
    match = re.search(rf'<li class="check (\w+)" data-check="{name}">', page)
    assert match, f"no {name} check on the page"
    return match[1]


# The index and the lesson pages


def test_index_lists_every_day_with_subject_size_and_status(shared: Preview) -> None:
    page = shared.page("/")
    build = build_course(load_settings(shared.project / "schedule.yaml"))
    assert rows(page, "data-day") == [str(day) for day in range(1, 16)]
    for lesson in build.lessons:
        assert f'href="/lessons/{lesson.day}"' in page
        assert str(escape(lesson.rendered.subject)) in page
        assert str(escape(lesson.rendered.preheader)) in page
    assert re.findall(r"\d+\.\d KB", page)
    assert "reason" in page
    assert "action" in page
    assert len(re.findall(r'class="badge (ok|warning|error)"', page)) == 15


def test_index_and_lesson_pages_mark_what_the_edits_changed(shared: Preview) -> None:
    rows = shared.page("/").split('<tr data-day="')[1:]
    edited = [row.split('"', 1)[0] for row in rows if 'class="edited"' in row]
    assert edited == ["1", "15"]
    first = shared.page("/lessons/1")
    assert str(escape("replaced 'This article will help you'")) in first
    assert b"This course will help you" in shared.get("/lessons/1/message.eml").content
    assert 'class="edited"' not in shared.page("/lessons/2")


def test_lesson_page_shows_the_email_in_a_frame_that_runs_no_script(shared: Preview) -> None:
    page = shared.page("/lessons/3")
    frames = re.findall(r"<iframe[^>]*>", page)
    assert len(frames) == 1
    assert 'sandbox="allow-same-origin"' in frames[0]
    assert "allow-scripts" not in page
    assert "Want advice for your unique situation?" in page
    assert re.search(r'href="/lessons/2[^"]*" rel="prev"', page)
    assert re.search(r'href="/lessons/4[^"]*" rel="next"', page)
    assert 'rel="prev"' not in shared.page("/lessons/1")
    assert 'rel="next"' not in shared.page("/lessons/15")


def test_unknown_days_and_pages_are_not_found(shared: Preview) -> None:
    for path in ("/lessons/0", "/lessons/16", "/lessons/16/message.eml", "/nothing-here"):
        response = shared.get(path)
        assert response.status_code == 404
        assert "<h1>" in response.text


def test_pages_carry_a_strict_content_security_policy(shared: Preview) -> None:
    policy = shared.get("/lessons/1").headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-eval" not in policy


def test_tabs_show_text_headers_and_source(shared: Preview) -> None:
    text = shared.page("/lessons/2", tab="text")
    assert panel_shown(text, "text")
    assert not panel_shown(text, "html")
    assert "Hi Sample Reader," in text
    headers = shared.page("/lessons/2", tab="headers")
    assert panel_shown(headers, "headers")
    for name in ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe", "List-Id"):
        assert f"<th>{name}</th>" in headers
    raw = shared.page("/lessons/2", tab="raw")
    assert panel_shown(raw, "raw")
    assert "MIME-Version: 1.0" in raw
    assert "Content-Transfer-Encoding: quoted-printable" in raw


def test_width_presets_size_the_frame(shared: Preview) -> None:
    assert 'style="width: 375px"' in shared.page("/lessons/5", width="phone")
    assert 'style="width: 768px"' in shared.page("/lessons/5", width="tablet")
    # No (or no known) width: the stylesheet fits the frame to the screen.
    for unchosen in (shared.page("/lessons/5", width="nonsense"), shared.page("/lessons/5")):
        assert 'class="email auto"' in unchosen
        assert 'style="width:' not in unchosen


def test_the_eml_download_is_the_message_itself(shared: Preview) -> None:
    response = shared.get("/lessons/2/message.eml", **{"as": "ben@example.com"})
    assert response.headers["content-type"].startswith("message/rfc822")
    message = email.message_from_bytes(response.content, policy=email.policy.default)
    assert message["Subject"] == "Day 2 of 15: He’s scared of his feelings"
    assert message["To"] == "Ben <ben@example.com>"


def test_render_as_a_subscriber_personalises_the_lesson(shared: Preview) -> None:
    page = shared.page("/lessons/1", **{"as": "ben@example.com", "tab": "text"})
    assert "Hi Ben," in page
    assert "Ben &lt;ben@example.com&gt;" in page
    assert '<option value="ben@example.com" selected>' in page
    assert "Hi Sample Reader," not in page


def test_render_as_someone_not_in_the_csv_says_so(shared: Preview) -> None:
    response = shared.get("/lessons/1", **{"as": "nobody@example.com"})
    assert response.status_code == 404
    assert "not a subscriber" in response.text


def test_a_hostile_name_from_the_csv_shows_as_text(preview: Preview) -> None:
    csv = preview.project / "examples" / "subscribers.csv"
    with csv.open("a", encoding="utf-8") as handle:
        handle.write(f"eve@example.com,{HOSTILE},UTC,,Nowhere\n")
    for tab in ("html", "text", "headers", "raw"):
        page = preview.page("/lessons/1", **{"as": "eve@example.com", "tab": tab})
        assert HOSTILE not in page
        assert str(escape(HOSTILE)) in page  # in the picker, at least


# Checks


def test_a_call_to_action_without_a_link_is_a_warning(preview: Preview) -> None:
    preview.edit("schedule.yaml", '"Click here to get started"', '"Unused phrase"')
    build = build_course(load_settings(preview.project / "schedule.yaml"))
    unlinked = [lesson.day for lesson in build.lessons if lesson.rendered.unlinked]
    assert unlinked
    index = preview.page("/")
    for day in unlinked:
        assert re.search(rf'<tr data-day="{day}">.*?class="badge warning"', index, re.S)
        page = preview.page(f"/lessons/{day}")
        assert check_level(page, "Calls to action") == "warning"
        assert "Click here to get started" in page


def test_a_javascript_link_in_a_template_is_flagged(preview: Preview) -> None:
    preview.edit(
        "templates/layout.mjml",
        "takes you off the course.</mj-text>",
        'takes you off the course. <a href="javascript:alert(1)">Tap</a></mj-text>',
    )
    page = preview.page("/lessons/4")
    assert check_level(page, "Links") == "error"
    assert "javascript:alert(1)" in page
    assert page.count('class="badge error"') == 1
    assert preview.page("/").count('class="badge error"') == 15


def test_an_image_without_alt_text_is_flagged(preview: Preview) -> None:
    preview.edit(
        "templates/layout.mjml",
        "takes you off the course.</mj-text>",
        'takes you off the course. <img src="https://example.com/logo.png" width="20"></mj-text>',
    )
    page = preview.page("/lessons/6")
    assert check_level(page, "Image alt text") == "warning"
    assert "https://example.com/logo.png" in page


@pytest.mark.parametrize(
    ("href", "safe"),
    [
        ("https://example.com/a", True),
        ("http://example.com", True),
        ("MAILTO:me@example.com", True),
        ("javascript:alert(1)", False),
        ("data:text/html,hi", False),
        ("/relative/path", False),
        ("", False),
    ],
)
def test_link_check_accepts_only_http_and_mailto(href: str, safe: bool) -> None:
    hrefs = scan_html(f'<p><a href="{href}">x</a></p>').hrefs
    assert link_check(hrefs).level == ("ok" if safe else "error")


def test_alt_check_wants_an_alt_attribute() -> None:
    found = scan_html('<img src="a.png" alt=""><img src="b.png" alt="B"><img src="c.png">')
    assert found.images_without_alt == ["c.png"]
    assert alt_check(found.images_without_alt).level == "warning"
    assert alt_check([]).level == "ok"


def message(headers: str, parts: str) -> bytes:
    head = "From: a@example.com\r\nTo: b@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
    return (head + headers + parts).encode()


ALTERNATIVE = (
    'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
    "--b\r\nContent-Type: text/plain\r\n\r\n{text}\r\n"
    "--b\r\nContent-Type: text/html\r\n\r\n<p>{html}</p>\r\n--b--\r\n"
)


def test_list_unsubscribe_needs_both_headers() -> None:
    one = "List-Unsubscribe: <https://x.example/u>\r\n"
    both = one + "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    parts = ALTERNATIVE.format(text="hi", html="hi")
    assert unsubscribe_check(view_message(message(both, parts))).level == "ok"
    missing = unsubscribe_check(view_message(message(one, parts)))
    assert (missing.level, missing.detail.split(":")[0]) == ("error", "missing")


def test_the_text_part_must_be_there_and_not_empty() -> None:
    assert (
        text_check(view_message(message("", ALTERNATIVE.format(text="hi", html="x")))).level == "ok"
    )
    empty = view_message(message("", ALTERNATIVE.format(text="  ", html="x")))
    assert text_check(empty).level == "error"
    html_only = view_message(message("Content-Type: text/html\r\n\r\n", "<p>x</p>"))
    assert html_only.text is None
    assert text_check(html_only).level == "error"


def test_size_check_warns_from_90_kb_and_fails_at_the_clip_limit() -> None:
    def level(size: int) -> str:
        body = "x" * (size - len("<p></p>"))
        return size_check(view_message(message("", ALTERNATIVE.format(text="t", html=body)))).level

    assert [level(89_999), level(90_000), level(101_999), level(102_000)] == [
        "ok",
        "warning",
        "warning",
        "error",
    ]
    assert worst([]) == "ok"


# Live reload


def test_editing_a_template_shows_on_the_next_request(preview: Preview) -> None:
    before = preview.get("/api/version").json()["course"]
    assert "Fresh from the editor" not in preview.page("/lessons/2")
    preview.edit("templates/lesson.mjml", "Hi {{", "Fresh from the editor. Hi {{")
    assert preview.get("/api/version").json()["course"] != before
    assert "Fresh from the editor" in preview.page("/lessons/2")


def test_editing_the_article_and_schedule_shows_without_a_restart(preview: Preview) -> None:
    preview.page("/")
    preview.edit("examples/why-he-pushes-you-away.txt", "1) He’s stressed", "1) He’s tired")
    preview.edit("schedule.yaml", '"Day {{ day }} of {{ days }}:', '"Lesson {{ day }} -')
    page = preview.page("/")
    assert "Lesson 1 - He’s tired, busy, and preoccupied" in page
    assert "Day 1 of 15:" not in page


def test_a_template_error_is_shown_then_the_page_recovers(preview: Preview) -> None:
    assert preview.page("/lessons/3")
    original = preview.edit("templates/lesson.mjml", "{% endblock %}", "{% if %}{% endblock %}")
    for path in ("/", "/lessons/3"):
        broken = preview.get(path)
        assert broken.status_code == 500
        assert "lesson.mjml: line 26: Expected an expression" in broken.text
        assert "<h1>The course does not build</h1>" in broken.text
        assert 'data-watch="course"' in broken.text  # so it reloads itself when fixed
    (preview.project / "templates" / "lesson.mjml").write_text(original, encoding="utf-8")
    assert rows(preview.page("/"), "data-day") == [str(day) for day in range(1, 16)]


def test_an_undefined_variable_names_the_template_and_line(preview: Preview) -> None:
    preview.edit("templates/lesson.mjml", "Hi {{", "{{ no_such_thing }} Hi {{")
    broken = preview.get("/")
    assert broken.status_code == 500
    assert re.search(r"lesson\.mjml: line 4: .*no_such_thing", broken.text)


def test_a_broken_schedule_is_shown_then_the_page_recovers(preview: Preview) -> None:
    original = preview.edit("schedule.yaml", 'send_time: "08:00"', 'send_time: "25:00"')
    broken = preview.get("/")
    assert broken.status_code == 500
    assert "schedule.send_time: expected HH:MM" in broken.text
    (preview.project / "schedule.yaml").write_text(original, encoding="utf-8")
    assert preview.get("/").status_code == 200


# Inbox


def test_an_empty_inbox_says_how_to_fill_it(shared: Preview) -> None:
    assert "The inbox is empty" in shared.page("/inbox")


def test_the_inbox_lists_delivered_mail_newest_first_and_filters(mailed: Preview) -> None:
    delivered = read_inbox(mailed.project / "state" / "inbox")
    assert len(delivered) >= 21  # seven subscribers, three days or more each
    assert rows(mailed.page("/inbox"), "data-key") == [m.key for m in delivered]
    by_ben = rows(mailed.page("/inbox", recipient="BEN@example"), "data-recipient")
    assert by_ben == ["ben@example.com"] * sum(m.recipient == "ben@example.com" for m in delivered)
    day_two = rows(mailed.page("/inbox", day="2"), "data-day")
    assert day_two == ["2"] * 7
    both = mailed.page("/inbox", recipient="ann@", day="1")
    assert rows(both, "data-key") == [
        m.key for m in delivered if m.recipient == "ann@example.com" and m.day == 1
    ]


def test_the_inbox_pages_through_long_listings(
    mailed: Preview, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(preview_inbox, "PAGE_SIZE", 5)
    keys = [m.key for m in read_inbox(mailed.project / "state" / "inbox")]
    first, second = mailed.page("/inbox"), mailed.page("/inbox", page="2")
    assert rows(first, "data-key") == keys[:5]
    assert rows(second, "data-key") == keys[5:10]
    assert 'rel="next"' in first
    assert 'rel="prev"' in second
    filtered = mailed.page("/inbox", day="3", page="2")
    assert (
        rows(filtered, "data-key")
        == [m.key for m in read_inbox(mailed.project / "state" / "inbox") if m.day == 3][5:10]
    )


def test_an_inbox_message_has_the_same_tabs_and_checks(mailed: Preview) -> None:
    newest = read_inbox(mailed.project / "state" / "inbox", limit=1)[0]
    page = mailed.page(f"/inbox/{newest.key}", tab="text")
    assert panel_shown(page, "text")
    assert "Hi " in page
    assert check_level(page, "Plain text") == "ok"
    assert check_level(page, "List-Unsubscribe") == "ok"
    assert str(escape(newest.subject)) in page
    raw = mailed.get(f"/inbox/{newest.key}/message.eml")
    assert raw.content == newest.read_bytes()


@pytest.mark.parametrize("key", ["..%2F..%2Fschedule.yaml", ".hidden", "no-such-message"])
def test_an_inbox_key_never_reaches_outside_the_maildir(mailed: Preview, key: str) -> None:
    assert mailed.get(f"/inbox/{key}").status_code == 404
    assert mailed.get(f"/inbox/{key}/message.eml").status_code == 404


# Send test


def ledger_snapshot(project: Path) -> tuple[object, ...]:
    settings = load_settings(project / "schedule.yaml")
    with Ledger.open(settings.ledger, base_dir=settings.base_dir) as ledger:
        return ledger.state_counts(), ledger.status_counts(), ledger.subscriber("me@example.org")


def test_send_test_delivers_to_the_inbox_and_leaves_the_ledger_alone(preview: Preview) -> None:
    simulate(preview.project, 1)
    before = ledger_snapshot(preview.project)
    form = {"token": preview.token(4), "to": "me@example.org", "as": "ben@example.com"}
    response = preview.client.post(
        "/lessons/4/send", data=form, headers={"Origin": preview.origin()}
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith("/lessons/4?")
    shown = preview.page(response.headers["location"])
    assert "sent to <strong>me@example.org</strong>" in shown
    newest = read_inbox(preview.project / "state" / "inbox", limit=1)[0]
    assert (newest.recipient, newest.day) == ("me@example.org", 4)
    assert "Hi Ben," in (view_message(newest.read_bytes()).text or "")
    assert ledger_snapshot(preview.project) == before


def test_send_test_refuses_a_post_without_the_token_or_from_elsewhere(shared: Preview) -> None:
    token, origin = shared.token(), shared.origin()
    attempts = [
        ({"to": "me@example.org"}, {"Origin": origin}),
        ({"token": "guessed", "to": "me@example.org"}, {"Origin": origin}),
        ({"token": token, "to": "me@example.org"}, {"Origin": "http://evil.example"}),
        ({"token": token, "to": "me@example.org"}, {"Referer": "http://evil.example/x"}),
        ({"token": token, "to": "me@example.org"}, {"Sec-Fetch-Site": "cross-site"}),
    ]
    for form, headers in attempts:
        response = shared.client.post("/lessons/1/send", data=form, headers=headers)
        assert response.status_code == 403, (form, headers)
        assert "<h1>Not sent</h1>" in response.text
    rebound = shared.client.post(
        "/lessons/1/send", data={"token": token}, headers={"Host": "evil.example:8025"}
    )
    assert rebound.status_code == 400
    assert shared.client.get("/", headers={"Host": "evil.example"}).status_code == 400
    assert shared.get("/lessons/1/send").status_code == 405
    assert not (shared.project / "state" / "inbox").exists()


def test_send_test_reports_a_bad_address_on_the_page(shared: Preview) -> None:
    form = {"token": shared.token(2), "to": "not-an-address"}
    response = shared.client.post("/lessons/2/send", data=form, headers={"Origin": shared.origin()})
    assert response.status_code == 400
    assert "Not sent:" in response.text
    assert "not-an-address" in response.text
    assert not (shared.project / "state" / "inbox").exists()


# Serving


def test_a_taken_port_is_a_clear_error(project: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PreviewError, match=rf"127\.0\.0\.1:{port}: Address already in use"):
            start_preview(load_settings(project / "schedule.yaml"), port)


def test_course_preview_serves_until_ctrl_c(project: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "course.cli", "preview", "--port", str(port)]
    with subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == f"Preview: http://127.0.0.1:{port}/"
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0


def test_course_preview_on_a_taken_port_fails_in_one_line(project: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "course.cli", "preview", "--port", str(port)],
            cwd=project,
            capture_output=True,
            text=True,
            check=False,
        )
    assert result.returncode == 1
    assert result.stderr.startswith(f"course: error: preview: cannot listen on 127.0.0.1:{port}")
    assert len(result.stderr.strip().splitlines()) == 1


def test_absurd_numbers_in_paths_and_queries_are_a_400(shared: Preview) -> None:
    digits = "9" * 5000
    for path, params in [
        (f"/lessons/{digits}", {}),
        (f"/lessons/{digits}/message.eml", {}),
        ("/lessons/two", {}),
        ("/inbox", {"page": digits}),
        ("/inbox", {"day": digits}),
        ("/inbox", {"day": "abc"}),
        ("/inbox", {"page": "0"}),
        ("/inbox", {"page": "١"}),  # an Arabic-Indic digit: isdigit() says yes, we say no
    ]:
        response = shared.get(path, **params)
        assert response.status_code == 400, (path, params)
        assert "expected a whole number from 1 to 999,999,999" in response.text
    assert shared.get("/inbox", page="2", day="3").status_code == 200
    assert shared.get("/inbox", page="", day="").status_code == 200
