"""Tests for reading the subscribers CSV."""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from pathlib import Path

import pytest
from email_validator import EmailNotValidError, validate_email

from course.errors import ConfigError, SubscribersError
from course.subscribers import (
    ImportOptions,
    RowNote,
    RowOutcome,
    Subscriber,
    SubscriberList,
    fingerprint,
    load_subscribers,
    parse_subscribers,
)
from course.subscribers.emails import EmailNormalizer, InvalidAddress

REJECTED, ADJUSTED = RowOutcome.REJECTED, RowOutcome.ADJUSTED

DATA = Path(__file__).parent / "data" / "subscribers"
EXAMPLE = Path(__file__).parent.parent / "examples" / "subscribers.csv"


def parse(text: str, default_timezone: str = "UTC") -> SubscriberList:
    """Parse text as if it came from 'subs.csv'."""
    options = ImportOptions(default_timezone=default_timezone)
    return parse_subscribers(text, source="subs.csv", options=options)


def load(path: Path) -> SubscriberList:
    return load_subscribers(path, ImportOptions())


def emails(result: SubscriberList) -> list[str]:
    """The accepted addresses, in order."""
    return [subscriber.email for subscriber in result.subscribers]


def only(result: SubscriberList) -> Subscriber:
    """The single accepted subscriber, asserting there are no problems."""
    assert result.notes == ()
    (subscriber,) = result.subscribers
    return subscriber


def test_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "subs.csv"
    path.write_bytes(
        b"\xef\xbb\xbfemail,first_name\r\nann@example.com,Ann\r\nben@example.com,Ben\r\n"
    )
    result = load(path)
    assert result.notes == ()
    assert [(s.email, s.first_name, s.row) for s in result.subscribers] == [
        ("ann@example.com", "Ann", 2),
        ("ben@example.com", "Ben", 3),
    ]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_any_line_ending_and_a_bom_in_text(newline: str) -> None:
    text = "\ufeffemail,first_name" + newline + "ann@example.com,Ann" + newline
    assert [(s.email, s.row) for s in parse(text).subscribers] == [("ann@example.com", 2)]


def test_quoted_commas_and_newlines_keep_row_numbers_as_records() -> None:
    text = (
        "email,first_name,address\n"
        'ann@example.com,"Smith, Ann",plain\n'
        'ben@example.com,Ben,"1 High St\r\nLondon"\n'
        "cat@example.com,Cat,after\n"
    )
    result = parse(text)
    assert [(s.first_name, s.row) for s in result.subscribers] == [
        ("Smith, Ann", 2),
        ("Ben", 3),
        ("Cat", 4),
    ]
    # A multi-line cell in a column only templates see is text, not an attack on a header.
    assert result.subscribers[1].fields["address"] == "1 High St\nLondon"
    assert result.notes == ()


def test_a_line_break_in_a_column_that_reaches_a_header_still_rejects_the_row() -> None:
    result = parse('email,first_name,address\nben@example.com,"Ben\nBcc: x",home\n')
    assert result.notes == (
        RowNote(
            2,
            "ben@example.com",
            "control character in 'first_name' (the record spans lines 2-3)",
            REJECTED,
        ),
    )


def test_blank_lines_are_skipped_but_counted() -> None:
    result = parse("email\n\nann@example.com\n\n   \n,\nben@example.com\n")
    assert result.notes == ()
    assert [(s.email, s.row) for s in result.subscribers] == [
        ("ann@example.com", 3),
        ("ben@example.com", 7),
    ]


def test_extra_columns_become_fields_lowercased() -> None:
    subscriber = only(parse("email,City,Plan\nann@example.com,Paris,gold\n"))
    assert dict(subscriber.fields) == {"city": "Paris", "plan": "gold"}
    assert subscriber.fields["city"] == "Paris"
    assert isinstance(subscriber.fields, Mapping)
    assert not isinstance(subscriber.fields, MutableMapping)
    assert hash(subscriber) == hash(only(parse("email,city,plan\nann@example.com,Paris,gold\n")))


def test_rows_without_extra_columns_share_one_empty_mapping() -> None:
    first, second = parse("email,first_name\na@example.com,A\nb@example.com,B\n").subscribers
    assert first.fields is second.fields
    assert dict(first.fields) == {}


