"""Classifying what arrives at the bounce address: pure, message by message."""

from __future__ import annotations

import pytest
from bounce_corpus import load, names, plain

from course.bounces.classify import MAX_MESSAGE_BYTES, classify
from course.bounces.report import FailureKind, ReportKind

P, T, POLICY = FailureKind.PERMANENT, FailureKind.TEMPORARY, FailureKind.POLICY

# file -> (kind, [(failure kind, addresses named, status)])
EXPECTED: dict[str, tuple[ReportKind, list[tuple[FailureKind, tuple[str, ...], str]]]] = {
    "postfix-hard.eml": (ReportKind.DELIVERY, [(P, ("ana@example.com",), "5.1.1")]),
    "postfix-delayed.eml": (ReportKind.DELIVERY, [(T, ("finn@example.com",), "4.4.1")]),
    "postfix-stranger.eml": (ReportKind.DELIVERY, [(P, ("stranger@example.com",), "5.1.1")]),
    "gmail-hard.eml": (ReportKind.DELIVERY, [(P, ("ben@example.org",), "5.1.1")]),
    "gmail-delayed.eml": (ReportKind.DELIVERY, [(T, ("gus@example.net",), "4.7.0")]),
    "gmail-policy.eml": (ReportKind.DELIVERY, [(POLICY, ("nia@example.net",), "5.7.26")]),
    "exchange-hard.eml": (ReportKind.DELIVERY, [(P, ("cleo@example.net",), "5.1.10")]),
    "exim-hard.eml": (ReportKind.DELIVERY, [(P, ("dev@example.com",), "5.1.1")]),
    # flufl.bounce reads Exim's warning as a failure; its subject says it is a delay.
    "exim-delayed.eml": (ReportKind.DELIVERY, [(T, ("pia@example.org",), "4.7.1")]),
    "yahoo-hard.eml": (ReportKind.DELIVERY, [(P, ("eve@example.org",), "")]),
    "verp-rewritten-recipient.eml": (
        ReportKind.DELIVERY,
        [(P, ("u48213@store7.gw.example.org",), "5.2.1")],
    ),
    "verp-unreadable.eml": (ReportKind.DELIVERY, [(P, (), "")]),
    "verp-forged.eml": (ReportKind.DELIVERY, [(P, (), "")]),
    "yahoo-complaint.eml": (ReportKind.COMPLAINT, []),
    "microsoft-complaint-redacted.eml": (ReportKind.COMPLAINT, []),
    "exchange-out-of-office.eml": (ReportKind.AUTO_REPLY, []),
    "gmail-vacation.eml": (ReportKind.AUTO_REPLY, []),
    "rfc3834-vacation.eml": (ReportKind.AUTO_REPLY, []),
    "success-relayed.eml": (ReportKind.NO_ACTION, []),
    "human-reply.eml": (ReportKind.UNKNOWN, []),
}


def test_every_corpus_message_has_an_expectation() -> None:
    assert sorted(EXPECTED) == names()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_message_is_classified(name: str) -> None:
    report = classify(load(name, plain))
    kind, failures = EXPECTED[name]
    assert report.kind == kind, report
    assert [(f.kind, f.addresses, f.status) for f in report.failures] == failures


def test_dsn_records_the_remote_servers_words_on_one_line() -> None:
    report = classify(load("gmail-hard.eml", plain))
    (failure,) = report.failures
    assert failure.diagnostic.startswith("550-5.1.1 The email account that you tried to reach")
    assert "\n" not in failure.diagnostic
    assert failure.named_by == "Final-Recipient"


def test_the_bounce_envelope_and_returned_return_path_are_where_verp_is_looked_for() -> None:
    report = classify(load("postfix-hard.eml", plain))
    assert report.envelope == ("bounces+placeholder03@example.com",)


def test_complaint_names_its_recipient_and_keeps_the_original_unsubscribe_link() -> None:
    report = classify(load("yahoo-complaint.eml", plain))
    assert report.complained == ("jo@example.net",)
    # Where the report was sent is the feedback loop's address, not a return path.
    assert report.envelope == ("bounces+placeholder11@example.com",)
    assert report.unsubscribe_urls == (
        "https://course.example.com/unsubscribe/dW5zaWduZWQ.c2lnbmF0dXJl",
    )


