"""The public unsubscribe endpoints (RFC 8058 one-click), meant to sit behind a proxy.

GET shows a confirmation page and changes nothing: link scanners and previews fetch
every URL in a message. POST unsubscribes at once, with no cookie and no redirect, as
RFC 8058 asks. A bad token gets a 400 that says nothing about why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qs

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Route

from course.ledger import Ledger
from course.unsubscribe import InvalidToken, TokenOwner, verify_token

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'",
}
ONE_CLICK = "one-click (List-Unsubscribe-Post)"
PAGE = "unsubscribe page"


@dataclass(frozen=True)
class Unsubscriber:
    """What the endpoints need: the secret, which course this is, and the ledger."""

    secret: bytes
    course_id: str
    course_name: str
    ledger: Ledger
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def owner(self, token: str) -> TokenOwner:
        owner = verify_token(self.secret, token)
        if owner.course_id != self.course_id:
            raise InvalidToken("invalid unsubscribe link")
        return owner


_PAGES = jinja2.Environment(
    loader=jinja2.PackageLoader("course", "web/templates/public"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def _page(status: int, title: str, *paragraphs: str, confirm: bool = False) -> HTMLResponse:
    html = _PAGES.get_template("page.html").render(
        title=title, paragraphs=paragraphs, confirm=confirm
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def _invalid() -> HTMLResponse:
    return _page(400, "This link does not work", "This unsubscribe link is not valid.")


def create_public_app(
    unsubscriber: Unsubscriber, extra_routes: Sequence[BaseRoute] = ()
) -> Starlette:
    """GET and POST /unsubscribe/{token}, and the provider webhooks in `extra_routes`."""

    def confirm(request: Request) -> HTMLResponse:
        try:
            unsubscriber.owner(request.path_params["token"])
        except InvalidToken:
            return _invalid()
        return _page(
            200,
            f"Unsubscribe from {unsubscriber.course_name}?",
            "You will get no more lessons from this course.",
            confirm=True,
        )

    async def unsubscribe(request: Request) -> HTMLResponse:
        try:
            owner = unsubscriber.owner(request.path_params["token"])
        except InvalidToken:
            return _invalid()
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        how = PAGE if form.get("via") == ["page"] else ONE_CLICK
        unsubscriber.ledger.unsubscribe(owner.email, how=how, now=unsubscriber.clock())
        return _page(
            200,
            "You are unsubscribed",
            f"You have left {unsubscriber.course_name}. You will get no more emails from it.",
        )

    return Starlette(
        routes=[
            Route("/unsubscribe/{token}", confirm, methods=["GET", "HEAD"]),
            Route("/unsubscribe/{token}", unsubscribe, methods=["POST"]),
            *extra_routes,
        ]
    )
