"""Provider webhooks: check each request is the provider's, then map its events to Notices.

Pure: bytes, headers and keys in; Notices out, or WebhookRejected with the HTTP status to
answer. Each provider proves itself its own documented way:

| provider | proof | events |
|---|---|---|
| Mailgun | HMAC-SHA256 of timestamp + token with the webhook signing key, in the body | `failed` (severity permanent/temporary), `complained`, `unsubscribed` |
| SendGrid | ECDSA P-256 / SHA-256 signature of timestamp + raw body, checked with the public key from the dashboard | `bounce` (type bounce/blocked), `dropped`, `deferred`, `spamreport`, `unsubscribe`, `group_unsubscribe` |
| Postmark | HTTP basic auth, or a secret in the URL path (it signs nothing) | `Bounce`, `SpamComplaint`, `SubscriptionChange` records |
| Amazon SES | the SNS message signature (SignatureVersion 1: SHA1, 2: SHA256, RSA), checked with the configured SNS certificate, never one fetched from the message's URL | `Bounce` (Permanent/Transient), `Complaint` |
"""  # noqa: E501

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from course.bounces.classify import enhanced_code, failed_kind
from course.bounces.notice import Notice, Verdict
from course.bounces.report import FailureKind
from course.errors import ConfigError

# SendGrid batches events into one POST; Postmark may include the message content.
MAX_BODY_BYTES = 4 << 20
# A signed Mailgun request older than this is refused (Mailgun retries for 8 hours).
MAILGUN_MAX_AGE = timedelta(days=1)


