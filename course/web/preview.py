"""`course preview`: every lesson as subscribers will get it, and what the inbox received.

A small Starlette app for the operator, served by uvicorn on 127.0.0.1 only. The course is
built once per change of its files (see `preview_state`); a request only personalises
one message and parses it back, so what the page shows is what would go on the wire.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from course.backends.file import Clock, utc_now
from course.build import CourseBuild
from course.checks import Check, Judges, lesson_checks, message_checks, view_message, worst
from course.checks.spam import SpamAssassin
from course.config import Settings
from course.dkim import Keyring
from course.errors import CourseError
from course.message import Recipient
from course.render import course_name
from course.sandbox import sandbox_inbox
from course.testsend import recipient_as, send_test
from course.web.preview_guard import LOOPBACK_HOSTS, FormGuard, SecurityHeaders
from course.web.preview_inbox import InboxFilter, find_message, inbox_page
from course.web.preview_pages import (
    MAX_NUMBER,
    Notice,
    Pages,
    View,
    positive_int,
    url,
    whole_number,
)
from course.web.preview_spam import PENDING
from course.web.preview_state import PreviewState, Snapshot
from course.web.server import ServerError as PreviewError
from course.web.server import WebServer as PreviewServer
from course.web.server import serve_in_background

__all__ = ["PreviewError", "PreviewServer", "create_app", "start_preview"]

STATIC = Path(__file__).parent / "static"
FORM_LIMIT = 16_384  # bytes; the send-test form is three short fields


def create_app(
    settings: Settings, *, clock: Clock = utc_now, spamassassin: bool = True
) -> Starlette:
    """The preview as an ASGI app; it answers only to Host 127.0.0.1 or localhost.

    With `spamassassin`, the installed SpamAssassin (if any) scores every email shown.
    """
    preview = PreviewApp(settings, clock, SpamAssassin.find() if spamassassin else None)
    return Starlette(
        routes=preview.routes(),
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=list(LOOPBACK_HOSTS)),
            Middleware(SecurityHeaders),
        ],
        exception_handlers={404: preview.not_found, PageProblem: preview.page_problem},
    )


def start_preview(settings: Settings, port: int, *, spamassassin: bool = True) -> PreviewServer:
    """Serve the preview on 127.0.0.1:port in a background thread; returns once it is up."""
    app = create_app(settings, spamassassin=spamassassin)
    return serve_in_background(app, "127.0.0.1", port, what="preview")


class PageProblem(Exception):
    """Ends a request with an error page instead of the page asked for."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


@dataclass(frozen=True)
class Personalised:
    """One lesson built for one recipient, and the snapshot it came from."""

    snap: Snapshot
    build: CourseBuild
    recipient: Recipient
    data: bytes


@dataclass(frozen=True)
class Mailbox:
    """A Maildir the preview lists: the real inbox, or the `course simulate` sandbox's."""

    path: str  # where its pages are, "/inbox" or "/simulate"
    name: str
    directory: Path
    sandbox: bool


