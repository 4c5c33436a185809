"""Reading list exports: the mapping options, statuses, names, dates, zones and the report."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from support import run_course

from course.config import parse_settings
from course.displaynames import MAX_NAME_LENGTH, shorten_name
from course.errors import ConfigError
from course.subscribers import (
    DateOrder,
    Field,
    ImportOptions,
    RowOutcome,
    Standing,
    StatusColumn,
    SubscriberList,
    Unconfirmed,
    parse_subscribers,
)
from course.subscribers.dates import parse_joined
from course.subscribers.fields import header_key, template_name
from course.subscribers.zones import Zones

SOURCE = Path("/srv/course/schedule.yaml")


def parse(text: str, **options: object) -> SubscriberList:
    return parse_subscribers(text, source="list.csv", options=ImportOptions(**options))  # type: ignore[arg-type]


def reasons(result: SubscriberList) -> list[tuple[int, str, str]]:
    return [(n.row, n.outcome.value, n.reason) for n in result.notes]


@pytest.mark.parametrize(
    "header",
    ["Email Address", "email_address", "E-Mail", "E-mail", "EMAIL", "mail", "e mail", "Courriel"],
)
def test_email_aliases_match_whatever_the_case_spaces_dashes_or_underscores(header: str) -> None:
    result = parse(f"{header},Name\nann@example.com,Ann Lee\n")
    assert [(s.email, s.first_name) for s in result.subscribers] == [("ann@example.com", "Ann")]


@pytest.mark.parametrize(
    "header", ["First Name", "FNAME", "first_name", "Vorname", "Prénom", "given_name"]
)
def test_first_name_aliases(header: str) -> None:
    assert parse(f"email,{header}\nann@example.com,Ann\n").subscribers[0].first_name == "Ann"


def test_a_title_above_the_header_is_skipped_and_said() -> None:
    text = "Newsletter subscribers;;\n;;\nE-Mail;Vorname;Status\nann@example.com;Ann;aktiv\n"
    result = parse(text)
    assert [(s.row, s.email, s.first_name) for s in result.subscribers] == [
        (4, "ann@example.com", "Ann")
    ]
    assert "note: row 1 above the header skipped: 'Newsletter subscribers'" in result.header


@pytest.mark.parametrize("header", ["Contact", "Kontakt", "E-posta adresi", "อีเมล"])
def test_an_email_column_no_header_names_is_found_by_its_addresses(header: str) -> None:
    result = parse(f"Name,{header},Ort\nAnn Lee,ann@example.com,Köln\nBo Ek,,Lund\n")
    assert [(s.email, s.first_name) for s in result.subscribers] == [("ann@example.com", "Ann")]
    assert (
        f"note: no header names the email column; column '{header}' holds addresses, so it is "
        "the email (name it in subscribers.columns to be sure)"
    ) in result.header


@pytest.mark.parametrize(
    ("header", "value", "first_name", "zone"),
    [
        ("In welcher Zeitzone lebst du?", "Europe/Vienna", "", "Europe/Vienna"),
        ("What time zone are you in?", "EST", "", "America/New_York"),
        ("Your first name (so we can greet you)", "Ann", "Ann", "UTC"),
        ("Vorname und Nachname", "Ann Lee", "Ann", "UTC"),
        ("Nombre", "Rosa María López", "Rosa", "UTC"),
        ("氏名", "王伟", "王伟", "UTC"),
    ],
)
def test_a_question_names_its_field_anywhere_in_it(
    header: str, value: str, first_name: str, zone: str
) -> None:
    (ann,) = parse(f"email,{header}\nann@example.com,{value}\n").subscribers
    assert (ann.first_name, ann.timezone) == (first_name, zone)


def test_nombre_beside_apellidos_is_the_first_name() -> None:
    (ann,) = parse("email,Nombre,Apellidos\nann@example.com,Rosa María,López\n").subscribers
    assert ann.first_name == "Rosa María"


def test_header_keys_and_template_names() -> None:
    assert header_key("What's your first name?") == "whatsyourfirstname"
    assert template_name("What's up, Doc?") == "whats_up_doc"
    assert template_name("MMERGE5") == "mmerge5"


def test_columns_maps_any_header_to_a_field() -> None:
    text = "Kontakt,Rufname,Wann,Ort\nann@example.com,Annie,2026-05-01,Berlin\n"
    options = {
        "columns": {"Kontakt": Field.EMAIL, "rufname": Field.FIRST_NAME, "WANN": Field.JOINED_AT}
    }
    (ann,) = parse(text, **options).subscribers
    assert (ann.email, ann.first_name, ann.subscribed_at, dict(ann.fields)) == (
        "ann@example.com",
        "Annie",
        datetime(2026, 5, 1, tzinfo=UTC),
        {"ort": "Berlin"},
    )


def test_a_mapped_header_missing_from_the_file_names_both() -> None:
    with pytest.raises(ConfigError) as caught:
        parse("email\nann@example.com\n", columns={"Vorname": Field.FIRST_NAME})
    assert str(caught.value) == (
        "schedule.yaml: subscribers.columns: header 'Vorname' (for first_name) is not in "
        "list.csv; its columns are: 'email'"
    )


def test_an_unknown_field_in_the_config_names_both() -> None:
    text = "subscribers:\n  file: list.csv\n  columns:\n    Rufname: nickname\n"
    with pytest.raises(ConfigError) as caught:
        parse_settings(text, source=SOURCE)
    assert str(caught.value) == (
        "/srv/course/schedule.yaml: subscribers.columns.Rufname: unknown field for header "
        "'Rufname'; expected one of email, first_name, last_name, full_name, timezone, "
        "joined_at, status, attributes, extra, got 'nickname'"
    )


def test_the_mapping_form_of_subscribers_in_schedule_yaml() -> None:
    text = (
        "schedule:\n  timezone: Europe/Paris\n"
        "subscribers:\n  file: exports/list.csv\n  columns:\n    Kontakt: email\n"
        "  status:\n    column: Mitglied\n    active: [ja]\n"
        "  date_order: day_first\n  unconfirmed: include\n"
    )
    settings = parse_settings(text, source=SOURCE)
    assert settings.subscribers == Path("/srv/course/exports/list.csv")
    assert settings.list_import == ImportOptions(
        default_timezone="Europe/Paris",
        columns={"Kontakt": Field.EMAIL},
        status=StatusColumn("Mitglied", ("ja",)),
        date_order=DateOrder.DAY_FIRST,
        unconfirmed=Unconfirmed.INCLUDE,
        config_source=str(SOURCE),
    )
    assert parse_settings("subscribers: a.csv\n", source=SOURCE).subscribers == Path(
        "/srv/course/a.csv"
    )


def test_status_names_a_column_and_its_active_values() -> None:
    text = "email,Mitglied\nann@example.com,ja\nben@example.com,nein\ncat@example.com,\n"
    result = parse(text, status=StatusColumn("mitglied", ("ja",)))
    assert [s.email for s in result.subscribers] == ["ann@example.com"]
    assert reasons(result) == [
        (3, "skipped", "Mitglied 'nein'"),
        (4, "skipped", "Mitglied is empty"),
    ]


def test_an_unknown_status_value_is_skipped_and_says_what_to_do() -> None:
    result = parse("email,status\nann@example.com,vip\n")
    assert result.subscribers == ()
    assert reasons(result) == [
        (
            2,
            "skipped",
            "status 'vip' is not a status we know; name the active values in subscribers.status",
        )
    ]


@pytest.mark.parametrize(
    ("header", "value", "standing"),
    [
        ("state", "cancelled", Standing.UNSUBSCRIBED),
        ("state", "complained", Standing.UNSUBSCRIBED),
        ("status", "blocklisted", Standing.UNSUBSCRIBED),
        ("Status", "Abgemeldet", Standing.UNSUBSCRIBED),
        ("state", "bounced", Standing.BOUNCED),
        ("status", "Hard-Bounce", Standing.BOUNCED),
        ("state", "inactive", Standing.INACTIVE),
        ("status", "disabled", Standing.INACTIVE),
        ("status", "vip", Standing.INACTIVE),  # nobody knows it: skipped, not suppressed
        ("status", "pending", Standing.UNCONFIRMED),
    ],
)
def test_what_a_skipped_row_says_about_the_person(
    header: str, value: str, standing: Standing
) -> None:
    result = parse(f"email,{header}\nAnn@Example.com,{value}\n")
    (note,) = result.notes
    assert (note.outcome, note.address, note.standing) == (
        RowOutcome.SKIPPED,
        "Ann@example.com",
        standing,
    )


def test_the_report_says_which_skipped_rows_go_on_the_suppression_list() -> None:
    result = parse(
        "email,state\nann@example.com,cancelled\nben@example.com,inactive\n"
        "cat@example.com,bounced\ndan@example.com,active\n"
    )
    assert result.counts.suppressing == 2
    assert result.closing[0] == (
        "note: 2 skipped rows say the person unsubscribed, complained or bounced: synced, they "
        "go on the suppression list, which a later export does not undo "
        "(`course resubscribe EMAIL` does)"
    )
    assert not any("suppression" in line for line in parse("email\nann@example.com\n").closing)


def test_substack_disabled_email_and_mailchimp_exports_of_people_who_left() -> None:
    substack = parse("email,email_disabled,name\nann@example.com,true,Ann\n")
    assert substack.notes[0].standing is Standing.UNSUBSCRIBED
    mailchimp = "Email Address,MEMBER_RATING,LEID,{}\nann@example.com,1,3,2024-01-01\n"
    unsubscribed = parse(mailchimp.format("UNSUB_TIME"))
    cleaned = parse(mailchimp.format("CLEAN_TIME"))
    assert unsubscribed.notes[0].standing is Standing.UNSUBSCRIBED
    assert (cleaned.notes[0].standing, cleaned.notes[0].reason) == (
        Standing.BOUNCED,
        "in Mailchimp's cleaned export",
    )


@pytest.mark.parametrize(
    ("header", "value", "standing"),
    [
        # Set means they left: yes, a date, or any reason written there.
        ("Unsubscribed", "TRUE", Standing.UNSUBSCRIBED),
        ("unsubscribed_at", "2024-05-05 10:00", Standing.UNSUBSCRIBED),
        ("Email Opt Out", "x", Standing.UNSUBSCRIBED),
        ("Do Not Email", "1", Standing.UNSUBSCRIBED),
        ("EMAIL_BLACKLISTED", "Yes", Standing.UNSUBSCRIBED),
        ("bounced_at", "2024-05-05", Standing.BOUNCED),
        ("deleted_at", "2024-05-05T00:00:00Z", Standing.INACTIVE),
        ("Unsubscribed", "false", Standing.ACTIVE),
        ("unsubscribed_at", "", Standing.ACTIVE),
        ("Email Opt Out", "null", Standing.ACTIVE),
        # Yes consents; no, nothing or anything else does not.
        ("subscribed_to_emails", "true", Standing.ACTIVE),
        ("Accepts Marketing", "yes", Standing.ACTIVE),
        ("Email Opt-In", "subscribed", Standing.ACTIVE),
        ("Accepts Email Marketing", "no", Standing.INACTIVE),
        ("Accepts Email Marketing", "", Standing.INACTIVE),
        ("Marketing Consent", "unsubscribed", Standing.UNSUBSCRIBED),
        ("Marketing Consent", "maybe", Standing.INACTIVE),
        # The status words of more tools.
        ("subscriber_type", "regular", Standing.ACTIVE),
        ("subscriber_type", "unactivated", Standing.UNCONFIRMED),
        ("Email Marketing Consent", "NEVER_SUBSCRIBED", Standing.INACTIVE),
        ("subscription_state", "in_trial", Standing.ACTIVE),
        ("Email permission status", "Implicit", Standing.ACTIVE),
        ("Estado de suscripción", "cancelado", Standing.UNSUBSCRIBED),
    ],
)
def test_consent_and_opt_out_columns(header: str, value: str, standing: Standing) -> None:
    result = parse(f"email,{header}\nann@example.com,{value}\n")
    found = result.notes[0].standing if result.notes else Standing.ACTIVE
    assert (found, len(result.subscribers)) == (standing, standing is Standing.ACTIVE)


@pytest.mark.parametrize(
    ("text", "mailed"),
    [
        # Regions, dates and newsletter names under headers that could be statuses.
        ("email,State\nann@example.com,CA\nben@example.com,NY\n", 2),
        ("email,Subscribed\nann@example.com,2024-01-05\nben@example.com,5/6/2024\n", 2),
        ("email,Newsletter\nann@example.com,Weekly\nben@example.com,\n", 2),
        ("email,Estado\nann@example.com,Jalisco\nben@example.com,Oaxaca\n", 2),
        # Statuses under those headers.
        ("email,State\nann@example.com,active\nben@example.com,unsubscribed\n", 1),
        ("email,Active\nann@example.com,yes\nben@example.com,no\n", 1),
        ("email,Newsletter\nann@example.com,x\nben@example.com,\n", 1),
    ],
)
def test_a_weak_status_header_is_judged_by_the_whole_column(text: str, mailed: int) -> None:
    assert len(parse(text).subscribers) == mailed


@pytest.mark.parametrize(
    ("name", "standing"),
    [
        ("unsubscribed_members_export_3f2a.csv", Standing.UNSUBSCRIBED),
        ("cleaned_members_export_3f2a.csv", Standing.BOUNCED),
        ("Non-Subscribed contacts.csv", Standing.INACTIVE),
        ("blocklist 2024.csv", Standing.UNSUBSCRIBED),
    ],
)
def test_a_file_named_for_people_who_left_mails_nobody(name: str, standing: Standing) -> None:
    text = "Email Address,First Name\nann@example.com,Ann\n"
    result = parse_subscribers(text, source=name)
    assert (result.subscribers, result.notes[0].standing) == ((), standing)
    assert parse_subscribers(text, source="subscribed_members_export_3f2a.csv").subscribers


def test_a_status_column_speaks_for_itself_whatever_the_file_name() -> None:
    text = "email,status\nann@example.com,active\n"
    assert parse_subscribers(text, source="unsubscribed-and-active.csv").subscribers


def test_the_status_column_that_keeps_mail_away_most_speaks_for_the_row() -> None:
    result = parse(
        "email,status,subscription_status\n"
        "ann@example.com,pending,unsubscribed\n"
        "ben@example.com,bounced,unsubscribed\n"
        "cat@example.com,disabled,pending\n"
    )
    assert [(n.row, n.reason, n.standing) for n in result.notes] == [
        (2, "subscription_status 'unsubscribed'", Standing.UNSUBSCRIBED),
        (3, "status 'bounced'", Standing.BOUNCED),
        (4, "status 'disabled'", Standing.INACTIVE),
    ]


def test_a_configured_status_column_still_knows_who_unsubscribed() -> None:
    text = (
        "email,Mitglied\n"
        "ann@example.com,ja\nben@example.com,gekündigt\ncat@example.com,unsubscribed\n"
    )
    result = parse(text, status=StatusColumn("mitglied", ("ja",)))
    assert [(n.row, n.standing) for n in result.notes] == [
        (3, Standing.INACTIVE),
        (4, Standing.UNSUBSCRIBED),
    ]


def test_unconfirmed_rows_are_skipped_unless_included() -> None:
    text = "email,status\nann@example.com,pending\n"
    assert parse(text).subscribers == ()
    assert len(parse(text, unconfirmed=Unconfirmed.INCLUDE).subscribers) == 1


def test_an_address_marked_gone_in_any_row_is_never_mailed() -> None:
    text = (
        "email,state\nann@example.com,active\nben@example.com,active\nANN@example.com,cancelled\n"
    )
    result = parse(text)
    assert [s.email for s in result.subscribers] == ["ben@example.com"]
    assert reasons(result) == [
        (2, "skipped", "row 4 says this address is not subscribed"),
        (4, "skipped", "state 'cancelled'"),
    ]
    assert [n.address for n in result.notes] == ["ann@example.com", "ANN@example.com"]
    # The active row of an address marked gone says what the gone row says.
    assert [n.standing for n in result.notes] == [Standing.UNSUBSCRIBED] * 2


def test_a_first_name_too_long_to_be_a_name_is_cut_with_a_note() -> None:
    long_name = "Ann" + "é" * 997
    result = parse(f"email,first_name\nann@example.com,{long_name}\nben@example.com,Ben\n")
    ann, ben = result.subscribers
    assert ann.first_name == shorten_name(long_name)
    assert len(ann.first_name) == MAX_NAME_LENGTH
    assert ann.first_name.endswith("é…")
    assert ben.first_name == "Ben"
    assert reasons(result) == [
        (
            2,
            "adjusted",
            "first name too long (1,000 characters): cut to its first 99 and '…' for the "
            "greeting and the To: line",
        )
    ]
    assert result.counts.adjusted == 1


@pytest.mark.parametrize(
    ("value", "order", "expected"),
    [
        ("2024-05-31T09:30+02:00", DateOrder.MONTH_FIRST, "2024-05-31T07:30"),
        ("5/28/2026 14:03:11", DateOrder.MONTH_FIRST, "2026-05-28T14:03"),
        ("5/6/2026 2:03:11 PM", DateOrder.MONTH_FIRST, "2026-05-06T14:03"),
        ("5/6/2026", DateOrder.DAY_FIRST, "2026-06-05T00:00"),
        ("28.05.2026", DateOrder.MONTH_FIRST, "2026-05-28T00:00"),
        ("28.05.2026 09:30", DateOrder.MONTH_FIRST, "2026-05-28T09:30"),
        ("2024-03-05 10:21:33.123456 +0000 +0000", DateOrder.MONTH_FIRST, "2024-03-05T10:21"),
        ("2024-03-05 10:21:33.123456789 +0530 IST", DateOrder.MONTH_FIRST, "2024-03-05T04:51"),
        ("1716906191", DateOrder.MONTH_FIRST, "2024-05-28T14:23"),
        ("1716906191000", DateOrder.MONTH_FIRST, "2024-05-28T14:23"),
        ("May 28, 2026", DateOrder.MONTH_FIRST, "2026-05-28T00:00"),
        ("2026-05-28 14:03:11 UTC", DateOrder.MONTH_FIRST, "2026-05-28T14:03"),
        ("28-5-2026 14:03:11", DateOrder.MONTH_FIRST, "2026-05-28T14:03"),
        ("2026/05/28 14:03:11", DateOrder.MONTH_FIRST, "2026-05-28T14:03"),
        ("2026/5/28 下午2:03:11", DateOrder.MONTH_FIRST, "2026-05-28T14:03"),
        ("2026. 5. 28 오전 9:03:11", DateOrder.MONTH_FIRST, "2026-05-28T09:03"),
        ("2024.05.28", DateOrder.MONTH_FIRST, "2024-05-28T00:00"),
        ("45321.5", DateOrder.MONTH_FIRST, "2024-01-30T12:00"),
        ("May 28, 2024 at 2:03 PM", DateOrder.MONTH_FIRST, "2024-05-28T14:03"),
        ("Tue May 28 2024 16:03:11 GMT+0200 (CEST)", DateOrder.MONTH_FIRST, "2024-05-28T14:03"),
        ("Mon, 28 May 2024 14:03:11 +0000", DateOrder.MONTH_FIRST, "2024-05-28T14:03"),
        ("28. Mai 2026 14:03", DateOrder.MONTH_FIRST, "2026-05-28T14:03"),
        ("1 juin 2024 à 08:15", DateOrder.MONTH_FIRST, "2024-06-01T08:15"),
        ("28 de mayo de 2026", DateOrder.MONTH_FIRST, "2026-05-28T00:00"),
        ("June 1st, 2024", DateOrder.MONTH_FIRST, "2024-06-01T00:00"),
        ("2024-05-28T14:03:11.123456789Z", DateOrder.MONTH_FIRST, "2024-05-28T14:03"),
    ],
)
def test_date_forms(value: str, order: DateOrder, expected: str) -> None:
    when = parse_joined(value, ZoneInfo("UTC"), order)
    assert when is not None
    assert when.isoformat(timespec="minutes") == expected + "+00:00"


@pytest.mark.parametrize(
    "value",
    ["yesterday", "31/31/2026", "0001-01-01 00:00:00 +0000 UTC", "12345", "Smarch 3, 2024"],
)
def test_dates_nobody_can_read(value: str) -> None:
    assert parse_joined(value, ZoneInfo("UTC"), DateOrder.MONTH_FIRST) is None


def test_the_whole_column_decides_the_slash_order() -> None:
    result = parse("email,signed up\na@example.com,5/6/2026\nb@example.com,25/6/2026\n")
    assert [s.subscribed_at for s in result.subscribers] == [
        datetime(2026, 6, 5, tzinfo=UTC),
        datetime(2026, 6, 25, tzinfo=UTC),
    ]
    assert not any(line.startswith("note:") for line in result.header)


def test_an_ambiguous_column_is_said_once_and_read_as_configured() -> None:
    text = "email,signed up\na@example.com,5/6/2026\nb@example.com,7/8/2026\n"
    result = parse(text, date_order=DateOrder.DAY_FIRST)
    assert [s.subscribed_at for s in result.subscribers] == [
        datetime(2026, 6, 5, tzinfo=UTC),
        datetime(2026, 8, 7, tzinfo=UTC),
    ]
    notes = [line for line in result.header if line.startswith("note:")]
    assert notes == [
        "note: 'signed up': dates like 5/6/2026 read either way; read as day/month "
        "(subscribers.date_order: day_first)"
    ]


@pytest.mark.parametrize(
    ("value", "zone", "noted"),
    [
        ("europe/LONDON", "Europe/London", False),
        ("America/New York", "America/New_York", False),
        ("London", "Europe/London", False),
        ("EST", "America/New_York", False),
        ("CET", "Europe/Berlin", False),
        ("AEST", "Australia/Sydney", False),
        ("(GMT-05:00) Eastern Time", "America/New_York", False),
        ("(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna", "Europe/Amsterdam", False),
        ("(GMT-08:00) Pacific Time - Los Angeles", "America/Los_Angeles", False),
        ("W. Europe Standard Time", "Europe/Berlin", False),
        ("GMT+2", "Etc/GMT-2", True),
        ("UTC-05:00", "Etc/GMT+5", True),
        ("+0530", "Asia/Kolkata", True),
        ("(GMT+04:00) Somewhere Odd", "Etc/GMT-4", True),
        ("IST", "Europe/Paris", True),
        ("Mars/Base", "Europe/Paris", True),
    ],
)
def test_zone_values(value: str, zone: str, noted: bool) -> None:
    answer = Zones("Europe/Paris").read(value)
    assert (answer.zone.key, bool(answer.note)) == (zone, noted)


def test_subscribers_command_prints_the_mapping_and_writes_a_safe_csv_report(
    project: Path,
) -> None:
    (project / "list.csv").write_text(
        "Email Address,First Name,state\n"
        "ann@example.com,Ann,active\n"
        "=1+2,Eve,active\n"
        "ben@example.com,Ben,cancelled\n"
    )
    config = project / "schedule.yaml"
    config.write_text(config.read_text().replace("examples/subscribers.csv", "list.csv"))
    result = run_course(project, "subscribers", "--report", "report.csv")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:5] == [
        "list.csv: Kit's (ConvertKit's) subscribers export (recognised by emailaddress, state)",
        "columns (header -> field):",
        "  Email Address -> email",
        "  First Name    -> first name",
        "  state         -> status (unsubscribed, cancelled, bounced, blocklisted ... are skipped)",
    ]
    assert "row 4: skipped: state 'cancelled' (ben@example.com)" in result.stdout
    with (project / "report.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["row", "outcome", "email", "reason"]
    assert rows[1][:3] == ["3", "rejected", "'=1+2"]
    assert rows[2] == ["4", "skipped", "ben@example.com", "state 'cancelled'"]


def test_a_broken_list_is_one_line_never_a_traceback(project: Path) -> None:
    (project / "examples" / "subscribers.csv").write_text("name,city\nAnn,Paris\n")
    result = run_course(project, "subscribers")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "no email column in the header" in result.stderr


def test_one_outcome_per_row_kind() -> None:
    assert [o.value for o in RowOutcome] == ["rejected", "skipped", "adjusted", "flagged"]
