"""Provider webhooks over real HTTP against `course serve`, signed as each provider documents."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from conftest import REPO
from support import free_port, run_course
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

from course.ledger import Ledger, SubscriberRecord

POSTMARK_PASSWORD = "postmark-webhook-password"
POSTMARK_PATH = "p4th-s3cret-0123456789"
ENV = {
    "COURSE_SECRET": "s3cret-for-tests-only-0123456789",
    "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY.decode(),
    "POSTMARK_WEBHOOK_PASSWORD": POSTMARK_PASSWORD,
    "POSTMARK_WEBHOOK_PATH": POSTMARK_PATH,
}
PEOPLE = [
    f"{name}@example.org"
    for name in ["ann", "ben", "cat", "dan", "eli", "fay", "gil", "hal", "ivo", "jan", "kim"]
]


@dataclass(frozen=True)
class Site:
    project: Path
    url: str
    sendgrid: SendGridKeys
    sns: SnsSigner

    def status(self, email: str) -> tuple[str, str]:
        with Ledger.open("sqlite:///state/course.db", base_dir=self.project) as ledger:
            view = ledger.subscriber(email)
        assert view is not None
        return view.status, view.status_reason

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.post(
            f"{self.url}{path}",
            content=body,
            headers={"Content-Type": "application/json", **(headers or {})},
            timeout=10,
        )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    project = tmp_path_factory.mktemp("webhooks")
    for name in ("templates", "examples"):
        shutil.copytree(REPO / name, project / name)
    sendgrid, sns = SendGridKeys.make(), SnsSigner.make()
    sns.save(project / "sns-signing.pem")
    config = (
        (REPO / "schedule.yaml").read_text()
        + f"""
bounces:
  webhooks:
    mailgun:
      signing_key_env: MAILGUN_WEBHOOK_SIGNING_KEY
    sendgrid:
      public_key: "{sendgrid.public_base64}"
    postmark:
      username: postmark
      password_env: POSTMARK_WEBHOOK_PASSWORD
      path_secret_env: POSTMARK_WEBHOOK_PATH
    ses:
      certificate_file: sns-signing.pem
      topic_arn: "{TOPIC}"