class PreviewApp:
    """The endpoints; they share the course state, the clock and the form token."""

    def __init__(
        self, settings: Settings, clock: Clock, spam_judge: SpamAssassin | None = None
    ) -> None:
        self.state = PreviewState(settings, clock, spam_judge)
        self.clock = clock
        self.guard = FormGuard()
        self.pages = Pages()

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.index),
            # {day}, not {day:int}: Starlette's int() of a 5,000-digit path was a 500.
            Route("/lessons/{day}", self.lesson),
            Route("/lessons/{day}/message.eml", self.lesson_eml),
            Route("/lessons/{day}/send", self.send, methods=["POST"]),
            Route("/inbox", self.inbox),
            Route("/inbox/{key}", self.inbox_message),
            Route("/inbox/{key}/message.eml", self.inbox_eml),
            # The `course simulate` sandbox's inbox, apart from the real one.
            Route("/simulate", self.inbox),
            Route("/simulate/{key}", self.inbox_message),
            Route("/simulate/{key}/message.eml", self.inbox_eml),
            Route("/api/version", self.version),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]

    # Course pages

    def index(self, request: Request) -> Response:
        snap = self.state.current()
        self._built(snap)
        checks = [c for lesson in snap.lessons for c in lesson.checks]
        context = {**self._common(snap), **self._pending(checks), "snap": snap}
        return self.pages.render("index.html", context)

    def lesson(self, request: Request) -> Response:
        query = request.query_params
        view = View.from_query(query)
        return self._lesson_page(self._day(request), view, sent=query.get("sent", ""))

    def _lesson_page(
        self,
        day: int,
        view: View,
        *,
        sent: str = "",
        notice: Notice | None = None,
        status: int = 200,
    ) -> Response:
        lesson = self._personalised(day, view.as_email)
        message = view_message(lesson.data)
        judges = lesson.snap.judges(day, self.state.spam)
        checks = lesson_checks(lesson.build.lesson(day).rendered, message, judges)
        context = {
            **self._common(lesson.snap),
            **self._pending(checks),
            "day": day,
            "days": len(lesson.build.lessons),
            "lesson": lesson.snap.lessons[day - 1],
            "message": message,
            "checks": checks,
            "level": worst(checks),
            "view": view,
            "recipient": lesson.recipient.email,
            "people": lesson.snap.people,
            "sent": sent,
            "notice": notice,
            "token": self.guard.token,
        }
        return self.pages.render("lesson.html", context, status)

    def lesson_eml(self, request: Request) -> Response:
        day = self._day(request)
        lesson = self._personalised(day, request.query_params.get("as", ""))
        return eml_response(lesson.data, f"day-{day:02d}.eml")

    def _personalised(self, day: int, as_email: str) -> Personalised:
        """Lesson `day` exactly as `as_email` (or the sample subscriber) would receive it."""
        snap = self.state.current()
        build = self._built(snap)
        if not 1 <= day <= len(build.lessons):
            raise PageProblem(self._no_such_day(snap, day))
        try:
            recipient = recipient_as(snap.settings, build, as_email or None)
            data = build.lesson(day).build(recipient, date=self.clock())[1]
        except CourseError as exc:
            problem = self._problem("Cannot render this lesson", str(exc), 404, snap)
            raise PageProblem(problem) from None
        return Personalised(snap, build, recipient, data)

    def _built(self, snap: Snapshot) -> CourseBuild:
        """The snapshot's build; a course that does not build stops here with its error."""
        if snap.build is None:
            raise PageProblem(self._problem("The course does not build", snap.error, 500, snap))
        return snap.build

    # Send test

    async def send(self, request: Request) -> Response:
        form = await read_form(request)
        refusal = self.guard.refusal(request, form.get("token", ""))
        if refusal:
            return self._problem("Not sent", refusal, 403)
        day, view, to = self._day(request), View.from_query(form), form.get("to", "")
        try:
            await run_in_threadpool(self._send_test, day, to.strip(), view.as_email)
        except CourseError as exc:
            notice = Notice("error", f"Not sent: {exc}")
            page = partial(self._lesson_page, day, view, notice=notice, status=400)
            return await run_in_threadpool(page)
        # Post/redirect/get: reloading the page afterwards must not send it again.
        return RedirectResponse(url(f"/lessons/{day}", view.params(), sent=to), status_code=303)

    def _send_test(self, day: int, to: str, as_email: str) -> None:
        snap = self.state.current()
        build = self._built(snap)
        recipient = recipient_as(snap.settings, build, as_email or None)
        send_test(snap.settings, build, day=day, to=to, as_recipient=recipient, now=self.clock())

    # Inbox pages

    def inbox(self, request: Request) -> Response:
        box = self._box(request)
        query = request.query_params
        wanted = InboxFilter(query.get("recipient", "").strip(), self._number(query, "day"))
        page = self._number(query, "page") or 1
        listing = inbox_page(box.directory, wanted, page)
        context = {**self._inbox_common(box), "listing": listing, "wanted": wanted}
        return self.pages.render("inbox.html", context)

    def inbox_message(self, request: Request) -> Response:
        box = self._box(request)
        data = self._inbox_bytes(box, request.path_params["key"])
        if data is None:
            return self._problem("No such message", f"It is not in the {box.name} (any more).", 404)
        message = view_message(data)
        key = request.path_params["key"]
        build = self.state.current().build
        keyring = Keyring.of(build.sender.dkim) if build else Keyring({})
        self.state.spam.request({("inbox", key): data})
        checks = message_checks(message, Judges(keyring, self.state.spam.verdict(("inbox", key))))
        context = {
            **self._inbox_common(box),
            **self._pending(checks),
            "key": request.path_params["key"],
            "message": message,
            "checks": checks,
            "level": worst(checks),
            "view": View.from_query(request.query_params),
        }
        return self.pages.render("message.html", context)

    def inbox_eml(self, request: Request) -> Response:
        box = self._box(request)
        data = self._inbox_bytes(box, request.path_params["key"])
        if data is None:
            return self._problem("No such message", f"It is not in the {box.name} (any more).", 404)
        return eml_response(data, "message.eml")

    def _box(self, request: Request) -> Mailbox:
        """The real inbox, or the simulate sandbox's, as the path says."""
        settings = self.state.settings
        if request.url.path.startswith("/simulate"):
            return Mailbox("/simulate", "simulation inbox", sandbox_inbox(settings), True)
        return Mailbox("/inbox", "inbox", settings.delivery.inbox, False)

    def _inbox_bytes(self, box: Mailbox, key: str) -> bytes | None:
        path = find_message(box.directory, key)
        try:
            return path.read_bytes() if path else None
        except FileNotFoundError:  # moved or deleted since we looked
            return None

    # Query and path numbers

    def _day(self, request: Request) -> int:
        """The day in the path; a day outside the course is a 404 later, junk a 400 here."""
        try:
            return whole_number(request.path_params["day"])
        except ValueError:
            raise PageProblem(self._bad_number("day")) from None

    def _number(self, values: Mapping[str, str], name: str) -> int | None:
        """A day or page number from the path or query; absent or empty is None; junk is 400."""
        try:
            return positive_int(values.get(name))
        except ValueError:
            raise PageProblem(self._bad_number(name)) from None

    def _bad_number(self, name: str) -> Response:
        return self._problem(
            "Bad request", f"{name}: expected a whole number from 1 to {MAX_NUMBER:,}", 400
        )

    # Live reload, errors, shared context

    def version(self, request: Request) -> Response:
        """What the open pages poll: a new value for what they watch means reload."""
        return JSONResponse(
            {
                "course": self.state.course_version(),
                "inbox": self.state.inbox_version(),
                "simulate": self.state.inbox_version(sandbox_inbox(self.state.settings)),
                "checks": self.state.checks_version(),
            }
        )

    async def not_found(self, request: Request, exc: Exception) -> Response:
        detail = exc.detail if isinstance(exc, HTTPException) else "Not found"
        return self._problem("Not found", str(detail), 404)

    async def page_problem(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageProblem)
        return exc.response

    def _common(self, snap: Snapshot) -> dict[str, object]:
        title = course_name(snap.settings, snap.build.course) if snap.build else "Course"
        return {
            "has_sandbox": (sandbox_inbox(snap.settings) / "new").is_dir(),
            "course_title": title,
            "section": "lessons",
            "watch": "course",
            "version": snap.version,
            "settings": snap.settings,
        }

    def _pending(self, checks: list[Check]) -> dict[str, object]:
        """A page with checks still running reloads when they finish."""
        if any(c.detail == PENDING for c in checks):
            return {"checks_version": self.state.checks_version()}
        return {}

    def _inbox_common(self, box: Mailbox) -> dict[str, object]:
        snap = self.state.current()
        watch = "simulate" if box.sandbox else "inbox"
        return {
            **self._common(snap),
            "section": watch,
            "watch": watch,
            "version": self.state.inbox_version(box.directory),
            "inbox_dir": box.directory,
            "box": box,
        }

    def _no_such_day(self, snap: Snapshot, day: int) -> Response:
        days = len(snap.lessons)
        return self._problem(
            "No such day", f"Day {day}: the course has days 1 to {days}.", 404, snap
        )

    def _problem(
        self, title: str, message: str, status: int, snap: Snapshot | None = None
    ) -> Response:
        """An error page; with a snapshot it reloads itself when the course files change."""
        context = (
            self._common(snap)
            if snap
            else {"course_title": "Course", "version": "", "has_sandbox": False}
        )
        context.update(section="", watch="course" if snap else "", title=title, message=message)
        return self.pages.render("problem.html", context, status)


async def read_form(request: Request) -> dict[str, str]:
    """A url-encoded body as a dict; anything oversized or malformed reads as empty."""
    body = await request.body()
    if len(body) > FORM_LIMIT:
        return {}
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return {}
    return dict(pairs)


def eml_response(data: bytes, filename: str) -> Response:
    return Response(
        data,
        media_type="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
