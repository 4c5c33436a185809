"""Provider webhooks, pure: each provider's proof is checked, each event mapped to a verdict."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from webhook_signing import (
    MAILGUN_KEY,
    TOPIC,
    SendGridKeys,
    SnsSigner,
    basic_auth,
    mailgun_body,
    mailgun_event,
    ses_bounce,
    ses_complaint,
    ses_notification,
)

from course.bounces import webhooks
from course.bounces.notice import Verdict, lesson_day
from course.bounces.webhooks import WebhookRejected
from course.errors import ConfigError

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
STAMP = int(NOW.timestamp())


def lower(headers: dict[str, str]) -> dict[str, str]:
    """Header names as an HTTP server hands them over (Starlette's Headers are lowercase)."""
    return {k.lower(): v for k, v in headers.items()}


def rejected(call: object, *args: object, **kwargs: object) -> WebhookRejected:
    with pytest.raises(WebhookRejected) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return caught.value


# --- Mailgun ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "verdict"),
    [
        (
            mailgun_event(
                "failed",
                "ann@example.org",
                "ev1",
                severity="permanent",
                reason="bounce",
                **{"delivery-status": {"code": 550, "message": "5.1.1 No such user"}},
            ),
            Verdict.BOUNCED,
        ),
        (
            mailgun_event(
                "failed",
                "ann@example.org",
                "ev2",
                severity="temporary",
                **{"delivery-status": {"code": 452, "message": "4.2.2 Mailbox full"}},
            ),
            Verdict.NOTED,
        ),
        (
            mailgun_event(
                "failed",
                "ann@example.org",
                "ev3",
                severity="permanent",
                **{"delivery-status": {"code": 550, "message": "5.7.1 Blocked as spam"}},
            ),
            Verdict.NOTED,
        ),
        (mailgun_event("complained", "ann@example.org", "ev4"), Verdict.COMPLAINED),
        (mailgun_event("unsubscribed", "ann@example.org", "ev5"), Verdict.UNSUBSCRIBED),
        (
            mailgun_event(
                "failed",
                "ann@example.org",
                "ev6",
                severity="permanent",
                reason="suppress-complaint",
            ),
            Verdict.COMPLAINED,
        ),
    ],
)
def test_mailgun_events_map_to_verdicts(event: dict[str, object], verdict: Verdict) -> None:
    body = mailgun_body(event, timestamp=STAMP, token="t" * 50)
    request = webhooks.mailgun(body, MAILGUN_KEY, NOW)
    assert request.token == "t" * 50
    (notice,) = request.notices
    assert (notice.verdict, notice.email, notice.key) == (
        verdict,
        "ann@example.org",
        f"mailgun:{event['id']}",
    )


def test_mailgun_other_events_change_nothing() -> None:
    body = mailgun_body(mailgun_event("opened", "a@example.org", "e"), timestamp=STAMP, token="t")
    assert webhooks.mailgun(body, MAILGUN_KEY, NOW).notices == ()


def test_mailgun_unsigned_is_401_wrongly_signed_403_stale_403() -> None:
    event = mailgun_event("complained", "a@example.org", "e")
    unsigned = json.dumps({"event-data": event}).encode()
    assert rejected(webhooks.mailgun, unsigned, MAILGUN_KEY, NOW).status == 401
    forged = mailgun_body(event, timestamp=STAMP, token="t", key=b"not-the-key")
    assert rejected(webhooks.mailgun, forged, MAILGUN_KEY, NOW).status == 403
    old = mailgun_body(event, timestamp=STAMP - 2 * 86400, token="t")
    assert rejected(webhooks.mailgun, old, MAILGUN_KEY, NOW).status == 403
    assert rejected(webhooks.mailgun, b"not json", MAILGUN_KEY, NOW).status == 400


# --- SendGrid -----------------------------------------------------------------------------------

KEYS = SendGridKeys.make()
PUBLIC = webhooks.sendgrid_public_key(KEYS.public_base64, "test")


def sendgrid_events() -> list[dict[str, object]]:
    return [
        {"email": "a@example.org", "event": "bounce", "type": "bounce", "status": "5.1.1",
         "reason": "550 5.1.1 user unknown", "sg_event_id": "sg1"},
        {"email": "b@example.org", "event": "bounce", "type": "blocked", "status": "5.0.0",
         "reason": "550 blocked by policy", "sg_event_id": "sg2"},
        {"email": "c@example.org", "event": "deferred", "response": "451 try later",
         "sg_event_id": "sg3"},
        {"email": "d@example.org", "event": "spamreport", "sg_event_id": "sg4"},
        {"email": "e@example.org", "event": "unsubscribe", "sg_event_id": "sg5"},
        {"email": "f@example.org", "event": "group_unsubscribe", "sg_event_id": "sg6"},
        {"email": "g@example.org", "event": "dropped", "reason": "Bounced Address",
         "sg_event_id": "sg7"},
        {"email": "h@example.org", "event": "open", "sg_event_id": "sg8"},
        {"email": "i@example.org", "event": "delivered", "sg_event_id": "sg9"},
    ]  # fmt: skip


