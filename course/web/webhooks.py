"""Provider webhooks on `course serve`: POST /webhooks/{mailgun,sendgrid,postmark,ses}.

Only configured providers get a route. A request must prove it is the provider's (see
course.bounces.webhooks) before anything is read from it: unsigned gets 401, wrongly signed
403, and neither changes anything. Bodies are bounded; the ledger is written off the event
loop; an event already taken in (same provider event id) changes nothing twice. While the
ledger cannot be written the answer is 503, so the provider delivers the event again later.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from course.bounces import webhooks
from course.bounces.classify import printable
from course.bounces.notice import Notice, lesson_day
from course.bounces.webhooks import MAX_BODY_BYTES, WebhookRejected
from course.config import Settings
from course.errors import ConfigError, CourseError
from course.ledger import Ledger, NoticeResult
from course.suppress import SuppressionLog, take_notice
from course.web.limits import BodyTooLarge, ClientGone, read_body

LOG = logging.getLogger("course.webhooks")
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


@dataclass(frozen=True)
class WebhookKeys:
    """What each configured provider proves itself with, loaded once at start-up."""

    mailgun: bytes | None = None
    sendgrid: ec.EllipticCurvePublicKey | None = None
    postmark_username: str = ""
    postmark_password: str = ""
    postmark_secret: str = ""
    postmark: bool = False
    ses: rsa.RSAPublicKey | None = None
    ses_topic_arn: str = ""


def load_keys(settings: Settings, environ: Mapping[str, str] = os.environ) -> WebhookKeys:
    """The configured providers' keys; ConfigError naming the setting or variable that lacks."""
    hooks = settings.bounces.webhooks

    def secret(key: str, name: str) -> str:
        value = environ.get(name, "")
        if not value:
            raise ConfigError(
                f"{settings.source}: bounces.webhooks.{key}: set the environment variable {name}"
            )
        return value

    def read(path: Path, key: str) -> bytes:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{settings.source}: {key}: cannot read {path}: {exc}") from None

    sendgrid = None
    if hooks.sendgrid:
        where = "bounces.webhooks.sendgrid.public_key"
        text = hooks.sendgrid_public_key
        if hooks.sendgrid_public_key_file is not None:
            where += "_file"
            text = read(hooks.sendgrid_public_key_file, where).decode("ascii", "replace")
        sendgrid = webhooks.sendgrid_public_key(text, f"{settings.source}: {where}")
    ses = None
    if hooks.ses_certificate_file is not None:
        where = "bounces.webhooks.ses.certificate_file"
        pem = read(hooks.ses_certificate_file, where)
        ses = webhooks.sns_certificate(pem, f"{settings.source}: {where}")
    return WebhookKeys(
        mailgun=(
            secret("mailgun.signing_key_env", hooks.mailgun_signing_key_env).encode()
            if hooks.mailgun
            else None
        ),
        sendgrid=sendgrid,
        postmark_username=hooks.postmark_username,
        postmark_password=(
            secret("postmark.password_env", hooks.postmark_password_env)
            if hooks.postmark_password_env
            else ""
        ),
        postmark_secret=(
            secret("postmark.path_secret_env", hooks.postmark_path_secret_env)
            if hooks.postmark_path_secret_env
            else ""
        ),
        postmark=hooks.postmark,
        ses=ses,
        ses_topic_arn=hooks.ses_topic_arn,
    )


def _answer(status: int, **fields: object) -> JSONResponse:
    return JSONResponse(fields, status_code=status, headers=HEADERS)


def _rejected(exc: WebhookRejected, provider: str) -> JSONResponse:
    LOG.warning("%s webhook refused (%d): %s", provider, exc.status, exc.reason)
    response = _answer(exc.status, error=exc.reason)
    if exc.status == 401 and provider == "postmark":
        response.headers["WWW-Authenticate"] = 'Basic realm="course webhooks"'
    return response


