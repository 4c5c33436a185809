"""Who may change anything through the preview: forms from its own pages, and nobody else.

The preview listens on 127.0.0.1, but any web page the operator visits could still post
to it (cross-site request forgery), or reach it under its own domain name re-pointed at
127.0.0.1 (DNS rebinding). So: the Host header must name the loopback (TrustedHost
middleware, for every request), and a POST must carry this process's random token, which
only a page served by this process can read, and must not come from a foreign origin.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
SECURITY_HEADERS = {
    # The email HTML lives in a srcdoc iframe, which inherits this policy: no script runs
    # there even if the sandbox attribute were lost, and the page's own script is a file.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; "
        "img-src * data:; connect-src 'self'; form-action 'self'; "
        "frame-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class FormGuard:
    """Issues the per-process form token and refuses posts that lack it or come from afar."""

    def __init__(self) -> None:
        self.token = secrets.token_urlsafe(32)

    def refusal(self, request: Request, token: str) -> str:
        """Why this POST is refused, or '' when it may go ahead."""
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            return "the form's token is missing or out of date: reload the page and try again"
        site = request.headers.get("sec-fetch-site", "same-origin")
        if site not in ("same-origin", "none"):
            return f"refused a {site} request: post from the preview's own page"
        origin = sender_origin(request)
        expected = f"http://{request.headers.get('host', '')}"
        if origin and origin != expected:
            return f"refused a request from {origin}: post from the preview's own page"
        return ""


def sender_origin(request: Request) -> str:
    """The Origin header, else the origin of the Referer, else '' (not a browser)."""
    origin = request.headers.get("origin", "")
    if origin:
        return origin
    referer = urlsplit(request.headers.get("referer", ""))
    return f"{referer.scheme}://{referer.netloc}" if referer.netloc else ""


class SecurityHeaders:
    """ASGI middleware adding SECURITY_HEADERS to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(SECURITY_HEADERS)
            await send(message)

        await self.app(scope, receive, send_with_headers)
