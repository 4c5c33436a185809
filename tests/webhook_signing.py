"""Requests signed the way each provider documents, with keys the tests make themselves."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

MAILGUN_KEY = b"key-mailgun-webhook-signing-test"
TOPIC = "arn:aws:sns:us-east-1:123456789012:course-bounces"


def mailgun_body(
    event: dict[str, Any], *, timestamp: int, token: str, key: bytes = MAILGUN_KEY
) -> bytes:
    """Mailgun: HMAC-SHA256 of timestamp + token, hex, in the body beside the event."""
    digest = hmac.new(key, f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    signature = {"timestamp": str(timestamp), "token": token, "signature": digest}
    return json.dumps({"signature": signature, "event-data": event}).encode()


def mailgun_event(event: str, recipient: str, event_id: str, **extra: Any) -> dict[str, Any]:
    return {"event": event, "recipient": recipient, "id": event_id, **extra}


@dataclass(frozen=True)
class SendGridKeys:
    private: ec.EllipticCurvePrivateKey

    @classmethod
    def make(cls) -> SendGridKeys:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_base64(self) -> str:
        """The verification key as SendGrid's dashboard shows it: base64 of the DER key."""
        der = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: str) -> dict[str, str]:
        """ECDSA (P-256, SHA-256) over timestamp + raw body, base64 DER signature."""
        signature = self.private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        }


@dataclass(frozen=True)
class SnsSigner:
    """An SNS-like signing certificate: the PEM the operator saves, and its private key."""

    certificate_pem: bytes
    private: rsa.RSAPrivateKey

    @classmethod
    def make(cls) -> SnsSigner:
        ca = trustme.CA(key_type=trustme.KeyType.RSA)
        leaf = ca.issue_cert("sns.us-east-1.amazonaws.com", key_type=trustme.KeyType.RSA)
        key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return cls(leaf.cert_chain_pems[0].bytes(), key)

    def save(self, path: Path) -> Path:
        path.write_bytes(self.certificate_pem)
        return path

    def message(self, fields: dict[str, Any], *, version: str = "2") -> bytes:
        """An SNS HTTP POST body: the fields, signed over SNS's canonical string."""
        order = {
            "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
        }.get(
            fields["Type"],
            ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
        )
        canonical = "".join(f"{k}\n{fields[k]}\n" for k in order if k in fields).encode()
        digest = hashes.SHA256() if version == "2" else hashes.SHA1()
        signature = self.private.sign(canonical, padding.PKCS1v15(), digest)
        body = {
            **fields,
            "SignatureVersion": version,
            "Signature": base64.b64encode(signature).decode(),
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
        }
        return json.dumps(body).encode()


def ses_notification(message_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": TOPIC,
        "Message": json.dumps(payload),
        "Timestamp": "2026-03-02T12:00:00.000Z",
    }


def ses_bounce(bounce_type: str, *recipients: tuple[str, str, str]) -> dict[str, Any]:
    """An SES bounce notification: (address, status, diagnostic) per recipient."""
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "bouncedRecipients": [
                {"emailAddress": a, "action": "failed", "status": s, "diagnosticCode": d}
                for a, s, d in recipients
            ],
            "timestamp": "2026-03-02T12:00:00.000Z",
            "feedbackId": "0100017a-bounce",
        },
        "mail": {"source": "bounces@example.com", "messageId": "0100017a-mail"},
    }


def ses_complaint(*addresses: str, feedback_type: str = "abuse") -> dict[str, Any]:
    return {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": a} for a in addresses],
            "complaintFeedbackType": feedback_type,
            "timestamp": "2026-03-02T12:00:00.000Z",
            "feedbackId": "0100017a-complaint",
        },
        "mail": {"source": "bounces@example.com", "messageId": "0100017a-mail"},
    }


def basic_auth(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}
