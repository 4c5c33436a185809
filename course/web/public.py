"""The public unsubscribe endpoints (RFC 8058 one-click), meant to sit behind a proxy.

GET shows a confirmation page and changes nothing: link scanners and previews fetch
every URL in a message. POST unsubscribes at once, with no cookie and no redirect, as
RFC 8058 asks. A bad token gets a 400 that says nothing about why.

"At once" means durably: the POST appends to the suppression log (fsync'd) and answers
200; the ledger takes it in from a background thread as soon as its write lock is free,
and every tick applies the log before it claims anything. Nothing here blocks the event
loop: file and database work runs in worker threads, so a ledger locked by a long tick
or a backup stalls no page.

A mailbox provider may send thousands of these at once, so the endpoints are a plain ASGI
callable (no framework layers per request), and the POSTs that arrive while one batch is
being written are recorded together: one ledger read, one write and one fsync for the
batch (course.web.group_commit), each POST answered once its own entry is on disk.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final
from urllib.parse import parse_qs

import jinja2
from starlette.applications import Starlette
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from course.errors import CourseError
from course.ledger import Ledger, Standing, SubscriberView
from course.suppress import (
    SUPPRESSED_STATUSES,
    Action,
    LedgerCatchUp,
    Suppression,
    SuppressionLog,
)
from course.tokens import subscriber_ref
from course.unsubscribe import InvalidToken, TokenOwner, verify_token
from course.web.group_commit import GroupCommit
from course.web.limits import BodyTooLarge, ClientGone, receive_body

LOG = logging.getLogger("course.web")
SECURITY_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'",
}
PREFIX: Final = "/unsubscribe/"
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


@dataclass(frozen=True, slots=True)
class OneClick:
    """One unsubscribe request to record: whom the token names, and how they asked."""

    owner: TokenOwner
    how: str


class _Unknown:
    """record_all()'s answer for an opaque id the ledger does not know (yet)."""


UNKNOWN: Final = _Unknown()
# What record_all() says of each request: a catch-up ticket (recorded), None (nothing to
# record), UNKNOWN (look harder, see record_unknown()), or the error that kept it off disk.
Recorded = int | None | _Unknown


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

    def record_all(self, clicks: Sequence[OneClick]) -> list[Recorded | CourseError]:
        """Log a batch of requests durably, in one write and one fsync (blocking: call it
        from a worker thread), and poke the catch-up; one result per request.

        A LedgerError looking the opaque ids up, or a SuppressionLogError writing, is the
        result of every request it kept off disk: their callers say "try again".
        """
        refs = {click.owner.ref for click in clicks if click.owner.ref}
        lookup_error: CourseError | None = None
        by_ref: dict[str, Standing] = {}
        try:
            by_ref = self.ledger.standings_by_ref(refs) if refs else {}
        except CourseError as exc:
            lookup_error = exc
        results: list[Recorded | CourseError] = []
        entries: dict[str, Suppression] = {}  # one per address, however often it clicked
        for click in clicks:
            owner = click.owner
            if owner.ref and lookup_error is not None:
                results.append(lookup_error)
                continue
            view: Standing | SubscriberView | None = (
                by_ref.get(owner.ref) if owner.ref else self._by_address(owner.email)
            )
            if view is None and owner.ref:
                results.append(UNKNOWN)
                continue
            if view is not None and view.status in SUPPRESSED_STATUSES:
                results.append(None)  # a second POST adds nothing
                continue
            email = view.email if view is not None else owner.email
            entries.setdefault(
                email.lower(), Suppression(email, Action.UNSUBSCRIBE, click.how, self.clock())
            )
            results.append(0)  # the ticket, once the entries are on disk
        if not entries:
            return results
        try:
            self.log.append(list(entries.values()))
        except CourseError as exc:
            return [exc if result == 0 else result for result in results]
        ticket = self.catch_up.poke()
        return [ticket if result == 0 else result for result in results]

    def record_unknown(self, click: OneClick) -> int | None:
        """record_all() for an opaque id the ledger did not know: fill in ids once a minute
        at most, and look again (blocking; it may wait for the ledger's write lock).

        LedgerError when the ledger cannot be read or written: nothing was recorded.
        """
        view = None
        # At most once a minute: a link whose subscriber is not in this ledger at all (one
        # rebuilt without them) must not make every click scan the whole roster.
        if self.full_fills.allow():
            # Rows not given an id yet (the deliverer gives one to each subscriber in a
            # batch before it builds their messages; older ledgers may lack some).
            self.ledger.fill_refs(lambda email: subscriber_ref(self.secret, self.course_id, email))
            view = self.ledger.subscriber_by_ref(click.owner.ref)
        if view is None:
            LOG.warning("unsubscribe: no subscriber has the id %s; nothing to do", click.owner.ref)
            return None
        if view.status in SUPPRESSED_STATUSES:
            return None
        self.log.append([Suppression(view.email, Action.UNSUBSCRIBE, click.how, self.clock())])
        return self.catch_up.poke()

    def _by_address(self, email: str) -> SubscriberView | None:
        try:
            return self.ledger.subscriber(email)
        except CourseError:
            return None  # a legacy token names the address: log it all the same