def test_short_rows_are_padded_with_empty_values() -> None:
    subscriber = only(parse("email,first_name,city\nann@example.com\n"))
    assert (subscriber.first_name, dict(subscriber.fields)) == ("", {"city": ""})


def test_headers_are_case_insensitive_and_trimmed() -> None:
    subscriber = only(parse(" Email ,First_Name , TimeZone\nann@example.com,Ann,Asia/Tokyo\n"))
    assert (subscriber.email, subscriber.first_name, subscriber.timezone) == (
        "ann@example.com",
        "Ann",
        "Asia/Tokyo",
    )


def test_name_column_is_the_fallback_for_first_name() -> None:
    result = parse("email,first_name,name\na@example.com,Ann,Ann Smith\nb@example.com,,Ben Jones\n")
    assert [s.first_name for s in result.subscribers] == ["Ann", "Ben"]
    assert only(parse("email,name\nc@example.com,Cat\n")).first_name == "Cat"


def test_semicolon_excel_export() -> None:
    result = load(DATA / "excel-semicolon.csv")
    assert result.notes == ()
    ann, ben = result.subscribers
    assert (ann.email, ann.timezone, ann.subscribed_at) == (
        "ann@example.com",
        "Europe/Paris",
        datetime(2024, 5, 31, 7, 0, tzinfo=UTC),
    )
    assert (ben.first_name, ben.row) == ("Smith; Ben", 3)


def test_tab_separated() -> None:
    subscriber = only(parse("email\tfirst_name\nann@example.com\tSmith, Ann\n"))
    assert subscriber.first_name == "Smith, Ann"


def test_comma_wins_when_the_header_also_contains_semicolons() -> None:
    subscriber = only(parse("email,notes;misc\nann@example.com,a;b\n"))
    assert dict(subscriber.fields) == {"notes_misc": "a;b"}


def test_internationalised_addresses_are_accepted_and_normalised() -> None:
    result = parse("email\njosé@bücher.example\nann@EXAMPLE.COM\nbob@xn--bcher-kva.example\n")
    assert [(n.row, n.outcome) for n in result.notes] == [(2, RowOutcome.FLAGGED)]
    assert emails(result) == ["josé@bücher.example", "ann@example.com", "bob@bücher.example"]


def test_test_domains_are_accepted_but_localhost_is_not() -> None:
    result = parse("email\nann@example.test\nroot@localhost\nbob@printer.local\n")
    assert emails(result) == ["ann@example.test"]
    assert [(p.row, p.outcome) for p in result.notes] == [(3, REJECTED), (4, REJECTED)]


def test_duplicates_keep_the_first_row_case_insensitively() -> None:
    result = parse(
        "email,first_name\nAnn@Example.com,First\nben@example.com,Ben\nANN@example.COM,Second\n"
    )
    assert [(s.email, s.first_name) for s in result.subscribers] == [
        ("Ann@example.com", "First"),
        ("ben@example.com", "Ben"),
    ]
    assert result.notes == (RowNote(4, "ANN@example.COM", "duplicate of row 2", REJECTED),)


def test_a_rejected_row_does_not_claim_its_address() -> None:
    result = parse('email,city\nann@example.com,"Par\x1bis"\nann@example.com,Paris\n')
    assert [s.row for s in result.subscribers] == [3]


def test_header_injection_in_a_name_is_rejected() -> None:
    result = parse('email,first_name\neve@example.org,"Eve\r\nBcc: x@example.org"\n')
    assert result.subscribers == ()
    assert result.notes == (
        RowNote(
            2,
            "eve@example.org",
            "control character in 'first_name' (the record spans lines 2-3)",
            REJECTED,
        ),
    )


@pytest.mark.parametrize(
    ("value", "column"),
    [
        ("Tab\tName", "first_name"),
        ("Line\u2028Separator", "first_name"),
        ("Para\u2029Separator", "first_name"),
        ("Nul\x00", "first_name"),
        ("Del\x7f", "first_name"),
        ("Next\x85Line", "first_name"),
    ],
)
def test_control_characters_anywhere_reject_the_row(value: str, column: str) -> None:
    result = parse(f'email,first_name\nann@example.com,"{value}"\n')
    assert result.subscribers == ()
    assert [p.reason for p in result.notes] == [f"control character in '{column}'"]


def test_control_characters_in_extra_fields_and_addresses_are_named() -> None:
    result = parse('email,city\nann@example.com,"Par\x1bis"\n"bob\r@example.com",Rome\n')
    assert [(p.email, p.reason) for p in result.notes] == [
        ("ann@example.com", "control character in 'city'"),
        ("bob\\r@example.com", "control character in 'email' (the record spans lines 3-4)"),
    ]


def test_markup_and_formulas_are_kept_exactly_as_data() -> None:
    text = 'email,first_name,note\nann@example.com,<script>alert(1)</script>,"=1+2"\n'
    text += "ben@example.com,+44 20,-5\ncat@example.com,@cat,=HYPERLINK(x)\n"
    result = parse(text)
    assert result.notes == ()
    assert [(s.first_name, s.fields["note"]) for s in result.subscribers] == [
        ("<script>alert(1)</script>", "=1+2"),
        ("+44 20", "-5"),
        ("@cat", "=HYPERLINK(x)"),
    ]


def test_unknown_time_zone_falls_back_with_an_adjustment() -> None:
    result = parse("email,timezone\nann@example.com,Mars/Base\n", default_timezone="Europe/London")
    assert result.subscribers[0].timezone == "Europe/London"
    assert result.notes == (
        RowNote(
            2, "ann@example.com", "unknown time zone 'Mars/Base', using Europe/London", ADJUSTED
        ),
    )


@pytest.mark.parametrize(
    ("value", "expected"), [("", "Asia/Tokyo"), ("europe/berlin", "Europe/Berlin")]
)
def test_empty_or_miscased_time_zone_is_silent(value: str, expected: str) -> None:
    subscriber = only(parse(f"email,timezone\nann@example.com,{value}\n", "Asia/Tokyo"))
    assert subscriber.timezone == expected


@pytest.mark.parametrize("value", ["../../etc/passwd", "/etc/localtime", "America", "+99:00"])
def test_time_zone_values_that_are_not_zones_fall_back(value: str) -> None:
    result = parse(f"email,timezone\nann@example.com,{value}\n")
    assert result.subscribers[0].timezone == "UTC"
    assert [p.outcome for p in result.notes] == [ADJUSTED]


def test_invalid_default_time_zone_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'Mars/Base' is not an IANA time zone name"):
        parse("email\nann@example.com\n", default_timezone="Mars/Base")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-31", datetime(2024, 5, 30, 15, 0, tzinfo=UTC)),
        ("2024-05-31T09:30", datetime(2024, 5, 31, 0, 30, tzinfo=UTC)),
        ("2024-05-31 09:30:15", datetime(2024, 5, 31, 0, 30, 15, tzinfo=UTC)),
        ("2024-05-31T09:30+02:00", datetime(2024, 5, 31, 7, 30, tzinfo=UTC)),
        ("2024-05-31T09:30Z", datetime(2024, 5, 31, 9, 30, tzinfo=UTC)),
        ("", None),
    ],
)
def test_subscribed_at_forms(value: str, expected: datetime | None) -> None:
    text = f"email,timezone,subscribed_at\nann@example.com,Asia/Tokyo,{value}\n"
    subscriber = only(parse(text))
    assert subscriber.subscribed_at == expected
    assert subscriber.subscribed_at is None or subscriber.subscribed_at.tzinfo is UTC


def test_subscribed_at_absent_is_none() -> None:
    assert only(parse("email\nann@example.com\n")).subscribed_at is None


@pytest.mark.parametrize("value", ["31/13/2024", "yesterday", "2024-13-01", "0001-01-01T00:00"])
def test_unparseable_subscribed_at_joins_now_with_a_note(value: str) -> None:
    result = parse(f"email,timezone,subscribed_at\nann@example.com,Pacific/Auckland,{value}\n")
    assert [(s.email, s.subscribed_at) for s in result.subscribers] == [("ann@example.com", None)]
    assert [(p.outcome, p.reason) for p in result.notes] == [
        (ADJUSTED, f"joined date '{value}' unreadable; joins now")
    ]


