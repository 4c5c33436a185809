"""Lessons become emails: templates, escaping, the text part, calls to action, limits."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from course.article import parse_article
from course.build import build_course, sample_recipient
from course.config import Settings, load_settings
from course.errors import RenderError, TemplateError
from course.message import Recipient
from course.render import Renderer
from course.slots import fill

SHORT_ARTICLE = """3 reasons cats ignore you (and what to do)

We may earn a commission from links on this page. Read our affiliate disclosure.

Ever called your cat and watched it walk away?

Why do cats ignore us? 2 reasons

1) They are busy

Cats sleep sixteen hours a day.

Click here to get started.

2) They <b>know</b> you & love you

Trust looks like indifference, and a slow blink is a cat's kiss.

What to do about it?

1) Call less

Let them come to you.
"""


def settings_in(project: Path) -> Settings:
    return load_settings(project / "schedule.yaml")


def write_article(project: Path, text: str) -> Path:
    """Put another article in place of the shipped one (and drop the edits made for that)."""
    path = project / "examples" / "why-he-pushes-you-away.txt"
    path.write_text(text, encoding="utf-8")
    config = project / "schedule.yaml"
    config.write_text(re.sub(r"  edits:\n(?:    .*\n|      .*\n)+", "", config.read_text()))
    return path


def values(settings: Settings, **overrides: str) -> dict[str, str]:
    return {**sample_recipient(settings).values(), **overrides}


def test_every_lesson_renders_with_progress_subject_and_preheader(project: Path) -> None:
    build = build_course(settings_in(project))
    assert len(build.lessons) == 15
    day3 = build.lesson(3).rendered
    assert day3.subject == "Day 3 of 15: Want advice for your unique situation?"
    assert day3.preheader == "Last year my relationship reached a dead-end."
    assert "Day 3 of 15" in day3.html
    assert '<html lang="en"' in day3.html
    assert "Reason 3 of 11" in day3.html
    assert "Action step 2 of 4" in build.lesson(13).rendered.html


def test_day_one_opens_with_the_welcome_and_last_day_closes(project: Path) -> None:
    build = build_course(settings_in(project))
    first, last = build.lesson(1).rendered, build.lesson(15).rendered
    assert "Have you noticed some alarming signs" in first.html
    assert "Have you noticed some alarming signs" not in build.lesson(2).rendered.html
    assert "Can a relationship coach help you too?" in last.html
    assert "you have completed the course" in last.html
    assert "you have completed the course" in last.text
    assert "completed the course" not in build.lesson(14).rendered.html


def test_footer_has_unsubscribe_postal_address_and_disclosure(project: Path) -> None:
    settings = settings_in(project)
    rendered = build_course(settings).lesson(5).rendered
    personal = values(settings, unsubscribe_url="https://u.example.com/x")
    html = fill(rendered.html, rendered.slots, personal)
    assert 'href="https://u.example.com/x"' in html
    assert "1 Example Street, Springfield" in html
    assert "We sometimes include products we think are useful" in html
    assert "https://u.example.com/x" in fill(rendered.text, rendered.slots, personal)


def test_subject_pattern_is_configurable(project: Path) -> None:
    config = project / "schedule.yaml"
    config.write_text(
        config.read_text().replace(
            'subject: "Day {{ day }} of {{ days }}: {{ lesson.title }}"',
            'subject: "{{ lesson.title }} ({{ day }}/{{ days }})"',
        )
    )
    build = build_course(settings_in(project))
    assert build.lesson(15).rendered.subject == "Focus on yourself (15/15)"


def test_hostile_values_are_escaped_in_html(project: Path) -> None:
    write_article(project, SHORT_ARTICLE)
    settings = settings_in(project)
    rendered = build_course(settings).lesson(2).rendered
    html = fill(rendered.html, rendered.slots, values(settings))
    # The article's <b> is reduced to text in the title; `&` is escaped.
    assert "They know you &amp; love you" in html
    assert "&lt;b&gt;" not in html
    assert "<b>know" not in html
    # Subscriber values are escaped when they are filled in, by the message builder.
    build = build_course(settings)
    hostile = Recipient(
        "eve@example.com", '<script>alert("x")</script>', "https://e.example.com/u", {}
    )
    data = build.lesson(2).build(hostile, date=datetime(2026, 11, 23, 8, tzinfo=UTC))[1]
    message = email.message_from_bytes(data, policy=email.policy.default)
    html_part = message.get_body(("html",))
    assert html_part is not None
    body = html_part.get_content()
    assert "<script>" not in body
    assert "Hi &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;," in body


def test_styles_are_attributes_not_style_blocks(project: Path) -> None:
    for template in (project / "templates").glob("*.mjml"):
        source = re.sub(r"\{#.*?#\}", "", template.read_text(), flags=re.S)
        # The one <style> allowed: dark mode, which a media query can only say there.
        for block in re.findall(r"<mj-style[^>]*>(.*?)</mj-style>", source, flags=re.S):
            rest = re.sub(r"@media \(prefers-color-scheme: dark\) \{.*\}", "", block, flags=re.S)
            assert not re.sub(r":root \{[^}]*\}", "", rest).strip()
    html = build_course(settings_in(project)).lesson(4).rendered.html
    without_style = re.sub(r"<style[^>]*>.*?</style>", "", html, flags=re.S)
    # The first match is the hidden preheader; the second is the lesson's own paragraph.
    styles = re.findall(r'<div style="([^"]*)">We may as well get', without_style)
    assert len(styles) == 2, "lesson text must carry its own inline style"
    for prop in ("font-family:Georgia", "font-size:18px", "color:#2a2a2a", "line-height:28px"):
        assert prop in styles[1]


def test_calls_to_action_link_when_mapped_and_warn_when_not(project: Path) -> None:
    write_article(project, SHORT_ARTICLE)
    config = project / "schedule.yaml"
    text = config.read_text()
    mapped = '  links:\n    "Click here to get started": https://example.com/go\n'
    text = re.sub(r"  links:\n(    .*\n)+", mapped, text)
    config.write_text(text)
    build = build_course(settings_in(project))
    day1 = build.lesson(1).rendered
    assert 'href="https://example.com/go"' in day1.html
    assert "mj-button" not in day1.html  # compiled: the button is a table with the link
    assert "Click here to get started: https://example.com/go" in day1.text
    assert build.warnings == (
        "3 lessons (days 1-3): call to action has no link: 'Read our affiliate disclosure'; "
        "map it under course.links in schedule.yaml",
    )


def test_text_part_is_wrapped_at_72_with_dash_bullets(project: Path) -> None:
    rendered = build_course(settings_in(project)).lesson(9).rendered
    lines = rendered.text.splitlines()
    assert all(len(line) <= 72 or "://" in line for line in lines)
    assert "- avoid emotional closeness in relationships" in lines
    assert "- feel as though their partners are being clingy when they simply want" in lines
    assert "  to get emotionally closer" in lines
    assert "<" not in rendered.text.replace("<https://", "")


def test_undefined_variable_names_template_and_line(project: Path) -> None:
    template = project / "templates" / "lesson.mjml"
    lines = template.read_text().splitlines()
    lines.insert(4, "  <mj-text>{{ no_such_thing }}</mj-text>")
    template.write_text("\n".join(lines) + "\n")
    with pytest.raises(TemplateError, match=r"lesson\.mjml: line 5: 'no_such_thing' is undefined"):
        build_course(settings_in(project))


def test_syntax_error_names_template_and_line(project: Path) -> None:
    template = project / "templates" / "blocks.mjml"
    template.write_text(template.read_text().replace("endmacro", "endmacr", 1))
    with pytest.raises(TemplateError, match=r"blocks\.mjml: line \d+: Encountered unknown tag"):
        build_course(settings_in(project))


def test_unknown_mjml_tag_names_the_template_line(project: Path) -> None:
    template = project / "templates" / "lesson.mjml"
    template.write_text(template.read_text().replace("<mj-divider />", "<mj-dividr />", 1))
    line = template.read_text().splitlines().index("    <mj-dividr />") + 1
    with pytest.raises(
        TemplateError,
        match=rf"lesson\.mjml: line {line}, rendered as lesson\.mjml \(day 1\): "
        r"unknown MJML tag <mj-dividr>",
    ):
        build_course(settings_in(project))


def test_oversized_email_fails_loudly(project: Path) -> None:
    huge = SHORT_ARTICLE.replace(
        "Cats sleep sixteen hours a day.",
        "\n\n".join(["Cats sleep sixteen hours a day. " * 20] * 200),
    )
    write_article(project, huge)
    with pytest.raises(
        RenderError,
        match=r"day 1: HTML is [\d,]+ bytes; Gmail clips emails over "
        r"102,000 bytes",
    ):
        build_course(settings_in(project))


def test_second_listicle_gets_its_own_length(project: Path) -> None:
    write_article(project, SHORT_ARTICLE)
    build = build_course(settings_in(project))
    assert [p.rendered.subject for p in build.lessons] == [
        "Day 1 of 3: They are busy",
        "Day 2 of 3: They know you & love you",
        "Day 3 of 3: Call less",
    ]


def test_renderer_is_pure_and_repeatable(project: Path) -> None:
    settings = settings_in(project)
    course = parse_article(SHORT_ARTICLE, source="short.txt")
    renderer = Renderer(settings, course)
    assert renderer.render(course.lessons[0]) == renderer.render(course.lessons[0])


def test_a_nested_list_is_nested_in_both_parts(project: Path) -> None:
    write_article(
        project,
        "# 2 tips\n\n## 1. Stash\n\nPut work aside:\n\n- `git stash` saves it\n"
        "  - each entry has an index\n- `git stash pop` brings it back\n\n## 2. Bisect\n\n"
        "Find the commit that broke the build.\n",
    )
    build = build_course(settings_in(project))
    rendered = build.lesson(1).rendered
    assert re.search(
        r"saves it<ul [^>]*><li [^>]*>each entry has an index</li></ul></li>", rendered.html
    )
    assert "- git stash saves it\n  - each entry has an index\n- git stash pop brings it back" in (
        rendered.text
    )