class OneClickRecorder:
    """Records one-click requests from the event loop, in group commits."""

    def __init__(self, unsubscriber: Unsubscriber) -> None:
        self._unsubscriber = unsubscriber
        self.commits: GroupCommit[OneClick, Recorded] = GroupCommit(
            self._record_all, settle=self._settle
        )

    def _record_all(self, clicks: list[OneClick]) -> list[Recorded | Exception]:
        return list(self._unsubscriber.record_all(clicks))

    async def _settle(self, results: Sequence[Recorded | Exception]) -> None:
        # Durable already. Give the ledger a moment, so that `course status` usually shows
        # the batch by the time the answers arrive; a locked ledger catches up later.
        tickets = [result for result in results if isinstance(result, int)]
        if tickets:
            await self._unsubscriber.catch_up.applied(max(tickets), LEDGER_WAIT_SECONDS)

    async def record(self, click: OneClick) -> None:
        """Return once the request is on disk (or there was nothing to record); CourseError
        if it could not be put there."""
        recorded = await self.commits.submit(click)
        if isinstance(recorded, _Unknown):
            ticket = await asyncio.to_thread(self._unsubscriber.record_unknown, click)
            if ticket is not None:
                await self._unsubscriber.catch_up.applied(ticket, LEDGER_WAIT_SECONDS)


_PAGES = jinja2.Environment(
    loader=jinja2.PackageLoader("course", "web/templates/public"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_SECURITY_HEADERS: Final = [
    (name.lower().encode("latin-1"), value.encode("latin-1"))
    for name, value in SECURITY_HEADERS.items()
]


@dataclass(frozen=True)
class _Page:
    """A page rendered once, with its headers: every answer is one of a handful, the same
    for everybody."""

    status: int
    headers: list[tuple[bytes, bytes]]
    html: bytes

    @classmethod
    def render(
        cls,
        status: int,
        title: str,
        *paragraphs: str,
        confirm: bool = False,
        extra: Sequence[tuple[bytes, bytes]] = (),
    ) -> _Page:
        html = _PAGES.get_template("page.html").render(
            title=title, paragraphs=paragraphs, confirm=confirm
        )
        return cls.of(status, html.encode("utf-8"), b"text/html; charset=utf-8", extra)

    @classmethod
    def of(
        cls,
        status: int,
        body: bytes,
        content_type: bytes,
        extra: Sequence[tuple[bytes, bytes]] = (),
    ) -> _Page:
        headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            *_SECURITY_HEADERS,
            *extra,
        ]
        return cls(status, headers, body)

    async def send(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.html})


_INVALID = _Page.render(400, "This link does not work", "This unsubscribe link is not valid.")
_TOO_LARGE = _Page.render(413, "Request too large", "An unsubscribe request is a few bytes.")
_TRY_AGAIN = _Page.render(
    503,
    "Please try again",
    "We could not record this just now.",
    extra=[(b"retry-after", b"60")],
)
_NOT_ALLOWED = _Page.of(
    405, b"Method Not Allowed", b"text/plain; charset=utf-8", [(b"allow", b"GET, HEAD, POST")]
)


class PublicApp:
    """The ASGI app of `course serve`: the unsubscribe endpoints, answered directly, and
    everything else (the provider webhooks, 404s) through Starlette."""

    def __init__(self, unsubscriber: Unsubscriber, extra_routes: Sequence[BaseRoute]) -> None:
        self.unsubscriber = unsubscriber
        self.recorder = OneClickRecorder(unsubscriber)
        self.routes = list(extra_routes)
        self._others = Starlette(routes=self.routes)
        self._asking = _Page.render(
            200,
            f"Unsubscribe from {unsubscriber.course_name}?",
            "You will get no more lessons from this course.",
            confirm=True,
        )
        self._done = _Page.render(
            200,
            "You are unsubscribed",
            f"You have left {unsubscriber.course_name}. You will get no more emails from it.",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        token = path[len(PREFIX) :] if path.startswith(PREFIX) else ""
        if not token or "/" in token:
            await self._others(scope, receive, send)
        elif scope["method"] == "POST":
            await (await self._unsubscribe(token, scope, receive)).send(send)
        elif scope["method"] in ("GET", "HEAD"):
            await self._confirm(token).send(send)
        else:
            await _NOT_ALLOWED.send(send)

    def _confirm(self, token: str) -> _Page:
        try:
            self.unsubscriber.owner(token)
        except InvalidToken:
            return _INVALID
        return self._asking

    async def _unsubscribe(self, token: str, scope: Scope, receive: Receive) -> _Page:
        try:
            owner = self.unsubscriber.owner(token)
        except InvalidToken:
            return _INVALID
        try:
            body = await receive_body(scope, receive, MAX_BODY_BYTES)
        except BodyTooLarge:
            return _TOO_LARGE
        except ClientGone:
            return _TRY_AGAIN  # half a request is no request: nothing recorded, or promised
        form = parse_qs(body.decode("utf-8", "replace"))
        how = PAGE if form.get("via") == ["page"] else ONE_CLICK
        try:
            await self.recorder.record(OneClick(owner, how))
        except CourseError:
            # Not on disk, so not promised: a 503 asks the mailbox provider to try again.
            return _TRY_AGAIN
        return self._done


def create_public_app(
    unsubscriber: Unsubscriber, extra_routes: Sequence[BaseRoute] = ()
) -> PublicApp:
    """GET and POST /unsubscribe/{token}, and the provider webhooks in `extra_routes`."""
    return PublicApp(unsubscriber, extra_routes)
