"""Wire bytes: valid MIME that the stdlib parser reads back exactly as rendered."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import EmailMessage
from pathlib import Path

import pytest

from course.build import CourseBuild, build_course
from course.config import load_settings
from course.displaynames import MAX_NAME_LENGTH, shorten_name
from course.errors import RenderError
from course.message import Recipient, format_address
from course.slots import fill

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
ZOE = Recipient("zoe@example.com", "Zoë Ødegård", "https://example.com/u/zoe", {"city": "Oslo"})


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> CourseBuild:
    root = Path(__file__).resolve().parent.parent
    return build_course(load_settings(root / "schedule.yaml"))


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_message_is_multipart_alternative_text_first(built: CourseBuild) -> None:
    _, data = built.lesson(9).build(ZOE, date=NOW)
    message = parse(data)
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert message.defects == []
    assert all(p.defects == [] for p in parts)


def test_wire_format_is_crlf_with_short_lines(built: CourseBuild) -> None:
    for lesson in built.lessons:
        _, data = lesson.build(ZOE, date=NOW)
        assert b"\n" not in data.replace(b"\r\n", b"")
        assert b"\r" not in data.replace(b"\r\n", b"")
        head, body = data.split(b"\r\n\r\n", 1)
        # Headers fold at 78 where they can; a URL cannot be folded inside its brackets.
        assert all(
            len(line) <= 78 or b"List-Unsubscribe: <" in line for line in head.split(b"\r\n")
        )
        assert max(len(line) for line in head.split(b"\r\n")) <= 998
        assert max(len(line) for line in body.split(b"\r\n")) <= 78
        assert data.isascii()


def test_headers_are_present_and_encoded(built: CourseBuild) -> None:
    message_id, data = built.lesson(2).build(ZOE, date=NOW)
    message = parse(data)
    assert message["Date"] == "Mon, 23 Nov 2026 08:00:00 +0000"
    assert message["Message-ID"] == message_id
    assert message["To"] == "Zoë Ødegård <zoe@example.com>"
    assert message["From"] == "Love Connection <hello@example.com>"
    assert message["Subject"] == "Day 2 of 15: He’s scared of his feelings"
    assert b"=?utf-8?" in data.split(b"\r\n\r\n", 1)[0]


def test_message_id_is_stable_per_course_subscriber_and_day(built: CourseBuild) -> None:
    first, _ = built.lesson(4).build(ZOE, date=NOW)
    again, _ = built.lesson(4).build(ZOE, date=datetime(2026, 12, 1, tzinfo=UTC))
    other_day, _ = built.lesson(5).build(ZOE, date=NOW)
    assert first == again
    assert first != other_day
    assert first.startswith("<why-he-pushes-you-away.d04.")
    assert first.endswith("@example.com>")


def test_parts_decode_to_the_rendered_lesson_with_values_filled(built: CourseBuild) -> None:
    lesson = built.lesson(13)
    message = parse(lesson.build(ZOE, date=NOW)[1])
    text_part, html_part = message.iter_parts()
    values = ZOE.values()
    rendered = lesson.rendered
    # On the wire every line ends in CRLF; decoded content keeps that.
    assert text_part.get_content().replace("\r\n", "\n") == fill(
        rendered.text, rendered.slots, values
    )
    expected_html = fill(rendered.html, rendered.slots, {**values, "first_name": "Zoë Ødegård"})
    assert html_part.get_content().replace("\r\n", "\n") == expected_html
    assert "Hi Zoë Ødegård," in text_part.get_content()
    assert 'href="https://example.com/u/zoe"' in html_part.get_content()


def test_fallback_when_the_name_is_empty(built: CourseBuild) -> None:
    anon = Recipient("anon@example.com", "", "https://example.com/u", {})
    text = parse(built.lesson(1).build(anon, date=NOW)[1]).get_body(("plain",))
    assert text is not None
    assert "Hi there," in text.get_content()


def test_header_injection_is_refused(built: CourseBuild) -> None:
    evil = Recipient("eve@example.com", "Eve\r\nBcc: all@example.org", "https://e.example.com", {})
    with pytest.raises(RenderError, match=r"refusing name 'Eve\\r\\nBcc: all@example.org'"):
        built.lesson(1).build(evil, date=NOW)


def test_internationalised_domain_goes_out_as_idna() -> None:
    assert (
        format_address("José", "jose@bücher.example")
        == "=?utf-8?b?Sm9zw6k=?= <jose@xn--bcher-kva.example>"
    )


LIST_UNSUBSCRIBE = re.compile(r"<https://[^\s<>,]+>(, ?<mailto:[^\s<>,]+>)?")


def test_list_headers_follow_rfc_2369_2919_and_8058(built: CourseBuild) -> None:
    url = "https://u.example.com/unsubscribe/abc.def"
    zoe = Recipient("zoe@example.com", "Zoë", url, {})
    message = parse(built.lesson(4).build(zoe, date=NOW)[1])
    assert message["List-Unsubscribe"] == f"<{url}>"
    assert LIST_UNSUBSCRIBE.fullmatch(str(message["List-Unsubscribe"]))
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert (
        message["List-Id"] == '"Why he pulls away: a 15-day course" '
        "<why-he-pushes-you-away.example.com>"
    )
    assert "Precedence" not in message
    assert "Auto-Submitted" not in message


def test_mailto_joins_list_unsubscribe_when_configured(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    config = (
        (root / "schedule.yaml")
        .read_text()
        .replace(
            "secret_env: COURSE_SECRET", "secret_env: COURSE_SECRET\n  mailto: leave@example.com"
        )
    )
    (tmp_path / "schedule.yaml").write_text(config)
    for name in ("templates", "examples"):
        (tmp_path / name).symlink_to(root / name)
    build = build_course(load_settings(tmp_path / "schedule.yaml"))
    zoe = Recipient("zoe@example.com", "Zoë", "https://u.example.com/unsubscribe/t.s", {})
    message = parse(build.lesson(1).build(zoe, date=NOW)[1])
    value = " ".join(str(message["List-Unsubscribe"]).split())
    assert value == (
        "<https://u.example.com/unsubscribe/t.s>, <mailto:leave@example.com?subject=unsubscribe>"
    )
    assert LIST_UNSUBSCRIBE.fullmatch(value)


def test_an_unsafe_unsubscribe_url_is_refused(built: CourseBuild) -> None:
    evil = Recipient("zoe@example.com", "Zoë", "https://u.example.com/a>,<https://x", {})
    with pytest.raises(RenderError, match="must not contain spaces, angle brackets or commas"):
        built.lesson(1).build(evil, date=NOW)


def header_lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def decoded(value: str) -> str:
    # The legacy decoder follows RFC 2047 6.2 (space between encoded words is dropped);
    # the modern parser inserts one there.
    return str(make_header(decode_header(value)))


@pytest.mark.parametrize(
    "name", ["x" * 1000, "é" * 362, "中" * 242, "Ann " * 250, "Zoë " * 30, '"O\'Neil", Ann']
)
def test_a_long_display_name_is_encoded_folded_and_cut(built: CourseBuild, name: str) -> None:
    recipient = Recipient("ann@example.com", name, "https://example.com/u/ann", {})
    _, data = built.lesson(1).build(recipient, date=NOW)
    assert max(len(line) for line in header_lines(data)) <= 78
    raw = email.message_from_bytes(data, policy=email.policy.compat32)["To"]
    phrase, _, rest = raw.rpartition(" <")
    assert rest == "ann@example.com>"
    assert decoded(phrase).strip('"').replace('\\"', '"') == shorten_name(name)
    assert parse(data)["To"].addresses[0].addr_spec == "ann@example.com"
    assert len(shorten_name(name)) <= MAX_NAME_LENGTH


def test_shorten_name_cuts_only_names_too_long_to_be_names() -> None:
    assert shorten_name("Zoë Ødegård") == "Zoë Ødegård"
    assert shorten_name("a" * MAX_NAME_LENGTH) == "a" * MAX_NAME_LENGTH
    assert shorten_name("a" * 150) == "a" * (MAX_NAME_LENGTH - 1) + "…"
    # An accent is never left without its letter, nor a space before the ellipsis.
    assert shorten_name("a" * 98 + " e\u0301" + "x" * 10) == "a" * 98 + "…"


def test_a_non_ascii_local_part_is_an_rfc_6532_message(built: CourseBuild) -> None:
    jose = Recipient("josé@example.com", "José", "https://example.com/u/jose", {})
    _, data = built.lesson(1).build(jose, date=NOW)
    to = [line for line in header_lines(data) if line.startswith(b"To: ")]
    assert to == ["To: =?utf-8?b?Sm9zw6k=?= <josé@example.com>".encode()]
    # The bytes parser reads headers as ASCII; RFC 6532 headers are UTF-8.
    message = email.message_from_string(data.decode("utf-8"), policy=email.policy.SMTPUTF8)
    assert message["To"].addresses[0].addr_spec == "josé@example.com"
    assert message.defects == []
