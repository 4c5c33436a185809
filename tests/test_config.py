"""schedule.yaml validation: every error names the file and the key path."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from course.config import default_settings, parse_settings
from course.errors import ConfigError

SOURCE = Path("/srv/course/schedule.yaml")


def parse(text: str) -> object:
    return parse_settings(text, source=SOURCE)


def test_embedded_defaults_are_complete() -> None:
    settings = default_settings(Path("/srv/course"))
    assert settings.schedule.send_time == time(8, 0)
    assert settings.schedule.send_days == frozenset(range(7))
    assert settings.delivery.backend == "inbox"
    assert settings.delivery.inbox == Path("/srv/course/state/inbox")
    assert settings.ledger == "sqlite:///state/course.db"
    assert settings.course.article == Path("/srv/course/examples/why-he-pushes-you-away.txt")


def test_unquoted_send_time_is_read_as_written() -> None:
    # YAML 1.1 turns a bare 07:30 into the number 450.
    settings = parse_settings("schedule:\n  send_time: 07:30\n", source=SOURCE)
    assert settings.schedule.send_time == time(7, 30)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "schedule:\n  send_time: '8pm'\n",
            "schedule.yaml: schedule.send_time: expected HH:MM, got '8pm'",
        ),
        (
            "schedule:\n  timezone: Mars/Base\n",
            "schedule.yaml: schedule.timezone: expected an IANA time zone such as Europe/London, "
            "got 'Mars/Base'",
        ),
        (
            "schedule:\n  send_days: [mon, funday]\n",
            "schedule.yaml: schedule.send_days: expected day names mon, tue, wed, thu, fri, sat, "
            "sun, got 'funday'",
        ),
        (
            "course:\n  links:\n    Click here: javascript:alert(1)\n",
            "schedule.yaml: course.links.Click here: expected an http(s):// or mailto: URL, "
            "got 'javascript:alert(1)'",
        ),
        (
            'sender:\n  from: "Eve <eve@example.com>\\r\\nBcc: x@example.org"\n',
            'schedule.yaml: sender.from: expected "Name <address@domain>", '
            "got 'Eve <eve@example.com>\\r\\nBcc: x@example.org'",
        ),
        (
            "delivery:\n  backend: smtp\nsender:\n  postal_address: ''\n",
            "schedule.yaml: sender.postal_address: required when delivery.backend is smtp "
            "(CAN-SPAM needs a postal address in every message), got ''",
        ),
        (
            "delivery:\n  backend: smtp\nsender:\n  postal_address: 1 Main St\n"
            "unsubscribe:\n  base_url: http://u.example.com\n",
            "schedule.yaml: unsubscribe.base_url: must be https:// when delivery.backend is "
            "smtp (mailbox providers ignore one-click unsubscribe over http), "
            "got 'http://u.example.com'",
        ),
        (
            "unsubscribe:\n  listen: nowhere\n",
            "schedule.yaml: unsubscribe.listen: expected host:port such as 127.0.0.1:8026, "
            "got 'nowhere'",
        ),
        (
            "delivery:\n  smtp:\n    port: 70000\n",
            "schedule.yaml: delivery.smtp.port: expected a port number 1-65535, got 70000",
        ),
        ("schedule: [1, 2]\n", "schedule.yaml: schedule: expected a mapping, got [1, 2]"),
        (
            "schedule:\n  send_time: '08:00\n",
            "schedule.yaml: not valid YAML: line 3: found unexpected end of stream",
        ),
    ],
)
def test_errors_name_file_and_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert str(caught.value) == f"/srv/course/{message}"


@pytest.mark.parametrize(
    ("key", "yaml_value", "echoed"),
    [
        ("course.name", '"Course\\r\\nBcc: x@evil.test"', "'Course\\r\\nBcc: x@evil.test'"),
        ("course.name", '"Course\\u2028Bcc: x@evil.test"', "'Course\\u2028Bcc: x@evil.test'"),
        ("course.name", '"Course\\x85Bcc: x@evil.test"', "'Course\\x85Bcc: x@evil.test'"),
        ("sender.reply_to", '"a@example.com\\nBcc: x@evil.test"', None),
        ("sender.reply_to", '"a@example.com, x@evil.test"', None),
        ("unsubscribe.mailto", '"a@example.com?bcc=x@evil.test"', None),
        ("unsubscribe.mailto", '"a@example.com\\r\\nBcc: x@evil.test"', None),
        ("unsubscribe.base_url", '"https://example.com/u\\x00x"', None),
        ("unsubscribe.base_url", '"https://example.com/u>,<https://evil.test"', None),
        ("delivery.smtp.helo", '"mail.example.com\\r\\nRCPT TO:<x@evil.test>"', None),
        ("delivery.smtp.host", '"127.0.0.1\\r\\n"', None),
        ("delivery.smtp.username", '"ann\\r\\nAUTH"', None),
    ],
)
def test_every_value_that_reaches_a_header_refuses_control_characters(
    key: str, yaml_value: str, echoed: str | None
) -> None:
    section, _, name = key.rpartition(".")
    nested = section.split(".")
    text = "".join(f"{'  ' * i}{part}:\n" for i, part in enumerate(nested))
    text += f"{'  ' * len(nested)}{name}: {yaml_value}\n"
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert str(caught.value).startswith(f"/srv/course/schedule.yaml: {key}: expected ")
    if echoed is not None:
        assert str(caught.value).endswith(f", got {echoed}")


def _billion_laughs(key_line: str, levels: int = 9) -> str:
    """Nine levels of nine aliases each, all inside one typed key's value."""
    anchors = ['&a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    anchors += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return f"{key_line} [{', '.join(anchors)}]\n"


def test_a_yaml_bomb_is_refused_before_anything_expands_it() -> None:
    with pytest.raises(ConfigError) as caught:
        parse(_billion_laughs("schedule:\n  tick_seconds:"))
    assert str(caught.value) == (
        "/srv/course/schedule.yaml: line 2: aliases expand this value to more than "
        "100,000 items; write the values out instead"
    )


def test_a_self_referring_alias_is_refused() -> None:
    with pytest.raises(ConfigError, match="line 2: an alias refers to itself"):
        parse("schedule:\n  send_days: &days [mon, *days]\n")


def test_modest_anchors_still_work() -> None:
    settings = parse(
        "course:\n  links:\n    Click here: &home https://example.com/\n    Start: *home\n"
    )
    assert isinstance(settings, object)


@pytest.mark.parametrize(
    "value",
    [
        "[" + ", ".join(["12345678"] * 50_000) + "]",  # under the alias limit, but long
        "'" + "x" * 1_000_000 + "'",
        "{" + ", ".join(f"k{i}: [[[[[{i}]]]]]" for i in range(5_000)) + "}",
    ],
)
def test_echoed_values_are_cut_to_about_80_characters(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(f"schedule:\n  tick_seconds: {value}\n")
    message = str(caught.value)
    assert message.startswith(
        "/srv/course/schedule.yaml: schedule.tick_seconds: expected a whole number, got "
    )
    assert len(message.rpartition(", got ")[2]) <= 80


def test_a_long_unknown_key_is_cut_in_the_message() -> None:
    with pytest.raises(ConfigError) as caught:
        parse("schedule:\n  " + "k" * 10_000 + ": 1\n")
    assert len(str(caught.value)) < 200


def smtp(**keys: object) -> str:
    lines = "".join(f"    {key}: {value}\n" for key, value in keys.items())
    return "sender:\n  from: 'News <news@bücher.example>'\ndelivery:\n  smtp:\n" + lines


@pytest.mark.parametrize("host", ["smtp.example.net", "192.0.2.10", "10.0.0.1", "::2"])
def test_security_none_is_refused_for_any_other_host(host: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(smtp(host=f"'{host}'", security="none", username="course"))
    assert str(caught.value) == (
        "/srv/course/schedule.yaml: delivery.smtp.security: 'none' sends the mail and the "
        "password unencrypted, so it is only for a server on this host (127.0.0.0/8, ::1, "
        f"localhost), not {host!r}; use starttls (port 587) or tls (port 465)"
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"])
def test_security_none_is_allowed_on_this_host(host: str) -> None:
    settings = parse_settings(smtp(host=f"'{host}'", security="none"), source=SOURCE)
    assert settings.delivery.smtp.security == "none"


def test_helo_defaults_to_the_from_domain_never_an_address_literal() -> None:
    settings = parse_settings(smtp(), source=SOURCE)
    assert settings.delivery.smtp.helo == "xn--bcher-kva.example"
    given = parse_settings(smtp(helo="mail.example.net"), source=SOURCE)
    assert given.delivery.smtp.helo == "mail.example.net"
    for bad in ("'mail example.net'", "'-bad.example'", "'mx.example.net>'"):
        with pytest.raises(ConfigError, match=r"delivery\.smtp\.helo: expected this host's name"):
            parse(smtp(helo=bad))


def test_idle_seconds_and_bounce_share() -> None:
    settings = parse_settings(smtp(), source=SOURCE)
    assert (settings.delivery.smtp.idle_seconds, settings.delivery.smtp.max_bounce_share) == (
        30.0,
        0.2,
    )
    with pytest.raises(ConfigError, match=r"delivery\.smtp\.max_bounce_share: expected a share"):
        parse(smtp(max_bounce_share=1.5))
    with pytest.raises(ConfigError, match=r"delivery\.smtp\.idle_seconds: expected a number"):
        parse(smtp(idle_seconds=0))