def test_sendgrid_signed_batch_maps_each_event() -> None:
    body = json.dumps(sendgrid_events()).encode()
    notices = webhooks.sendgrid(body, lower(KEYS.headers(body, str(STAMP))), PUBLIC)
    assert [(n.email, n.verdict, n.key) for n in notices] == [
        ("a@example.org", Verdict.BOUNCED, "sendgrid:sg1"),
        ("b@example.org", Verdict.NOTED, "sendgrid:sg2"),
        ("c@example.org", Verdict.NOTED, "sendgrid:sg3"),
        ("d@example.org", Verdict.COMPLAINED, "sendgrid:sg4"),
        ("e@example.org", Verdict.UNSUBSCRIBED, "sendgrid:sg5"),
        ("f@example.org", Verdict.UNSUBSCRIBED, "sendgrid:sg6"),
        ("g@example.org", Verdict.BOUNCED, "sendgrid:sg7"),
    ]


def test_sendgrid_unsigned_401_tampered_403_other_key_403() -> None:
    body = json.dumps(sendgrid_events()).encode()
    headers = lower(KEYS.headers(body, str(STAMP)))
    assert rejected(webhooks.sendgrid, body, {}, PUBLIC).status == 401
    tampered = body.replace(b"a@example.org", b"z@example.org")
    assert rejected(webhooks.sendgrid, tampered, headers, PUBLIC).status == 403
    other = SendGridKeys.make()
    other_headers = lower(other.headers(body, str(STAMP)))
    assert rejected(webhooks.sendgrid, body, other_headers, PUBLIC).status == 403
    moved = {**headers, "x-twilio-email-event-webhook-timestamp": str(STAMP + 1)}
    assert rejected(webhooks.sendgrid, body, moved, PUBLIC).status == 403


def test_sendgrid_key_errors_name_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"bounces\.webhooks\.sendgrid\.public_key: not an ECDSA"):
        webhooks.sendgrid_public_key("bm90IGEga2V5", "bounces.webhooks.sendgrid.public_key")


# --- Postmark -----------------------------------------------------------------------------------


def test_postmark_basic_auth_and_path_secret() -> None:
    good = lower(basic_auth("pm", "s3cret"))
    webhooks.postmark_authorised(good, "", username="pm", password="s3cret", secret="")
    wrong = lower(basic_auth("pm", "guess"))
    status = rejected(
        webhooks.postmark_authorised, wrong, "", username="pm", password="s3cret", secret=""
    ).status
    assert status == 403
    none = rejected(
        webhooks.postmark_authorised, {}, "", username="pm", password="s3cret", secret=""
    )
    assert none.status == 401
    webhooks.postmark_authorised({}, "p4th", username="", password="", secret="p4th")
    bad_path = rejected(
        webhooks.postmark_authorised, {}, "nope", username="", password="", secret="p4th"
    )
    assert bad_path.status == 403


@pytest.mark.parametrize(
    ("record", "verdict"),
    [
        ({"RecordType": "Bounce", "ID": 42, "Type": "HardBounce", "TypeCode": 1,
          "Email": "a@example.org", "Details": "smtp;550 5.1.1 unknown"}, Verdict.BOUNCED),
        ({"RecordType": "Bounce", "ID": 43, "Type": "SoftBounce", "TypeCode": 4096,
          "Email": "a@example.org", "Details": "mailbox full"}, Verdict.NOTED),
        ({"RecordType": "Bounce", "ID": 44, "Type": "AutoResponder", "TypeCode": 64,
          "Email": "a@example.org"}, None),
        ({"RecordType": "SpamComplaint", "ID": 45, "Type": "SpamComplaint", "TypeCode": 512,
          "Email": "a@example.org"}, Verdict.COMPLAINED),
        ({"RecordType": "SubscriptionChange", "Recipient": "a@example.org",
          "ChangedAt": "2026-03-02T12:00:00Z", "SuppressSending": True,
          "SuppressionReason": "ManualSuppression"}, Verdict.UNSUBSCRIBED),
        ({"RecordType": "SubscriptionChange", "Recipient": "a@example.org",
          "ChangedAt": "2026-03-02T12:00:00Z", "SuppressSending": False,
          "SuppressionReason": None}, None),
        ({"RecordType": "Delivery", "Recipient": "a@example.org"}, None),
    ],
)  # fmt: skip
def test_postmark_records_map_to_verdicts(record: dict[str, object], verdict: Verdict) -> None:
    notices = webhooks.postmark(json.dumps(record).encode())
    assert [n.verdict for n in notices] == ([verdict] if verdict else [])