class Webhooks:
    """The routes, bound to one ledger and clock."""

    def __init__(
        self,
        keys: WebhookKeys,
        ledger: Ledger,
        *,
        course_id: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        log: SuppressionLog | None = None,
    ) -> None:
        self.keys = keys
        self.ledger = ledger
        self.course_id = course_id
        self.clock = clock
        self.log = log  # the suppression log; every command passes the project's

    def routes(self) -> list[Route]:
        routes = []
        if self.keys.mailgun is not None:
            routes.append(Route("/webhooks/mailgun", self.mailgun, methods=["POST"]))
        if self.keys.sendgrid is not None:
            routes.append(Route("/webhooks/sendgrid", self.sendgrid, methods=["POST"]))
        if self.keys.postmark:
            routes.append(Route("/webhooks/postmark", self.postmark, methods=["POST"]))
            routes.append(Route("/webhooks/postmark/{secret}", self.postmark, methods=["POST"]))
        if self.keys.ses is not None:
            routes.append(Route("/webhooks/ses", self.ses, methods=["POST"]))
        return routes

    # --- one handler per provider ----------------------------------------------------------

    async def mailgun(self, request: Request) -> Response:
        assert self.keys.mailgun is not None
        key = self.keys.mailgun

        def verify(body: bytes) -> Sequence[Notice]:
            verified = webhooks.mailgun(body, key, self.clock())
            # Mailgun signs the timestamp and token, not the event: a token vouches for the
            # first event it came with, and for nothing else.
            first = verified.notices[0].key if verified.notices else "no event"
            held = self.ledger.bind_key(
                f"mailgun-token:{verified.token}", first, source="mailgun", now=self.clock()
            )
            if held != first:
                raise WebhookRejected(403, "this Mailgun signature was already used")
            return verified.notices

        return await self._handle(request, "mailgun", verify)

    async def sendgrid(self, request: Request) -> Response:
        assert self.keys.sendgrid is not None
        key = self.keys.sendgrid
        headers = request.headers
        return await self._handle(
            request, "sendgrid", lambda body: webhooks.sendgrid(body, headers, key)
        )

    async def postmark(self, request: Request) -> Response:
        try:
            webhooks.postmark_authorised(
                request.headers,
                request.path_params.get("secret", ""),
                username=self.keys.postmark_username,
                password=self.keys.postmark_password,
                secret=self.keys.postmark_secret,
            )
        except WebhookRejected as exc:
            return _rejected(exc, "postmark")
        return await self._handle(request, "postmark", webhooks.postmark)

    async def ses(self, request: Request) -> Response:
        assert self.keys.ses is not None
        key, topic = self.keys.ses, self.keys.ses_topic_arn

        def verify(body: bytes) -> Sequence[Notice]:
            message = webhooks.ses(body, key, topic)
            if message.type == "SubscriptionConfirmation":
                # Never fetched from here: the operator opens it (see the README).
                LOG.warning(
                    "Amazon SNS subscription to %s waits for confirmation: open %s",
                    printable(message.topic_arn),
                    printable(message.subscribe_url),
                )
            return message.notices

        return await self._handle(request, "ses", verify)

    # --- shared ----------------------------------------------------------------------------

    async def _handle(
        self, request: Request, provider: str, verify: Callable[[bytes], Sequence[Notice]]
    ) -> Response:
        try:
            body = await read_body(request, MAX_BODY_BYTES)
        except BodyTooLarge:
            return _answer(413, error=f"the body is over {MAX_BODY_BYTES} bytes")
        except ClientGone:
            return _answer(400, error="the request ended before its body did")
        try:
            results = await run_in_threadpool(self._take, body, verify)
        except WebhookRejected as exc:
            return _rejected(exc, provider)
        except CourseError as exc:
            LOG.error("%s webhook: %s; answering 503 so it is sent again", provider, exc)
            return _answer(503, error="the ledger is busy; try again")
        return _answer(200, **results)

    def _take(self, body: bytes, verify: Callable[[bytes], Sequence[Notice]]) -> dict[str, int]:
        notices = verify(body)
        counts = {result.value: 0 for result in NoticeResult}
        for notice in notices:
            result = take_notice(
                self.log,
                self.ledger,
                key=notice.key,
                verdict=notice.verdict,
                email=notice.email,
                detail=notice.detail,
                source=notice.source,
                evidence="webhook",
                now=self.clock(),
                day=lesson_day([notice.message_id], self.course_id),
            )
            counts[result.value] += 1
            LOG.info(
                "%s webhook: %s %s: %s", notice.source, notice.verdict, notice.email, result.value
            )
        return counts