"""
    )
    (project / "schedule.yaml").write_text(config)
    with Ledger.open("sqlite:///state/course.db", base_dir=project) as ledger:
        records = [SubscriberRecord(e, "", "UTC", {}, None) for e in PEOPLE]
        ledger.sync(records, now=datetime.now(UTC), first_due=lambda _tz, t: t)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "course.cli", "serve", "--port", str(port)],
        cwd=project,
        env={**os.environ, **ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert "Unsubscribe endpoints on" in first, server.communicate(timeout=5)
        routes = [server.stdout.readline().strip() for _ in range(4)]
        assert [r.rsplit("/", 1)[-1] for r in routes] == ["mailgun", "sendgrid", "postmark", "ses"]
        yield Site(project, f"http://127.0.0.1:{port}", sendgrid, sns)
    finally:
        server.terminate()
        server.wait(timeout=10)


def now() -> int:
    return int(time.time())


# --- Mailgun ------------------------------------------------------------------------------------


def test_mailgun_bounce_suppresses_once_and_a_replay_changes_nothing(site: Site) -> None:
    event = mailgun_event(
        "failed",
        "ann@example.org",
        "mg-ann-1",
        severity="permanent",
        **{"delivery-status": {"code": 550, "message": "5.1.1 The email account does not exist"}},
    )
    body = mailgun_body(event, timestamp=now(), token="a" * 50)
    first = site.post("/webhooks/mailgun", body)
    assert first.status_code == 200, first.text
    assert first.json()["changed"] == 1
    state, reason = site.status("ann@example.org")
    assert state == "bounced"
    assert "5.1.1" in reason
    assert "mailgun" in reason
    replay = site.post("/webhooks/mailgun", body)
    assert replay.status_code == 200
    assert replay.json() == {"changed": 0, "recorded": 0, "duplicate": 1}


def test_mailgun_signature_reused_for_another_event_is_refused(site: Site) -> None:
    token = "b" * 50
    stamp = now()
    site.post(
        "/webhooks/mailgun",
        mailgun_body(mailgun_event("opened", "ben@example.org", "x"), timestamp=stamp, token=token),
    )
    forged = mailgun_body(mailgun_event("complained", "ben@example.org", "y"), timestamp=stamp,
                          token=token)  # fmt: skip
    assert site.post("/webhooks/mailgun", forged).status_code == 403
    assert site.status("ben@example.org")[0] == "active"


def test_mailgun_unsigned_and_wrongly_signed_change_nothing(site: Site) -> None:
    event = mailgun_event("complained", "cat@example.org", "mg-cat")
    unsigned = json.dumps({"event-data": event}).encode()
    assert site.post("/webhooks/mailgun", unsigned).status_code == 401
    wrong = mailgun_body(event, timestamp=now(), token="c" * 50, key=b"another-key")
    assert site.post("/webhooks/mailgun", wrong).status_code == 403
    assert site.status("cat@example.org")[0] == "active"


# --- SendGrid -----------------------------------------------------------------------------------


def test_sendgrid_signed_batch(site: Site) -> None:
    events = [
        {"email": "dan@example.org", "event": "bounce", "type": "bounce", "status": "5.1.1",
         "reason": "550 5.1.1 unknown user", "sg_event_id": "sg-dan"},
        {"email": "eli@example.org", "event": "spamreport", "sg_event_id": "sg-eli"},
        {"email": "fay@example.org", "event": "deferred", "response": "451 4.7.1 try later",
         "sg_event_id": "sg-fay"},
    ]  # fmt: skip
    body = json.dumps(events).encode()
    response = site.post("/webhooks/sendgrid", body, site.sendgrid.headers(body, str(now())))
    assert response.status_code == 200, response.text
    assert response.json() == {"changed": 2, "recorded": 1, "duplicate": 0}
    assert site.status("dan@example.org")[0] == "bounced"
    state, reason = site.status("eli@example.org")
    assert state == "unsubscribed"
    assert reason.startswith("complaint")
    assert site.status("fay@example.org")[0] == "active"
    status = run_course(site.project, "status", env=ENV)
    assert "fay@example.org" in status.stdout
    assert "451 4.7.1 try later" in status.stdout


def test_sendgrid_tampered_or_unsigned_is_refused(site: Site) -> None:
    body = json.dumps([{"email": "gil@example.org", "event": "spamreport", "sg_event_id": "g"}])
    signed = site.sendgrid.headers(body.encode(), str(now()))
    tampered = body.replace("spamreport", "unsubscribe").encode()
    assert site.post("/webhooks/sendgrid", tampered, signed).status_code == 403
    assert site.post("/webhooks/sendgrid", body.encode()).status_code == 401
    assert site.status("gil@example.org")[0] == "active"


# --- Postmark -----------------------------------------------------------------------------------


def test_postmark_basic_auth(site: Site) -> None:
    record = {"RecordType": "Bounce", "ID": 4242, "Type": "HardBounce", "TypeCode": 1,
              "Email": "hal@example.org", "Details": "smtp;550 5.1.1 no such user"}  # fmt: skip
    body = json.dumps(record).encode()
    missing = site.post("/webhooks/postmark", body)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Basic")
    assert site.post("/webhooks/postmark", body, basic_auth("postmark", "guess")).status_code == 403
    assert site.status("hal@example.org")[0] == "active"
    good = site.post("/webhooks/postmark", body, basic_auth("postmark", POSTMARK_PASSWORD))
    assert good.status_code == 200
    assert site.status("hal@example.org")[0] == "bounced"


def test_postmark_secret_path(site: Site) -> None:
    record = {"RecordType": "SpamComplaint", "ID": 77, "Type": "SpamComplaint",
              "TypeCode": 512, "Email": "ivo@example.org"}  # fmt: skip
    body = json.dumps(record).encode()
    assert site.post("/webhooks/postmark/not-the-secret", body).status_code == 403
    assert site.status("ivo@example.org")[0] == "active"
    assert site.post(f"/webhooks/postmark/{POSTMARK_PATH}", body).status_code == 200
    assert site.status("ivo@example.org")[0] == "unsubscribed"


# --- Amazon SES via SNS -------------------------------------------------------------------------


def test_ses_bounce_and_complaint(site: Site) -> None:
    bounce = ses_notification(
        "sns-jan", ses_bounce("Permanent", ("jan@example.org", "5.1.1", "smtp; 550 5.1.1 unknown"))
    )
    assert site.post("/webhooks/ses", site.sns.message(bounce)).status_code == 200
    assert site.status("jan@example.org")[0] == "bounced"
    complaint = ses_notification("sns-kim", ses_complaint("kim@example.org"))
    tampered = site.sns.message(complaint).replace(b"kim@", b"jan@")
    assert site.post("/webhooks/ses", tampered).status_code == 403
    unsigned = json.dumps(complaint).encode()
    assert site.post("/webhooks/ses", unsigned).status_code == 401
    assert site.status("kim@example.org")[0] == "active"
    assert site.post("/webhooks/ses", site.sns.message(complaint, version="1")).status_code == 200
    assert site.status("kim@example.org")[0] == "unsubscribed"


def test_ses_subscription_confirmation_is_answered_not_fetched(site: Site) -> None:
    fields = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "sns-sub",
        "Token": "tok",
        "TopicArn": TOPIC,
        "Message": "You have chosen to subscribe to the topic.",
        "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&T=tok",
        "Timestamp": "2026-03-02T12:00:00.000Z",
    }
    response = site.post("/webhooks/ses", site.sns.message(fields))
    assert response.status_code == 200
    assert response.json() == {"changed": 0, "recorded": 0, "duplicate": 0}


# --- limits -------------------------------------------------------------------------------------


def test_an_oversized_body_is_refused_unread(site: Site) -> None:
    response = site.post("/webhooks/sendgrid", b"[" + b" " * (5 << 20) + b"]")
    assert response.status_code == 413


def test_unconfigured_provider_has_no_route(tmp_path: Path) -> None:
    for name in ("templates", "examples"):
        shutil.copytree(REPO / name, tmp_path / name)
    shutil.copy(REPO / "schedule.yaml", tmp_path / "schedule.yaml")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "course.cli", "serve", "--port", str(port)],
        cwd=tmp_path,
        env={**os.environ, **ENV},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert "Unsubscribe endpoints on" in server.stdout.readline()
        response = httpx.post(f"http://127.0.0.1:{port}/webhooks/mailgun", content=b"{}")
        assert response.status_code in (404, 405)
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_missing_secret_is_one_error_naming_the_variable(site: Site) -> None:
    env = {k: v for k, v in ENV.items() if k != "MAILGUN_WEBHOOK_SIGNING_KEY"}
    result = subprocess.run(
        [sys.executable, "-m", "course.cli", "serve", "--port", str(free_port())],
        cwd=site.project,
        env={k: v for k, v in os.environ.items() if k != "MAILGUN_WEBHOOK_SIGNING_KEY"} | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        "bounces.webhooks.mailgun.signing_key_env: set the environment variable "
        "MAILGUN_WEBHOOK_SIGNING_KEY"
    )
    assert "Traceback" not in result.stderr
