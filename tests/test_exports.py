"""The export corpus: one file per tool, each read exactly as its rows say.

Each file under tests/data/exports/ is written in the shape its tool exports (column names and
value formats as the tool writes them), with example.com rows: inactive rows, full names, odd
dates and odd time zones. The end-to-end test runs `course simulate --days 1` on each and reads
what arrived.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from support import run_course

from course.subscribers import (
    ImportOptions,
    RowOutcome,
    Standing,
    SubscriberList,
    load_subscribers,
)

EXPORTS = Path(__file__).parent / "data" / "exports"
REJECTED, SKIPPED = RowOutcome.REJECTED, RowOutcome.SKIPPED
ADJUSTED = RowOutcome.ADJUSTED
Accepted = tuple[int, str, str, str, str | None]
Note = tuple[int, RowOutcome, str]


@dataclass(frozen=True)
class Export:
    """What one export must read as: the tool, every accepted row, every report note."""

    name: str
    tool: str
    accepted: list[Accepted]
    notes: list[Note]


CORPUS = [
    Export(
        "beehiiv.csv",
        "beehiiv's subscribers export",
        [
            (2, "eli@example.com", "Eli", "Etc/GMT-2", "2024-05-28T14:03:11+00:00"),
            (6, "ida@example.com", "", "Etc/GMT+5", "2024-01-04T10:00:00+00:00"),
        ],
        [
            (
                2,
                ADJUSTED,
                "time zone 'GMT+2' read as Etc/GMT-2, a fixed offset that ignores daylight saving",
            ),
            (3, SKIPPED, "status 'inactive'"),
            (4, SKIPPED, "status 'unsubscribed'"),
            (5, SKIPPED, "unconfirmed: status 'pending' (double opt-in pending)"),
            (
                6,
                ADJUSTED,
                "time zone 'UTC-05:00' read as Etc/GMT+5, a fixed offset that ignores "
                "daylight saving",
            ),
        ],
    ),
    Export(
        "cp1252.csv",
        "",
        [
            (2, "rene@example.com", "René", "America/Montreal", "2026-05-28T04:00:00+00:00"),
            (3, "zoe@example.com", "Zoë", "Europe/Zurich", "2026-05-30T22:00:00+00:00"),
            (4, "francois@example.com", "François", "Europe/Paris", None),
        ],
        [],
    ),
    Export(
        "german-excel.csv",
        "",
        [
            (2, "anna@example.com", "Anna", "Europe/Berlin", "2026-05-27T22:00:00+00:00"),
            (3, "joerg@example.com", "Jörg", "Europe/Berlin", "2026-06-01T07:30:00+00:00"),
            (5, "lena@example.com", "Lena", "Etc/GMT-1", "2026-04-14T23:00:00+00:00"),
        ],
        [
            (4, SKIPPED, "Status 'abgemeldet'"),
            (
                5,
                ADJUSTED,
                "time zone 'GMT+1' read as Etc/GMT-1, a fixed offset that ignores daylight saving",
            ),
        ],
    ),
    Export(
        "google-forms.csv",
        "a Google Forms response sheet",
        [
            (2, "jade@example.com", "Jade", "America/New_York", "2026-05-28T18:03:11+00:00"),
            (3, "kim@example.com", "kim", "Europe/Paris", "2026-05-06T07:15:00+00:00"),
            (4, "lou@example.com", "Lou", "Europe/London", "2026-05-13T09:00:00+00:00"),
        ],
        [
            (5, REJECTED, "invalid email address: An email address must have an @-sign."),
            (6, REJECTED, "duplicate of row 2"),
        ],
    ),
    Export(
        "google-sheets.csv",
        "",
        [
            (2, "maya@example.com", "Maya", "UTC", None),
            (3, "noah@example.com", "Noah", "America/Los_Angeles", None),
            (4, "liam@example.com", "Liam", "Asia/Tokyo", None),
            (5, "nora@example.com", "", "UTC", None),
            (6, "otto@example.com", "Otto", "Asia/Kolkata", None),
        ],
        [
            (2, ADJUSTED, "time zone 'IST' could be India, Ireland or Israel, using UTC"),
            (5, ADJUSTED, "unknown time zone 'Mars/Olympus', using UTC"),
            (6, ADJUSTED, "time zone '+0530' read as Asia/Kolkata, the zone at that offset"),
        ],
    ),
    Export(
        "kit.csv",
        "Kit's (ConvertKit's) subscribers export",
        [
            (2, "ivy@example.com", "Ivy", "UTC", "2024-05-28T14:03:11+00:00"),
            (7, "nia@example.com", "", "UTC", "2024-05-28T14:23:11+00:00"),
            (8, "omar@example.com", "Omar", "UTC", "2024-05-28T14:03:11+00:00"),
        ],
        [
            (3, SKIPPED, "state 'cancelled'"),
            (4, SKIPPED, "state 'bounced'"),
            (5, SKIPPED, "state 'complained'"),
            (6, SKIPPED, "state 'inactive'"),
        ],
    ),
    Export(
        "listmonk.csv",
        "listmonk's subscribers export",
        [
            (2, "tara@example.com", "Tara", "Asia/Kolkata", "2024-03-05T10:21:33.123456+00:00"),
            (4, "vic@example.com", "María", "Europe/Madrid", "2024-03-07T10:00:00+00:00"),
            (5, "wes@example.com", "Wes", "UTC", None),
        ],
        [
            (3, SKIPPED, "status 'blocklisted'"),
            (5, ADJUSTED, "'attributes' is not a JSON object; ignored"),
            (5, ADJUSTED, "joined date '0001-01-01 00:00:00 +0000 UTC' unreadable; joins now"),
            (6, SKIPPED, "status 'disabled'"),
        ],
    ),
    Export(
        "mailchimp-cleaned.csv",
        "Mailchimp's cleaned-members export",
        [],
        [
            (2, SKIPPED, "in Mailchimp's cleaned export"),
        ],
    ),
    Export(
        "mailchimp-subscribed.csv",
        "Mailchimp's subscribed-members export",
        [
            (2, "amara@example.com", "Amara", "America/New_York", "2024-03-12T19:40:11+00:00"),
            (3, "BJORN@example.com", "BJORN", "Europe/Stockholm", "2024-04-01T06:00:00+00:00"),
            (4, "chen@example.com", "", "Asia/Shanghai", "2024-05-28T06:03:11+00:00"),
            (5, "dana@example.com", "Dana", "UTC", "2024-06-01T09:05:00+00:00"),
        ],
        [],
    ),
    Export(
        "mailchimp-unsubscribed.csv",
        "Mailchimp's unsubscribed-members export",
        [],
        [
            (2, SKIPPED, "in Mailchimp's unsubscribed export"),
            (3, SKIPPED, "in Mailchimp's unsubscribed export"),
        ],
    ),
    Export(
        "mailerlite.csv",
        "MailerLite's subscribers export",
        [
            (2, "yara@example.com", "Yara", "Europe/Berlin", "2024-05-28T12:05:00+00:00"),
            (7, "dot@example.com", "Dot", "Australia/Sydney", "2024-01-04T23:01:00+00:00"),
        ],
        [
            (3, SKIPPED, "Type 'unsubscribed'"),
            (4, SKIPPED, "Type 'bounced'"),
            (5, SKIPPED, "Type 'junk'"),
            (6, SKIPPED, "unconfirmed: Type 'unconfirmed' (double opt-in pending)"),
        ],
    ),
    Export(
        "substack.csv",
        "Substack's email list export",
        [
            (2, "pia@example.com", "Pia", "UTC", "2024-05-28T14:03:11+00:00"),
            (3, "quinn@example.com", "Ruth", "UTC", "2024-04-01T09:00:00+00:00"),
            (5, "sol@example.com", "Sol", "UTC", "2024-05-29T16:26:40+00:00"),
        ],
        [
            (4, SKIPPED, "email_disabled 'true'"),
        ],
    ),
]


# Exports whose "not subscribed" is not a status word: a yes/no consent column, an opt-out
# flag or date, a column headed `State` that holds regions, a file named for who is in it.
CORPUS += [
    Export(
        "buttondown.csv",
        "Buttondown's subscribers export",
        [
            (2, "jo@example.com", "Jo", "America/Denver", "2024-01-02T10:00:00+00:00"),
            (5, "mo@example.com", "", "UTC", "2024-01-05T10:00:00+00:00"),
            (8, "pam@example.com", "Pam", "UTC", "2024-01-08T10:00:00+00:00"),
        ],
        [
            (3, SKIPPED, "unconfirmed: subscriber_type 'unactivated' (double opt-in pending)"),
            (4, SKIPPED, "subscriber_type 'unsubscribed'"),
            (6, SKIPPED, "subscriber_type 'removed'"),
            (7, SKIPPED, "subscriber_type 'spammy'"),
        ],
    ),
    Export(
        "ghost.csv",
        "Ghost's members export",
        [
            (2, "ada@example.com", "Ada", "UTC", "2024-02-10T09:15:00+00:00"),
            (4, "cleo@example.com", "", "UTC", "2024-03-05T08:00:00+00:00"),
            (6, "ESME@example.com", "Esme", "UTC", "2024-03-07T08:00:00+00:00"),
        ],
        [
            (3, SKIPPED, "subscribed_to_emails 'false'"),
            (5, SKIPPED, "deleted_at '2024-06-01T00:00:00.000Z'"),
        ],
    ),
    Export(
        "hubspot.csv",
        "HubSpot's contacts export",
        [
            (2, "quinn@example.com", "Quinn", "America/Chicago", "2024-05-02T19:30:00+00:00"),
            (5, "tess@example.com", "Tess", "Australia/Sydney", "2024-05-04T22:00:00+00:00"),
        ],
        [
            (3, SKIPPED, "Unsubscribed from all email 'true'"),
            (4, SKIPPED, "Marketing contact status 'Non-marketing contact'"),
        ],
    ),
    Export(
        "klaviyo.csv",
        "Klaviyo's profiles export",
        [
            (2, "tom@example.com", "Tom", "America/Chicago", "2024-04-02T18:22:10+00:00"),
            (5, "wyn@example.com", "Wyn", "Australia/Perth", "2024-05-02T02:00:00+00:00"),
        ],
        [
            (3, SKIPPED, "Email Marketing Consent 'NEVER_SUBSCRIBED'"),
            (4, SKIPPED, "Email Marketing Consent 'UNSUBSCRIBED'"),
        ],
    ),
    Export(
        "mailchimp-nonsubscribed.csv",
        "Mailchimp's non-subscribed-members export",
        [],
        [
            (2, SKIPPED, "in Mailchimp's non-subscribed export (never opted in to email)"),
            (3, SKIPPED, "in Mailchimp's non-subscribed export (never opted in to email)"),
        ],
    ),
    Export(
        "mailerlite-classic.csv",
        "MailerLite's subscribers export",
        [
            (2, "zara@example.com", "Zara", "UTC", "2023-05-02T10:00:00+00:00"),
            (4, "bree@example.com", "Bree", "UTC", "2023-05-04T10:00:00+00:00"),
        ],
        [(3, SKIPPED, "date_unsubscribe '2023-08-01 10:00:00'")],
    ),
    Export(
        "sheet-state-subscribed.csv",
        "",
        [
            (2, "hugo@example.com", "Hugo", "UTC", "2024-01-01T00:00:00+00:00"),
            (4, "jon@example.com", "Jon", "UTC", "2024-01-03T00:00:00+00:00"),
        ],
        [
            (3, SKIPPED, "Subscribed 'no'"),
            (5, SKIPPED, "Subscribed is empty"),
        ],
    ),
    Export(
        "shopify-customers.csv",
        "Shopify's customers export",
        [
            (2, "eva@example.com", "Eva", "UTC", None),
            (4, "gia@example.com", "Gia", "UTC", None),
        ],
        [
            (3, SKIPPED, "Accepts Email Marketing 'no'"),
            (5, SKIPPED, "Accepts Email Marketing is empty"),
        ],
    ),
    Export(
        "unsubscribed.csv",
        "",
        [],
        [
            (2, SKIPPED, "in a file named 'unsubscribed'"),
            (3, SKIPPED, "in a file named 'unsubscribed'"),
        ],
    ),
]


# Spreadsheets and forms as they are saved: Excel's "Unicode text" (UTF-16, tabs), a French
# Excel CSV (cp1252, semicolons, day-first dates, a trailing empty column), a title above the
# header with Excel day numbers and a multi-line cell, Google Forms in German, Dutch and
# Japanese/Chinese/Korean locales, and a hand-kept sheet of every date and zone people type.
CORPUS += [
    Export(
        "excel-unicode-text.txt",
        "",
        [
            (2, "anna@example.com", "Anna", "Europe/Vienna", "2026-05-28T07:30:00+00:00"),
            (3, "bjorn@example.com", "Björn", "Europe/Berlin", "2026-05-31T22:00:00+00:00"),
            (4, "chloe@example.com", "Chloé", "Europe/Brussels", None),
        ],
        [],
    ),
    Export(
        "excel-french-cp1252.csv",
        "",
        [
            (2, "eloise@example.com", "Éloïse", "Europe/Paris", "2026-05-27T22:00:00+00:00"),
            (3, "francois@example.com", "François", "Europe/Paris", "2026-06-03T16:45:00+00:00"),
            (4, "gerald@example.com", "Gérald", "UTC", "2026-06-12T00:00:00+00:00"),
        ],
        [],
    ),
    Export(
        "excel-title-row.csv",
        "",
        [
            (4, "hanna@example.com", "Hanna", "Europe/Oslo", "2024-01-30T11:00:00+00:00"),
            (5, "ivan@example.com", "Ivan", "Europe/Sofia", "2024-01-30T22:00:00+00:00"),
            (6, "jules@example.com", "Jules", "UTC", "2024-01-31T00:00:00+00:00"),
        ],
        [],
    ),
    Export(
        "google-forms-de.csv",
        "a Google Forms response sheet",
        [
            (2, "karl@example.com", "Karl", "Europe/Berlin", "2026-05-28T12:03:11+00:00"),
            (3, "lina@example.com", "Lina", "Europe/Berlin", "2026-06-01T06:00:00+00:00"),
        ],
        [],
    ),
    Export(
        "google-forms-nl.csv",
        "a Google Forms response sheet",
        [
            (2, "tijs@example.com", "Tijs", "UTC", "2026-05-28T14:03:11+00:00"),
        ],
        [],
    ),
    Export(
        "google-forms-ja.csv",
        "a Google Forms response sheet",
        [
            (2, "oki@example.com", "Oki", "Asia/Tokyo", "2026-05-28T05:03:11+00:00"),
            (3, "hana@example.com", "花子", "Asia/Tokyo", "2026-05-31T23:00:00+00:00"),
            (4, "wei@example.com", "王伟", "Asia/Shanghai", "2026-05-28T06:03:11+00:00"),
            (5, "minsu@example.com", "민수", "Asia/Seoul", "2026-05-28T05:03:11+00:00"),
        ],
        [],
    ),
    Export(
        "sheet-odd-dates.csv",
        "",
        [
            (2, "zed@example.com", "Zed", "America/New_York", "2024-05-28T18:03:00+00:00"),
            (3, "amy@example.com", "Amy", "Asia/Kolkata", "2024-05-27T18:30:00+00:00"),
            (4, "ben@example.com", "Ben", "Asia/Kolkata", "2024-05-28T12:03:11+00:00"),
            (
                5,
                "cy@example.com",
                "Cy",
                "America/Indiana/Indianapolis",
                "2024-05-28T14:03:11+00:00",
            ),
            (6, "di@example.com", "Di", "Australia/Sydney", "2024-05-27T14:00:00+00:00"),
            (7, "ed@example.com", "Ed", "GMT", "2024-05-28T14:03:11+00:00"),
            (8, "flo@example.com", "Flo", "Asia/Calcutta", "2024-05-28T12:03:11+00:00"),
            (9, "gus@example.com", "Gus", "Europe/Kiev", "2024-05-27T21:00:00+00:00"),
            (10, "hal@example.com", "Hal", "Asia/Shanghai", None),
        ],
        [
            (4, ADJUSTED, "time zone 'UTC+5:30' read as Asia/Kolkata, the zone at that offset"),
        ],
    ),
    Export(
        "brevo.csv",
        "Brevo's (Sendinblue's) contacts export",
        [
            (2, "wim@example.com", "Wim", "UTC", "2024-02-11T08:12:00+00:00"),
            (4, "yan@example.com", "Yan", "UTC", "2024-02-13T08:12:00+00:00"),
        ],
        [
            (3, SKIPPED, "EMAIL_BLACKLISTED 'Yes'"),
        ],
    ),
]


def read(export: Export) -> SubscriberList:
    return load_subscribers(EXPORTS / export.name, ImportOptions())


@pytest.mark.parametrize("export", CORPUS, ids=[e.name for e in CORPUS])
def test_each_export_reads_exactly(export: Export) -> None:
    result = read(export)
    assert result.tool == export.tool
    joined = [s.subscribed_at.isoformat() if s.subscribed_at else None for s in result.subscribers]
    rows = [
        (s.row, s.email, s.first_name, s.timezone, when)
        for s, when in zip(result.subscribers, joined, strict=True)
    ]
    assert rows == export.accepted
    assert [(n.row, n.outcome, n.reason) for n in result.notes] == export.notes


def test_every_tool_of_the_issue_is_in_the_corpus() -> None:
    tools = {read(export).tool.split("'")[0] for export in CORPUS}
    assert {"Mailchimp", "Kit", "Substack", "listmonk", "MailerLite", "beehiiv"} <= tools
    assert {"Ghost", "Shopify", "Buttondown", "HubSpot", "Klaviyo"} <= tools
    assert "a Google Forms response sheet" in tools


def test_what_each_way_of_saying_not_subscribed_does_to_the_person() -> None:
    standings = {
        (export.name, note.row): note.standing
        for export in CORPUS
        if export.name in ("ghost.csv", "hubspot.csv", "klaviyo.csv", "unsubscribed.csv")
        for note in read(export).notes
    }
    assert standings == {
        # No consent, or deleted: never mailed, and mailed if a later export says yes.
        ("ghost.csv", 3): Standing.INACTIVE,
        ("ghost.csv", 5): Standing.INACTIVE,
        ("hubspot.csv", 4): Standing.INACTIVE,
        ("klaviyo.csv", 3): Standing.INACTIVE,
        # They said no: the suppression list.
        ("hubspot.csv", 3): Standing.UNSUBSCRIBED,
        ("klaviyo.csv", 4): Standing.UNSUBSCRIBED,
        ("unsubscribed.csv", 2): Standing.UNSUBSCRIBED,
        ("unsubscribed.csv", 3): Standing.UNSUBSCRIBED,
    }


def test_columns_whose_header_could_be_a_status_are_judged_by_their_values() -> None:
    sheet = load_subscribers(EXPORTS / "sheet-state-subscribed.csv")
    assert [line for line in sheet.header if line.startswith("note:")] == [
        "note: column 'State' holds no subscription status (values like 'CA'), so it does not "
        "decide who is mailed",
        "note: column 'Newsletter' holds no subscription status (values like 'Weekly digest'), "
        "so it does not decide who is mailed",
    ]
    assert sheet.header[5] == (
        "  Subscribed -> status (subscribed when yes/true; no, empty or unsubscribed are skipped)"
    )
    assert sheet.subscribers[0].fields["state"] == "CA"


def test_mailchimp_exports_are_told_apart_by_their_shape() -> None:
    subscribed, unsubscribed, cleaned = (
        load_subscribers(EXPORTS / f"mailchimp-{kind}.csv")
        for kind in ("subscribed", "unsubscribed", "cleaned")
    )
    assert subscribed.counts.skipped == 0
    assert unsubscribed.counts.accepted == cleaned.counts.accepted == 0
    assert "  (every row is in Mailchimp's unsubscribed export, so nobody here is mailed)" in (
        unsubscribed.header
    )


def test_full_names_stay_available_to_templates() -> None:
    substack = load_subscribers(EXPORTS / "substack.csv")
    assert [(s.first_name, s.fields["full_name"]) for s in substack.subscribers] == [
        ("Pia", "Pia Hart"),
        ("Ruth", "Quinn, Ruth"),
        ("Sol", "Dr. Sol Reyes"),
    ]


def test_listmonk_attributes_become_template_fields() -> None:
    listmonk = load_subscribers(EXPORTS / "listmonk.csv")
    tara = listmonk.subscribers[0]
    assert (tara.fields["city"], tara.fields["plan"], tara.timezone) == (
        "Bengaluru",
        "pro",
        "Asia/Kolkata",
    )
    assert listmonk.subscribers[1].fields["visits"] == "3"


def test_the_cp1252_file_says_how_it_was_read() -> None:
    result = load_subscribers(EXPORTS / "cp1252.csv")
    assert "note: the file is not UTF-8; read as cp1252" in result.header[-1]


def test_table_readings_of_zones_are_said_once() -> None:
    result = load_subscribers(EXPORTS / "google-forms.csv")
    assert result.closing[0] == (
        "note: time zones read through the table: '(GMT-05:00) Eastern Time' as "
        "America/New_York (1 row), '(GMT+01:00) Paris' as Europe/Paris (1 row), "
        "'London' as Europe/London (1 row)"
    )


def _write_config(project: Path, export: str) -> None:
    (project / "exports").mkdir(exist_ok=True)
    (project / "exports" / export).write_bytes((EXPORTS / export).read_bytes())
    config = (project / "schedule.yaml").read_text()
    lines = [line for line in config.splitlines() if not line.startswith("subscribers:")]
    lines.append(f"subscribers:\n  file: exports/{export}")
    (project / "schedule.yaml").write_text("\n".join(lines) + "\n")


def _delivered(project: Path) -> list[EmailMessage]:
    """Every message any Maildir under the project holds, wherever simulate keeps its inbox."""
    found = []
    for path in sorted(project.rglob("*")):
        if path.is_file() and path.parent.name in ("new", "cur"):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            found.append(message)
    return found


def _greeting(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    text: str = part.get_content()
    return next(line for line in text.splitlines() if line.startswith("Hi "))


@pytest.mark.parametrize("export", CORPUS, ids=[e.name for e in CORPUS])
def test_simulating_a_day_mails_exactly_the_active_rows(project: Path, export: Export) -> None:
    _write_config(project, export.name)
    result = run_course(project, "simulate", "--days", "1", "--start", "2026-07-01T12:00:00Z")
    assert result.returncode == 0, result.stderr
    received = {}
    for message in _delivered(project):
        address = message["To"].addresses[0].addr_spec
        received[address.lower()] = _greeting(message)
    expected = {mail.lower(): f"Hi {first or 'there'}," for _, mail, first, _, _ in export.accepted}
    assert received == expected
