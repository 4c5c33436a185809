"""The public unsubscribe endpoints (RFC 8058 one-click), meant to sit behind a proxy.

GET shows a confirmation page and changes nothing: link scanners and previews fetch
every URL in a message. POST unsubscribes at once, with no cookie and no redirect, as
RFC 8058 asks. A bad token gets a 400 that says nothing about why.

"At once" means durably: the POST appends to the suppression log (fsync'd) and answers
200; the ledger takes it in from a background thread as soon as its write lock is free,
and every tick applies the log before it claims anything. Nothing here blocks the event
loop: file and database work runs in the thread pool, so a ledger locked by a long tick
or a backup stalls no page.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qs

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Route

from course.errors import CourseError
from course.ledger import Ledger, SubscriberView
from course.suppress import (
    SUPPRESSED_STATUSES,
    Action,
    LedgerCatchUp,
    Suppression,
    SuppressionLog,
)
from course.tokens import subscriber_ref
from course.unsubscribe import InvalidToken, TokenOwner, verify_token
from course.web.limits import BodyTooLarge, read_body

LOG = logging.getLogger("course.web")
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'",
}
ONE_CLICK = "one-click (List-Unsubscribe-Post)"
PAGE = "unsubscribe page"
# RFC 8058's body is "List-Unsubscribe=One-Click"; our own page adds "&via=page".
MAX_BODY_BYTES = 1024
FILL_EVERY_SECONDS = 60.0


class Throttle:
    """Lets something happen at most once per `every` seconds, from any thread."""

    def __init__(self, every: float) -> None:
        self._every = every
        self._last = -every
        self._lock = threading.Lock()

    def allow(self) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._last < self._every:
                return False
            self._last = now
            return True


LEDGER_WAIT_SECONDS = 0.1


@dataclass(frozen=True)
class Unsubscriber:
    """What the endpoints need: the secret, which course this is, the log and the ledger."""

    secret: bytes
    course_id: str
    course_name: str
    ledger: Ledger
    log: SuppressionLog
    catch_up: LedgerCatchUp
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    full_fills: Throttle = field(default_factory=lambda: Throttle(FILL_EVERY_SECONDS))

    def owner(self, token: str) -> TokenOwner:
        """Whom the token speaks for (signature checks only: no I/O, fine on the event loop)."""
        return verify_token(self.secret, token, course_id=self.course_id)

    def record(self, owner: TokenOwner, how: str) -> int | None:
        """Log the request durably (blocking: call it from a worker thread) and poke the
        catch-up; its ticket, or None when there was nothing to record.

        LedgerError when an opaque id cannot be looked up (the ledger unreadable): nothing
        was recorded, and the caller says "try again".
        """
        view = self._subscriber(owner)
        if view is None and owner.ref:
            LOG.warning("unsubscribe: no subscriber has the id %s; nothing to do", owner.ref)
            return None
        if view is not None and view.status in SUPPRESSED_STATUSES:
            return None  # a second POST adds nothing
        email = view.email if view is not None else owner.email
        self.log.append([Suppression(email, Action.UNSUBSCRIBE, how, self.clock())])
        return self.catch_up.poke()

    def _subscriber(self, owner: TokenOwner) -> SubscriberView | None:
        if not owner.ref:
            try:
                return self.ledger.subscriber(owner.email)
            except CourseError:
                return None  # a legacy token names the address: log it all the same
        view = self.ledger.subscriber_by_ref(owner.ref)
        # At most once a minute: a link whose subscriber is not in this ledger at all (one
        # rebuilt without them) must not make every click scan the whole roster.
        if view is None and self.full_fills.allow():
            # Rows the runtime has not given an id yet (it does before it sends to them).
            self.ledger.fill_refs(
                lambda email: subscriber_ref(self.secret, self.course_id, email), everyone=True
            )
            view = self.ledger.subscriber_by_ref(owner.ref)
        return view


_PAGES = jinja2.Environment(
    loader=jinja2.PackageLoader("course", "web/templates/public"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


@dataclass(frozen=True)
class _Page:
    """A page rendered once: every answer is one of a handful, the same for everybody."""

    status: int
    html: bytes

    @classmethod
    def render(cls, status: int, title: str, *paragraphs: str, confirm: bool = False) -> _Page:
        html = _PAGES.get_template("page.html").render(
            title=title, paragraphs=paragraphs, confirm=confirm
        )
        return cls(status, html.encode("utf-8"))

    def response(self, **headers: str) -> HTMLResponse:
        return HTMLResponse(self.html, status_code=self.status, headers=SECURITY_HEADERS | headers)


_INVALID = _Page.render(400, "This link does not work", "This unsubscribe link is not valid.")
_TOO_LARGE = _Page.render(413, "Request too large", "An unsubscribe request is a few bytes.")
_TRY_AGAIN = _Page.render(503, "Please try again", "We could not record this just now.")


def create_public_app(
    unsubscriber: Unsubscriber, extra_routes: Sequence[BaseRoute] = ()
) -> Starlette:
    """GET and POST /unsubscribe/{token}, and the provider webhooks in `extra_routes`."""
    asking = _Page.render(
        200,
        f"Unsubscribe from {unsubscriber.course_name}?",
        "You will get no more lessons from this course.",
        confirm=True,
    )
    done = _Page.render(
        200,
        "You are unsubscribed",
        f"You have left {unsubscriber.course_name}. You will get no more emails from it.",
    )

    def confirm(request: Request) -> HTMLResponse:
        try:
            unsubscriber.owner(request.path_params["token"])
        except InvalidToken:
            return _INVALID.response()
        return asking.response()

    async def unsubscribe(request: Request) -> HTMLResponse:
        try:
            owner = unsubscriber.owner(request.path_params["token"])
        except InvalidToken:
            return _INVALID.response()
        try:
            body = await read_body(request, MAX_BODY_BYTES)
        except BodyTooLarge:
            return _TOO_LARGE.response()
        form = parse_qs(body.decode("utf-8", "replace"))
        how = PAGE if form.get("via") == ["page"] else ONE_CLICK
        try:
            ticket = await run_in_threadpool(unsubscriber.record, owner, how)
        except CourseError:
            # Not on disk, so not promised: a 503 asks the mailbox provider to try again.
            return _TRY_AGAIN.response(**{"Retry-After": "60"})
        if ticket is not None:
            # Durable already. Give the ledger a moment, so that `course status` usually
            # shows it by the time the answer arrives; a locked ledger catches up later.
            await unsubscriber.catch_up.applied(ticket, timeout=LEDGER_WAIT_SECONDS)
        return done.response()

    return Starlette(
        routes=[
            Route("/unsubscribe/{token}", confirm, methods=["GET", "HEAD"]),
            Route("/unsubscribe/{token}", unsubscribe, methods=["POST"]),
            *extra_routes,
        ]
    )