class WebhookRejected(Exception):
    """The request does not come from the provider (401: no proof, 403: wrong proof) or
    cannot be read (400). Nothing is changed."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise WebhookRejected(400, "the body is not JSON") from None


def _text(value: object) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


def _failure_verdict(status: str, diagnostic: str = "") -> Verdict:
    """A permanent failure bounces; 4.x.x and 5.7.x (policy) are only noted."""
    kind = failed_kind(status or enhanced_code(diagnostic), diagnostic)
    return Verdict.BOUNCED if kind is FailureKind.PERMANENT else Verdict.NOTED


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def _event_digest(event: Mapping[str, Any]) -> str:
    """A key for an event that carries no id: the same event always gets the same one."""
    return _digest(json.dumps(event, sort_keys=True, default=str))


def _section(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


# --- Mailgun --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MailgunRequest:
    """A verified Mailgun request: its signing token (single use) and its events."""

    token: str
    notices: tuple[Notice, ...]


def mailgun(body: bytes, signing_key: bytes, now: datetime) -> MailgunRequest:
    """Verify and read one Mailgun webhook POST (JSON, one event per request).

    The signature covers only the timestamp and token, not the event: so a token may be used
    once (the caller keeps it), and an old one is refused.
    """
    data = _json(body)
    signature = data.get("signature") if isinstance(data, dict) else None
    if not isinstance(signature, dict) or not all(
        isinstance(signature.get(k), str) for k in ("timestamp", "token", "signature")
    ):
        raise WebhookRejected(401, "no Mailgun signature")
    timestamp, token = signature["timestamp"], signature["token"]
    expected = hmac.new(signing_key, (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature["signature"].lower()):
        raise WebhookRejected(403, "the Mailgun signature does not match")
    try:
        signed_at = datetime.fromtimestamp(int(timestamp), now.tzinfo)
    except (ValueError, OverflowError, OSError):
        raise WebhookRejected(403, "the Mailgun timestamp is not a time") from None
    if abs(now - signed_at) > MAILGUN_MAX_AGE:
        raise WebhookRejected(403, "the Mailgun signature is too old")
    event = data.get("event-data")
    notices = () if not isinstance(event, dict) else tuple(_mailgun_event(event))
    return MailgunRequest(token, notices)


def _mailgun_event(event: Mapping[str, Any]) -> Iterator[Notice]:
    name = _text(event.get("event")).lower()
    email = _text(event.get("recipient"))
    if not email:
        return
    key = f"mailgun:{_text(event.get('id')) or _event_digest(event)}"
    status = _section(event.get("delivery-status"))
    detail = _one_line(
        " ".join(_text(status.get(k)) for k in ("code", "message", "description") if status.get(k))
        or _text(event.get("reason"))
    )
    if name == "failed":
        reason = _text(event.get("reason")).lower()
        if reason == "suppress-complaint":
            verdict = Verdict.COMPLAINED
        elif reason == "suppress-unsubscribe":
            verdict = Verdict.UNSUBSCRIBED
        elif _text(event.get("severity")).lower() == "permanent":
            verdict = _failure_verdict(_text(status.get("enhanced-code")), detail)
        else:
            verdict = Verdict.NOTED
    elif name == "complained":
        verdict, detail = Verdict.COMPLAINED, "marked as spam (Mailgun)"
    elif name == "unsubscribed":
        verdict, detail = Verdict.UNSUBSCRIBED, "unsubscribed at Mailgun"
    else:
        return
    headers = _section(_section(event.get("message")).get("headers"))
    message_id = _text(headers.get("message-id"))
    yield Notice(verdict, email, detail, "mailgun", key, message_id=message_id)


# --- SendGrid -------------------------------------------------------------------------------

SENDGRID_SIGNATURE = "x-twilio-email-event-webhook-signature"
SENDGRID_TIMESTAMP = "x-twilio-email-event-webhook-timestamp"


def sendgrid_public_key(text: str, where: str) -> ec.EllipticCurvePublicKey:
    """The key as SendGrid shows it (base64 DER), or a PEM; ConfigError naming `where`."""
    try:
        if "BEGIN PUBLIC KEY" in text:
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode("".join(text.split())))
    except (ValueError, binascii.Error, TypeError):
        raise ConfigError(f"{where}: not an ECDSA public key (base64 DER or PEM)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConfigError(f"{where}: expected an ECDSA (elliptic curve) public key")
    return key


def sendgrid(
    body: bytes, headers: Mapping[str, str], public_key: ec.EllipticCurvePublicKey
) -> tuple[Notice, ...]:
    """Verify and read one signed SendGrid Event Webhook POST (a JSON array of events).

    `headers` looks names up in lowercase, as Starlette's Headers do.
    """
    signature, timestamp = headers.get(SENDGRID_SIGNATURE), headers.get(SENDGRID_TIMESTAMP)
    if not signature or not timestamp:
        raise WebhookRejected(401, "no SendGrid signature")
    try:
        public_key.verify(
            base64.b64decode(signature), timestamp.encode() + body, ec.ECDSA(hashes.SHA256())
        )
    except (InvalidSignature, binascii.Error, ValueError):
        raise WebhookRejected(403, "the SendGrid signature does not verify") from None
    events = _json(body)
    if not isinstance(events, list):
        raise WebhookRejected(400, "expected a JSON array of events")
    return tuple(n for e in events if isinstance(e, dict) for n in _sendgrid_event(e))


def _sendgrid_event(event: Mapping[str, Any]) -> Iterator[Notice]:
    name = _text(event.get("event")).lower()
    email = _text(event.get("email"))
    if not email:
        return
    key = (
        f"sendgrid:{_text(event.get('sg_event_id')) or _digest(json.dumps(event, sort_keys=True))}"
    )
    status, reason = _text(event.get("status")), _one_line(_text(event.get("reason")))
    detail = _one_line(f"{status} {reason}") or name
    if name == "bounce":
        # "blocked" is SendGrid's soft bounce: the server refused this time, not the address.
        if _text(event.get("type")).lower() == "blocked":
            verdict = Verdict.NOTED
        else:
            verdict = _failure_verdict(status, reason)
    elif name == "dropped":
        dropped = reason.lower()
        if "bounced address" in dropped:
            verdict = Verdict.BOUNCED
        elif "spam reporting address" in dropped:
            verdict = Verdict.COMPLAINED
        elif "unsubscribed address" in dropped:
            verdict = Verdict.UNSUBSCRIBED
        else:
            return
    elif name == "deferred":
        verdict, detail = Verdict.NOTED, _one_line(_text(event.get("response"))) or "deferred"
    elif name == "spamreport":
        verdict, detail = Verdict.COMPLAINED, "marked as spam (SendGrid)"
    elif name in ("unsubscribe", "group_unsubscribe"):
        verdict, detail = Verdict.UNSUBSCRIBED, "unsubscribed at SendGrid"
    else:
        return
    yield Notice(verdict, email, detail, "sendgrid", key)


# --- Postmark -------------------------------------------------------------------------------


def postmark_authorised(
    headers: Mapping[str, str], path_secret: str, *, username: str, password: str, secret: str
) -> None:
    """Basic auth, or the secret in the URL path; WebhookRejected otherwise."""
    if secret and path_secret:
        if not hmac.compare_digest(path_secret.encode(), secret.encode()):
            raise WebhookRejected(403, "wrong secret in the path")
        return
    if not password:
        raise WebhookRejected(403 if path_secret else 401, "no Postmark credentials")
    authorization = headers.get("authorization", "")
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise WebhookRejected(401, "no Postmark credentials")
    try:
        given = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise WebhookRejected(401, "malformed basic authorization") from None
    if not hmac.compare_digest(given, f"{username}:{password}".encode()):
        raise WebhookRejected(403, "wrong Postmark credentials")


def postmark(body: bytes) -> tuple[Notice, ...]:
    """Read one Postmark webhook POST (one record per request)."""
    record = _json(body)
    if not isinstance(record, dict):
        raise WebhookRejected(400, "expected a JSON object")
    return tuple(_postmark_record(record))


# Postmark bounce types (its Bounce API's type list) that mean the address is dead.
POSTMARK_HARD = frozenset({"hardbounce", "badEmailAddress".lower()})
POSTMARK_SOFT = frozenset(
    {"transient", "softbounce", "dnserror", "blocked", "dmarcpolicy", "challengeverification"}
)


def _postmark_record(record: Mapping[str, Any]) -> Iterator[Notice]:
    kind = _text(record.get("RecordType"))
    if kind == "SubscriptionChange":
        yield from _postmark_subscription(record)
        return
    email = _text(record.get("Email"))
    if not email:
        return
    key = (
        f"postmark:{kind}:{_text(record.get('ID')) or _digest(json.dumps(record, sort_keys=True))}"
    )
    bounce_type = _text(record.get("Type")).lower()
    detail = _one_line(_text(record.get("Details")) or _text(record.get("Description")))
    if kind == "SpamComplaint" or bounce_type in ("spamcomplaint", "spamnotification"):
        verdict, detail = Verdict.COMPLAINED, "marked as spam (Postmark)"
    elif kind != "Bounce":
        return
    elif bounce_type in POSTMARK_HARD:
        verdict = Verdict.BOUNCED
    elif bounce_type == "unsubscribe":
        verdict, detail = Verdict.UNSUBSCRIBED, "unsubscribed at Postmark"
    elif bounce_type in POSTMARK_SOFT:
        verdict = Verdict.NOTED
    else:
        return  # AutoResponder, Subscribe, AddressChange, OpenRelayTest, Unknown...
    yield Notice(verdict, email, detail or bounce_type, "postmark", key)


def _postmark_subscription(record: Mapping[str, Any]) -> Iterator[Notice]:
    email = _text(record.get("Recipient"))
    if not email or record.get("SuppressSending") is not True:
        return  # a reactivation at Postmark does not resubscribe anyone here
    reason = _text(record.get("SuppressionReason"))
    verdict = {
        "HardBounce": Verdict.BOUNCED,
        "SpamComplaint": Verdict.COMPLAINED,
        "ManualSuppression": Verdict.UNSUBSCRIBED,
    }.get(reason)
    if verdict is None:
        return
    changed = _text(record.get("ChangedAt"))
    key = f"postmark:SubscriptionChange:{_digest(email.lower(), changed, reason)}"
    yield Notice(verdict, email, f"suppressed at Postmark ({reason})", "postmark", key)


# --- Amazon SES via SNS ---------------------------------------------------------------------

SNS_SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}


def sns_certificate(pem: bytes, where: str) -> rsa.RSAPublicKey:
    """The public key of the SNS signing certificate; ConfigError naming `where`."""
    try:
        key = x509.load_pem_x509_certificate(pem).public_key()
    except ValueError:
        raise ConfigError(f"{where}: not a PEM certificate") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ConfigError(f"{where}: expected an RSA certificate, as SNS signs with RSA")
    return key


@dataclass(frozen=True)
class SnsMessage:
    """A verified SNS message: its type, and for a subscription, the URL that confirms it."""

    type: str
    topic_arn: str
    subscribe_url: str
    notices: tuple[Notice, ...]


def ses(body: bytes, public_key: rsa.RSAPublicKey, topic_arn: str) -> SnsMessage:
    """Verify and read one SNS POST carrying SES bounce and complaint notifications."""
    message = _json(body)
    if not isinstance(message, dict):
        raise WebhookRejected(400, "expected a JSON object")
    kind = _text(message.get("Type"))
    fields = SNS_SIGNED_FIELDS.get(kind)
    signature = _text(message.get("Signature"))
    if fields is None or not signature:
        raise WebhookRejected(401, "no SNS signature")
    signed = "".join(
        f"{name}\n{_text(message[name])}\n"
        for name in fields
        if name in message and not (name == "Subject" and message[name] is None)
    ).encode()
    version = _text(message.get("SignatureVersion"))
    algorithm: hashes.HashAlgorithm
    if version == "1":
        algorithm = hashes.SHA1()  # noqa: S303 (SNS SignatureVersion 1 is defined as SHA1)
    elif version == "2":
        algorithm = hashes.SHA256()
    else:
        raise WebhookRejected(403, f"unknown SNS SignatureVersion {version!r}")
    try:
        public_key.verify(base64.b64decode(signature), signed, padding.PKCS1v15(), algorithm)
    except (InvalidSignature, binascii.Error, ValueError):
        raise WebhookRejected(403, "the SNS signature does not verify") from None
    arn = _text(message.get("TopicArn"))
    if topic_arn and arn != topic_arn:
        raise WebhookRejected(403, f"unexpected SNS topic {arn}")
    notices: tuple[Notice, ...] = ()
    if kind == "Notification":
        notices = tuple(_ses_notification(_text(message.get("MessageId")), message.get("Message")))
    return SnsMessage(kind, arn, _text(message.get("SubscribeURL")), notices)


def _ses_notification(sns_id: str, text: object) -> Iterator[Notice]:
    try:
        payload = json.loads(_text(text))
    except json.JSONDecodeError:
        return
    if not isinstance(payload, dict):
        return
    # Notifications say notificationType; configuration-set event publishing says eventType.
    kind = _text(payload.get("notificationType") or payload.get("eventType"))
    ours = _text(_section(_section(payload.get("mail")).get("commonHeaders")).get("messageId"))
    if kind == "Bounce":
        bounce = _section(payload.get("bounce"))
        permanent = _text(bounce.get("bounceType")) == "Permanent"
        for recipient in _records(bounce.get("bouncedRecipients")):
            email = _text(recipient.get("emailAddress"))
            status = _text(recipient.get("status"))
            detail = _one_line(
                _text(recipient.get("diagnosticCode")) or _text(bounce.get("bounceSubType"))
            )
            verdict = _failure_verdict(status, detail) if permanent else Verdict.NOTED
            if email:
                key = f"ses:{sns_id}:{email.lower()}"
                yield Notice(verdict, email, detail, "ses", key, message_id=ours)
    elif kind == "Complaint":
        complaint = _section(payload.get("complaint"))
        if _text(complaint.get("complaintFeedbackType")).lower() == "not-spam":
            return
        for recipient in _records(complaint.get("complainedRecipients")):
            email = _text(recipient.get("emailAddress"))
            if email:
                yield Notice(
                    Verdict.COMPLAINED,
                    email,
                    "marked as spam (Amazon SES)",
                    "ses",
                    f"ses:{sns_id}:{email.lower()}",
                    message_id=ours,
                )


def _records(value: object) -> list[Mapping[str, Any]]:
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []
