"""The return path: the envelope sender, and VERP tokens that name a subscriber and a day."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from course.bounces.verp import ReturnPath, VerpMark
from course.config import load_settings, parse_settings
from course.errors import ConfigError
from course.runtime import Runtime
from course.tokens import subscriber_ref

SECRET = b"a-test-secret-of-enough-bytes"
PATH = ReturnPath("bounces@example.com", True, SECRET, "cats")
SOURCE = Path("/srv/course/schedule.yaml")


def test_without_verp_every_message_has_the_return_path() -> None:
    plain = ReturnPath("bounces@example.com", False, SECRET, "cats")
    assert plain.for_lesson("ann@example.org", 3) == "bounces@example.com"


def test_verp_address_is_local_plus_token_at_domain_and_fits_a_local_part() -> None:
    address = PATH.for_lesson("ann@example.org", 3)
    local, _, domain = address.rpartition("@")
    assert domain == "example.com"
    assert local.startswith("bounces+")
    assert len(local) <= 64
    assert local == local.lower()  # survives hosts that fold the local part's case
    assert "ann" not in address  # the address itself is not in it


def test_a_token_names_the_subscriber_and_the_day() -> None:
    address = PATH.for_lesson("Ann@Example.org", 12)
    sighting = PATH.read(["bounces@example.com", address])
    assert sighting.mark == VerpMark(subscriber_ref(SECRET, "cats", "ann@example.org"), 12)
    assert sighting.forged == ()


def test_a_token_whose_case_was_folded_still_reads() -> None:
    address = PATH.for_lesson("ann@example.org", 2)
    assert PATH.read([address.upper()]).mark is not None


@pytest.mark.parametrize(
    "other",
    [
        ReturnPath("bounces@example.com", True, b"another-secret-of-enough-bytes", "cats"),
        ReturnPath("bounces@example.com", True, SECRET, "dogs"),  # another course, same secret
    ],
)
def test_a_token_made_elsewhere_is_forged_here(other: ReturnPath) -> None:
    address = other.for_lesson("ann@example.org", 3)
    sighting = PATH.read([address])
    assert sighting.mark is None
    assert sighting.forged == (address,)


def test_an_altered_token_is_forged() -> None:
    address = PATH.for_lesson("ann@example.org", 3)
    local, _, domain = address.partition("@")
    flipped = local[:-1] + ("a" if local[-1] != "a" else "b")
    assert PATH.read([f"{flipped}@{domain}"]).forged == (f"{flipped}@{domain}",)


def test_addresses_of_other_shapes_are_not_tokens() -> None:
    sighting = PATH.read(["bounces@example.com", "bounces+short@example.com", "x@example.org"])
    assert sighting.marks == ()
    assert sighting.forged == ()


def test_two_tokens_that_disagree_name_nobody() -> None:
    one = PATH.for_lesson("ann@example.org", 3)
    two = PATH.for_lesson("kai@example.org", 3)
    assert PATH.read([one, two]).mark is None
    assert PATH.read([one, one.upper()]).mark is not None


# --- configuration ------------------------------------------------------------------------------


def parse(text: str) -> object:
    return parse_settings(text, source=SOURCE)


def test_return_path_defaults_to_from_and_verp_to_off() -> None:
    settings = parse_settings("{}", source=SOURCE)
    assert settings.sender.envelope_sender == settings.sender.from_address
    assert settings.sender.verp is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "sender:\n  return_path: 'Bounces <b@example.com>'\n",
            "sender.return_path: expected a bare address such as bounces@example.com",
        ),
        ("sender:\n  verp: 'yes'\n", "sender.verp: expected true or false, got 'yes'"),
        (
            "sender:\n  return_path: b+x@example.com\n  verp: true\n",
            "sender.return_path: with sender.verp the local part cannot contain '+', got 'b+x'",
        ),
        (
            "sender:\n  return_path: a-very-long-bounce-name@example.com\n  verp: true\n",
            "sender.return_path: with sender.verp the local part can have at most 15 characters",
        ),
        (
            "bounces:\n  mailbox: pop3://x@example.com/\n",
            "bounces.mailbox: expected maildir:PATH or imaps://user@host[:port]/FOLDER",
        ),
        (
            "bounces:\n  mailbox: imaps://u:secret@example.com/\n",
            "bounces.mailbox: put the password in bounces.password_env, not the URL",
        ),
        (
            "bounces:\n  webhooks:\n    sendgrid: {}\n",
            "bounces.webhooks.sendgrid: expected public_key or public_key_file",
        ),
        (
            "bounces:\n  webhooks:\n    postmark:\n      username: pm\n",
            "bounces.webhooks.postmark: expected username and password_env, or path_secret_env",
        ),
        (
            "bounces:\n  webhooks:\n    postmark:\n      username: pm\n      path_secret_env: X\n",
            "bounces.webhooks.postmark: expected both username and password_env for basic auth",
        ),
        ("bounces:\n  webhooks:\n    ses: {}\n", "bounces.webhooks.ses: expected certificate_file"),
        ("bounces:\n  every_minute: 5\n", "bounces.every_minute: unknown key"),
    ],
)
def test_bounce_settings_errors_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert message in str(caught.value)


def test_mailbox_urls() -> None:
    maildir = parse_settings("bounces:\n  mailbox: maildir:mail/bounces\n", source=SOURCE)
    assert maildir.bounces.maildir == Path("/srv/course/mail/bounces")
    imap = parse_settings(
        "bounces:\n  mailbox: imaps://bounce%40example.com@imap.example.com/Bounces%20in\n",
        source=SOURCE,
    )
    assert imap.bounces.imap is not None
    assert (imap.bounces.imap.username, imap.bounces.imap.port) == ("bounce@example.com", 993)
    assert imap.bounces.imap.folder == "Bounces in"
    default = parse_settings("{}", source=SOURCE)
    assert default.bounces.maildir == Path("/srv/course/state/bounces")
    assert default.bounces.every_minutes == 0


# --- delivery -----------------------------------------------------------------------------------


def test_lessons_go_out_with_the_verp_return_path(project: Path) -> None:
    config = project / "schedule.yaml"
    text = config.read_text()
    text = text.replace("backend: inbox ", "backend: memory")
    text = text.replace(
        "  postal_address:",
        "  return_path: bounces@example.com\n  verp: true\n  postal_address:",
    )
    config.write_text(text)
    now = datetime(2026, 3, 2, 12, tzinfo=UTC)
    runtime = Runtime.open(load_settings(config), clock=lambda: now)
    try:
        runtime.tick(now)
        outbox = runtime.backend.outbox  # type: ignore[attr-defined]
        assert outbox
        return_path = runtime.deliverer.return_path
        assert return_path is not None
        for message in outbox:
            assert message.sender.startswith("bounces+")
            mark = return_path.read([message.sender]).mark
            assert mark is not None
            assert mark.day == 1
            secret, course_id = return_path.secret, return_path.course_id
            assert mark.ref == subscriber_ref(secret, course_id, message.recipient)
    finally:
        runtime.close()
