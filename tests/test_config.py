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