def test_a_row_wider_than_the_header_is_rejected() -> None:
    result = parse("email,first_name,timezone\nann@example.com,Smith, Ann,\n")
    assert [p.reason for p in result.notes] == [
        "4 values but the header has 3 columns; put values containing ',' in double quotes"
    ]


def test_an_unreadable_record_does_not_stop_the_others() -> None:
    text = 'email,first_name\nann@example.com,"' + "x" * 200_000 + '"\nben@example.com,Ben\n'
    result = parse(text)
    assert [(s.email, s.row) for s in result.subscribers] == [("ben@example.com", 3)]
    assert [(p.row, p.email, p.reason) for p in result.notes] == [
        (2, "", "unreadable CSV record: field larger than field limit (131072)")
    ]


def test_long_addresses_are_truncated_for_display() -> None:
    result = parse("email\n" + "a" * 100 + "@\n")
    assert result.notes[0].email == "a" * 79 + "…"


def test_an_email_column_no_header_names_is_the_one_holding_addresses() -> None:
    result = load(DATA / "no-email-column.csv")
    assert [(s.email, s.first_name) for s in result.subscribers] == [("ann@example.com", "Ann")]
    assert result.header[-1] == (
        "note: no header names the email column; column 'contact' holds addresses, so it is "
        "the email (name it in subscribers.columns to be sure)"
    )


def test_missing_email_column_names_the_file_and_the_fix() -> None:
    with pytest.raises(SubscribersError) as caught:
        parse("contact,name\n+1 555 0100,Ann\n")
    assert str(caught.value) == (
        "subs.csv: no email column in the header (found: contact, name); name it in "
        'schedule.yaml, e.g. subscribers.columns: {"contact": email}'
    )


def test_a_file_without_a_header_says_so() -> None:
    with pytest.raises(SubscribersError) as caught:
        parse("ann@example.com,Ann\n")
    assert str(caught.value) == (
        "subs.csv: no email column in the header (found: ann@example.com, Ann); "
        "the first line must be a header such as 'email,first_name,timezone'"
    )


def test_a_repeated_column_is_an_error() -> None:
    with pytest.raises(SubscribersError) as caught:
        parse("email,name,Email\n")
    assert str(caught.value) == (
        "subs.csv: column 'email' appears twice in the header (columns 1 and 3); "
        "rename or remove one"
    )


@pytest.mark.parametrize("text", ["", "\n\n", "\ufeff"])
def test_an_empty_file_is_an_error(text: str) -> None:
    with pytest.raises(SubscribersError, match=r"^subs\.csv: the file is empty"):
        parse(text)


def test_a_header_alone_is_an_empty_list() -> None:
    assert parse("email,first_name\n").closing == (
        "subs.csv: 0 subscribers accepted, 0 rows skipped (not subscribed), 0 rejected, 0 adjusted",
    )


def test_a_short_non_utf8_file_is_read_by_a_confident_guess() -> None:
    result = load(DATA / "latin1.csv")
    assert [s.first_name for s in result.subscribers] == ["Ann", "Zoë"]
    assert result.header[-1] == (
        "note: the file is not UTF-8; read as cp1252 (charset-normalizer's guess); "
        "export it as 'CSV UTF-8' to be sure of every name"
    )


def test_a_file_in_no_confident_encoding_names_the_byte_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "subs.csv"
    path.write_bytes(
        b"email,first_name\nann@example.com,Ann\nzoe@example.com," + bytes(range(128, 256)) + b"\n"
    )
    with pytest.raises(SubscribersError) as caught:
        load(path)
    assert str(caught.value) == (
        f"{path}: not UTF-8 (byte 0x80 on line 3), and its encoding cannot be told for sure; "
        "export it as 'CSV UTF-8' or re-save it with UTF-8 encoding"
    )


def test_utf16_with_a_bom_is_read(tmp_path: Path) -> None:
    path = tmp_path / "subs.csv"
    path.write_bytes("email\tfirst_name\nann@example.com\tZoë\n".encode("utf-16"))
    assert [(s.email, s.first_name) for s in load(path).subscribers] == [("ann@example.com", "Zoë")]


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    message = (
        f"{path}: cannot read the subscribers file (No such file or directory); check the path"
    )
    with pytest.raises(SubscribersError) as caught:
        load(path)
    assert str(caught.value) == message
    with pytest.raises(SubscribersError) as caught:
        fingerprint(path)
    assert str(caught.value) == message