# --- Amazon SES via SNS -------------------------------------------------------------------------

SNS = SnsSigner.make()
SNS_KEY = webhooks.sns_certificate(SNS.certificate_pem, "test")


@pytest.mark.parametrize("version", ["1", "2"])
def test_ses_bounce_and_complaint_notifications(version: str) -> None:
    bounce = ses_notification(
        "m1",
        ses_bounce(
            "Permanent",
            ("a@example.org", "5.1.1", "smtp; 550 5.1.1 user unknown"),
            ("b@example.org", "5.7.1", "smtp; 550 5.7.1 rejected by policy"),
        ),
    )
    message = webhooks.ses(SNS.message(bounce, version=version), SNS_KEY, TOPIC)
    assert [(n.email, n.verdict, n.key) for n in message.notices] == [
        ("a@example.org", Verdict.BOUNCED, "ses:m1:a@example.org"),
        ("b@example.org", Verdict.NOTED, "ses:m1:b@example.org"),
    ]
    transient = ses_notification("m2", ses_bounce("Transient", ("a@example.org", "4.4.7", "")))
    notices = webhooks.ses(SNS.message(transient), SNS_KEY, TOPIC).notices
    assert [n.verdict for n in notices] == [Verdict.NOTED]
    complaint = ses_notification("m3", ses_complaint("c@example.org"))
    notices = webhooks.ses(SNS.message(complaint), SNS_KEY, TOPIC).notices
    assert [(n.email, n.verdict) for n in notices] == [("c@example.org", Verdict.COMPLAINED)]


def test_ses_subscription_confirmation_is_verified_and_never_fetched() -> None:
    fields = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "m4",
        "Token": "tok",
        "TopicArn": TOPIC,
        "Message": "You have chosen to subscribe to the topic.",
        "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&T=tok",
        "Timestamp": "2026-03-02T12:00:00.000Z",
    }
    message = webhooks.ses(SNS.message(fields), SNS_KEY, TOPIC)
    assert message.type == "SubscriptionConfirmation"
    assert message.subscribe_url.startswith("https://sns.us-east-1.amazonaws.com/")
    assert message.notices == ()


def test_ses_unsigned_401_tampered_or_other_cert_or_topic_403() -> None:
    fields = ses_notification("m5", ses_complaint("c@example.org"))
    assert rejected(webhooks.ses, json.dumps(fields).encode(), SNS_KEY, TOPIC).status == 401
    body = SNS.message(fields)
    tampered = body.replace(b"c@example.org", b"z@example.org")
    assert rejected(webhooks.ses, tampered, SNS_KEY, TOPIC).status == 403
    other = SnsSigner.make()
    assert rejected(webhooks.ses, other.message(fields), SNS_KEY, TOPIC).status == 403
    assert rejected(webhooks.ses, body, SNS_KEY, TOPIC + "-other").status == 403


def test_ses_certificate_errors_name_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"ses\.certificate_file: not a PEM certificate"):
        webhooks.sns_certificate(b"nope", "bounces.webhooks.ses.certificate_file")


def test_mailgun_max_age_is_a_day() -> None:
    assert timedelta(hours=8) < webhooks.MAILGUN_MAX_AGE


def test_our_message_id_travels_with_the_event_so_the_day_is_known() -> None:
    ours = "<cats.d07.0123456789abcdef01234567@example.com>"
    event = mailgun_event(
        "failed",
        "a@example.org",
        "ev9",
        severity="permanent",
        message={"headers": {"message-id": ours.strip("<>")}},
    )
    (notice,) = webhooks.mailgun(mailgun_body(event, timestamp=STAMP, token="m"), MAILGUN_KEY,
                                 NOW).notices  # fmt: skip
    assert lesson_day([notice.message_id], "cats") == 7
    assert lesson_day([notice.message_id], "dogs") == 0
    payload = ses_bounce("Permanent", ("a@example.org", "5.1.1", "550"))
    payload["mail"]["commonHeaders"] = {"messageId": ours}
    (notice,) = webhooks.ses(SNS.message(ses_notification("m9", payload)), SNS_KEY, TOPIC).notices
    assert lesson_day([notice.message_id], "cats") == 7