def arf(feedback_type: str) -> bytes:
    return (
        "From: fbl@example.net\r\nTo: fbl@example.com\r\nSubject: report\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nA report.\r\n"
        f"--b\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: {feedback_type}\r\n"
        "Version: 1\r\nOriginal-Rcpt-To: someone@example.org\r\n"
        "--b--\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("feedback_type", "kind"),
    [
        ("abuse", ReportKind.COMPLAINT),
        ("fraud", ReportKind.COMPLAINT),
        ("not-spam", ReportKind.NO_ACTION),
        ("auth-failure", ReportKind.UNKNOWN),  # RFC 6591: for a person to read
        ("virus", ReportKind.UNKNOWN),
    ],
)
def test_only_abuse_reports_are_complaints(feedback_type: str, kind: ReportKind) -> None:
    assert classify(arf(feedback_type)).kind == kind


def dsn(recipient_block: str, status_type: str = "message/delivery-status") -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@example.com\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nIt failed.\r\n"
        f"--b\r\nContent-Type: {status_type}\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"{recipient_block}\r\n"
        "--b--\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        # Postfix after its queue lifetime: failed, but the last attempt was temporary.
        ("Final-Recipient: rfc822; a@example.org\r\nAction: failed\r\nStatus: 4.4.7", T),
        ("Final-Recipient: rfc822; a@example.org\r\nAction: failed\r\nStatus: 5.7.1", POLICY),
        ("Final-Recipient: rfc822; a@example.org\r\nAction: failed", P),
        ("Final-Recipient: rfc822; a@example.org\r\nAction: error\r\nStatus: 5.0.0", P),
        (
            "Final-Recipient: rfc822; a@example.org\r\nAction: failed\r\n"
            "Diagnostic-Code: smtp; 452 mailbox full",
            T,
        ),
        ("Final-Recipient: rfc822; a@example.org\r\nAction: delayed\r\nStatus: 4.0.0", T),
    ],
)
def test_action_and_status_decide_how_final_a_failure_is(block: str, expected: FailureKind) -> None:
    (failure,) = classify(dsn(block)).failures
    assert failure.kind == expected


def test_a_global_dsn_from_an_smtputf8_mta_is_read() -> None:
    block = "Final-Recipient: utf-8; zoë@example.org\r\nAction: failed\r\nStatus: 5.1.1"
    data = dsn(block, "message/global-delivery-status").replace(b"zo\xc3\xab", "zoë".encode())
    (failure,) = classify(data).failures
    assert failure.addresses == ("zoë@example.org",)
    assert failure.kind == P


def test_recipient_without_a_type_and_in_angle_brackets_is_read() -> None:
    block = "Final-Recipient: <a@example.org>\r\nAction: failed\r\nStatus: 5.1.1"
    assert classify(dsn(block)).failures[0].addresses == ("a@example.org",)


def test_an_x400_recipient_names_nobody() -> None:
    block = "Final-Recipient: x400; /C=US/A=X/\r\nAction: failed\r\nStatus: 5.1.1"
    (failure,) = classify(dsn(block)).failures
    assert failure.addresses == ()


def test_success_only_dsn_is_no_action() -> None:
    block = "Final-Recipient: rfc822; a@example.org\r\nAction: delivered\r\nStatus: 2.0.0"
    assert classify(dsn(block)).kind == ReportKind.NO_ACTION


def test_a_dsn_without_recipient_fields_still_says_it_failed() -> None:
    report = classify(dsn("Diagnostic: nothing useful"))
    assert report.kind == ReportKind.DELIVERY
    assert [(f.kind, f.addresses) for f in report.failures] == [(P, ())]


def test_a_read_receipt_is_no_action() -> None:
    data = (
        b"From: a@example.org\r\nSubject: Read: Day 1\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=disposition-notification; boundary="b"'
        b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nRead.\r\n--b--\r\n"
    )
    assert classify(data).kind == ReportKind.NO_ACTION


def test_an_out_of_office_from_a_mail_system_is_not_mistaken_for_a_reply() -> None:
    data = (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
        b"Auto-Submitted: auto-replied\r\nX-Failed-Recipients: a@example.org\r\n"
        b"Subject: Mail delivery failed: returning message to sender\r\n\r\n"
        b"This message was created automatically by mail delivery software.\r\n\r\n"
        b"  a@example.org\r\n    550 5.1.1 no such user\r\n"
    )
    report = classify(data)
    assert report.kind == ReportKind.DELIVERY
    assert report.failures[0].named_by == "X-Failed-Recipients"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\xff\xfe garbage",
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n" + b"--x\r\n" * 10_000,
        b"Subject: =?x-nonsense?q?abc?=\r\nContent-Type: text/plain; charset=x-none\r\n\r\nhi",
        (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n") * 2000,
        b"Content-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64\r\n\r\n!!",
        b"From: MAILER-DAEMON@x\r\n\r\n" + b"A" * (MAX_MESSAGE_BYTES * 2),
    ],
)
def test_hostile_input_is_classified_without_raising(data: bytes) -> None:
    classify(data)