def test_hostile_csv_report_word_for_word() -> None:
    path = DATA / "hostile.csv"
    result = load(path)
    assert result.report_lines() == [
        f"{path}: a CSV of 5 columns",
        "columns (header -> field):",
        "  Email         -> email",
        "  First_Name    -> first name",
        "  TIMEZONE      -> time zone",
        "  subscribed_at -> joined at",
        "  Plan          -> subscriber.plan",
        "templates see: subscriber.first_name, subscriber.email, subscriber.plan",
        "row 3: rejected: invalid email address: There must be something after the @-sign. (bad@)",
        "row 4: rejected: control character in 'First_Name' (the record spans lines 4-5)"
        " (eve@example.org)",
        "row 5: rejected: duplicate of row 2 (ANN@Example.COM)",
        "row 7: adjusted: unknown time zone 'Mars/Base', using UTC (mallory@example.com)",
        "row 8: rejected: invalid email address: A display name and angle brackets around the"
        " email address are not permitted here. (Mallory <m@example.com>)",
        "row 9: rejected: invalid email address: The part after the @-sign is not valid. It"
        " should have a period. (root@localhost)",
        "row 10: rejected: control character in 'First_Name' (tab@example.com)",
        "row 11: rejected: control character in 'Plan' (plan@example.com)",
        "row 12: adjusted: joined date 'yesterday' unreadable; joins now (trent@example.com)",
        "row 13: rejected: control character in 'Email' (nul\\x00@example.com)",
        "row 14: rejected: 6 values but the header has 5 columns; put values containing ','"
        " in double quotes (wide@example.com)",
        "row 15: rejected: no email address",
        "row 17: rejected: invalid email address: There must be something after the @-sign. ("
        + "a" * 79
        + "…)",
        "row 18: flagged: the address has non-ASCII characters before the @: it needs a mail"
        " server that offers SMTPUTF8 (josé@bücher.example)",
        f"{path}: 6 subscribers accepted, 0 rows skipped (not subscribed), 11 rejected,"
        " 2 adjusted, 1 flagged",
    ]
    rows = [(s.row, s.email, s.first_name, s.timezone, dict(s.fields)) for s in result.subscribers]
    assert rows == [
        (2, "ann@example.com", "Ann", "Europe/London", {"plan": "gold"}),
        (7, "mallory@example.com", "<script>alert(1)</script>", "UTC", {"plan": ""}),
        (12, "trent@example.com", "Trent", "UTC", {"plan": ""}),
        (16, "frank@example.com", '=HYPERLINK("http://evil.example")', "UTC", {"plan": "silver"}),
        (18, "josé@bücher.example", "José", "Europe/Berlin", {"plan": ""}),
        (20, "zed@example.test", "Zed", "UTC", {"plan": ""}),
    ]


def test_report_uses_singular_counts() -> None:
    result = parse("email,status\nann@example.com,\nbad@,\ncat@example.com,cancelled\n")
    assert result.report_lines()[-1] == (
        "subs.csv: 1 subscriber accepted, 1 row skipped (not subscribed), 1 rejected, 0 adjusted"
    )


def test_shipped_example_loads_cleanly() -> None:
    result = load(EXAMPLE)
    assert result.notes == ()
    assert len(result.subscribers) == 7
    assert all(s.email.endswith("@example.com") for s in result.subscribers)
    assert all(s.subscribed_at is None for s in result.subscribers)
    assert len({s.timezone for s in result.subscribers}) == 7
    assert any(not s.first_name.isascii() for s in result.subscribers)


def test_fingerprint_follows_content_not_mtime(tmp_path: Path) -> None:
    path = tmp_path / "subs.csv"
    path.write_bytes(b"email\nann@example.com\n")
    before = fingerprint(path)
    os.utime(path, ns=(0, 0))
    assert fingerprint(path) == before
    path.write_bytes(b"email\nbob@example.com\n")
    assert fingerprint(path) != before
    assert before.startswith("sha256:")


ADDRESSES = [
    "ann@example.com",
    "Ann.Smith+tag@Example.COM",
    "INFO@example.com",
    "Postmaster@example.com",
    "ann@bücher.example",
    "ann@BÜCHER.example",
    "ann@xn--bcher-kva.example",
    "josé@bücher.example",
    "ann@example.test",
    "ann@test",
    "ann@localhost",
    "ann@example.com.",
    "ann@-example.com",
    "ann@example..com",
    ".ann@example.com",
    "ann.@example.com",
    "a..b@example.com",
    '"ann"@example.com',
    '"a b"@example.com',
    "Ann <ann@example.com>",
    "ann@[192.0.2.1]",
    "ann＠example.com",
    "ann@example.com@example.com",
    "ann@\u0301example.com",
    "@example.com",
    "ann@",
    "a" * 64 + "@example.com",
    "a" * 65 + "@example.com",
    "a@" + "ü" * 60 + ".example",
]
# Domains where the 254-byte limit binds on, in turn, the plain form, the UTF-8 form and the
# IDNA ASCII form: sweeping the local part's length crosses each boundary.
LONG_DOMAINS = [
    "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com",
    ".".join(["ü" * 20] * 5) + ".example",
    ".".join(["aaaaaü"] * 16) + ".example",
]


def reference(address: str) -> str:
    """What email-validator itself makes of address, as our reason text or normalised form."""
    try:
        return validate_email(address, check_deliverability=False, test_environment=True).normalized
    except EmailNotValidError as error:
        return f"invalid email address: {error}"


def fast(normalizer: EmailNormalizer, address: str) -> str:
    """What the cached normaliser makes of address, in the same terms as reference()."""
    try:
        return normalizer.normalize(address)
    except InvalidAddress as rejection:
        return str(rejection)


@pytest.mark.parametrize("address", ADDRESSES)
def test_domain_cache_agrees_with_email_validator(address: str) -> None:
    normalizer = EmailNormalizer()
    warm = "x@" + address.rpartition("@")[2]
    fast(normalizer, warm)
    assert fast(normalizer, address) == reference(address)
    assert fast(normalizer, address) == reference(address)


@pytest.mark.parametrize("domain", LONG_DOMAINS)
def test_domain_cache_agrees_at_the_length_limit(domain: str) -> None:
    normalizer = EmailNormalizer()
    outcomes = set()
    for length in range(1, 70):
        address = "a" * length + "@" + domain
        expected = reference(address)
        assert fast(normalizer, address) == expected
        outcomes.add(expected.startswith("invalid"))
    assert outcomes == {True, False}


def test_domain_cache_is_used_for_plain_addresses() -> None:
    normalizer = EmailNormalizer()
    assert normalizer.normalize("Ann@Example.COM") == "Ann@example.com"
    assert normalizer.normalize("Ben@Example.COM") == "Ben@example.com"
    assert list(normalizer._domains) == ["Example.COM"]


def test_both_passes_see_the_same_records_across_quoted_line_breaks() -> None:
    text = (
        "email,first_name,note\r\n"
        'ann@example.com,"Smith, Ann","two\r\nlines"\r\n'
        "\r\n"
        "ben@example.com,Ben,x\r\n"
        "ben@example.com,Ben again,x\r\n"
    )
    result = parse(text)
    assert [(s.row, s.fields["note"]) for s in result.subscribers] == [(2, "two\nlines"), (4, "x")]
    assert [(n.row, n.reason) for n in result.notes] == [(5, "duplicate of row 4")]


def test_the_first_pass_numbers_rows_past_an_unreadable_record_as_the_report_does() -> None:
    text = (
        'email,state\nann@example.com,"' + "x" * 200_000 + '"\n'
        "ben@example.com,active\n"
        "ben@example.com,cancelled\n"
    )
    result = parse(text)
    assert result.subscribers == ()
    assert [(p.row, p.outcome, p.reason) for p in result.notes] == [
        (2, REJECTED, "unreadable CSV record: field larger than field limit (131072)"),
        (3, RowOutcome.SKIPPED, "row 4 says this address is not subscribed"),
        (4, RowOutcome.SKIPPED, "state 'cancelled'"),
    ]
