"""The course as the files on disk say it is now, rebuilt whenever a watched file changes.

The preview never restarts to pick up an edit: each request (and the page's poll of
/api/version) fingerprints the article, the templates and schedule.yaml, and a new
fingerprint means a new build. A build that fails is kept as an error to show, and the
next edit tries again.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from course.backends.file import Clock
from course.build import CourseBuild, build_course, sample_recipient
from course.config import Settings, load_settings
from course.errors import CourseError
from course.message import PreparedLesson, Recipient
from course.render import template_dir
from course.runtime import read_subscribers
from course.web.preview_checks import Check, Level, lesson_checks, worst
from course.web.preview_message import view_message

MAX_CHOICES = 1000  # subscribers offered in "render as"; a longer CSV is typed in instead


@dataclass(frozen=True)
class LessonSummary:
    """One row of the index, as the sample subscriber would get that lesson."""

    day: int
    kind: str
    title: str
    subject: str
    preheader: str
    html_bytes: int
    checks: tuple[Check, ...]

    @property
    def level(self) -> Level:
        return worst(self.checks)


@dataclass(frozen=True)
class People:
    """Whom a lesson can be rendered as: the first subscribers of the CSV, and how many."""

    choices: tuple[tuple[str, str], ...] = ()
    total: int = 0
    problem: str = ""


@dataclass(frozen=True)
class Snapshot:
    """One build of the course (or the error that stopped it), and what it was built from."""

    version: str
    settings: Settings
    build: CourseBuild | None = None
    error: str = ""
    lessons: tuple[LessonSummary, ...] = ()
    people: People = field(default_factory=People)


class PreviewState:
    """Hands every request the current snapshot; rebuilds at most once per change."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        # Settings given in code are kept until schedule.yaml itself changes on disk.
        self._config_seen = _content(settings.source)
        self._people: tuple[bytes, People] | None = None

    @property
    def settings(self) -> Settings:
        return self._settings

    def current(self) -> Snapshot:
        with self._lock:
            if self._snapshot is None or self._snapshot.version != self.course_version():
                self._snapshot = self._rebuild()
            return self._snapshot

    def course_version(self) -> str:
        """Changes whenever the article, a template, schedule.yaml or the CSV changes."""
        settings = self._settings
        return _digest(
            [_content(path) for path in course_files(settings)] + [_stat(settings.subscribers)]
        )

    def inbox_version(self) -> str:
        """Changes whenever a message arrives in (or leaves) the inbox Maildir."""
        inbox = self._settings.delivery.inbox
        return _digest([_stat(inbox / "new"), _stat(inbox / "cur")])

    def _rebuild(self) -> Snapshot:
        try:
            self._reload_settings()
        except CourseError as exc:
            return Snapshot(self.course_version(), self._settings, error=str(exc))
        # Fingerprint before building: an edit made during the build triggers another one.
        version = self.course_version()
        try:
            build = build_course(self._settings)
            lessons = summarise(build, sample_recipient(self._settings), self._clock)
        except CourseError as exc:
            return Snapshot(version, self._settings, error=str(exc))
        return Snapshot(version, self._settings, build, "", lessons, self._subscribers())

    def _reload_settings(self) -> None:
        content = _content(self._settings.source)
        if content != self._config_seen and self._settings.source.is_file():
            self._settings = load_settings(self._settings.source)
        self._config_seen = content

    def _subscribers(self) -> People:
        key = _stat(self._settings.subscribers)
        if self._people is None or self._people[0] != key:
            self._people = (key, people(self._settings))
        return self._people[1]


def course_files(settings: Settings) -> list[Path]:
    """What the course is built from: schedule.yaml, the article and every template file."""
    folder = template_dir(settings)
    templates = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    return [settings.source, settings.course.article, *templates]


def summarise(build: CourseBuild, sample: Recipient, clock: Clock) -> tuple[LessonSummary, ...]:
    return tuple(summary(lesson, sample, clock) for lesson in build.lessons)


def summary(lesson: PreparedLesson, sample: Recipient, clock: Clock) -> LessonSummary:
    """Build the sample's message and check it, exactly as the lesson page does."""
    view = view_message(lesson.build(sample, date=clock())[1])
    rendered = lesson.rendered
    return LessonSummary(
        day=lesson.day,
        kind=rendered.lesson.kind,
        title=rendered.lesson.title,
        subject=view.header("Subject"),
        preheader=rendered.preheader,
        html_bytes=len((view.html or "").encode("utf-8")),
        checks=tuple(lesson_checks(rendered, view)),
    )


def people(settings: Settings) -> People:
    """The CSV's subscribers to choose from; a CSV that cannot be read is a note, not a crash."""
    try:
        listed = read_subscribers(settings).subscribers
    except CourseError as exc:
        return People(problem=str(exc))
    choices = tuple((s.email, s.name) for s in listed[:MAX_CHOICES])
    return People(choices, len(listed))


def _content(path: Path) -> bytes:
    # Course files are small, so their content is the fingerprint: an edit within one
    # mtime tick that keeps the size (a fix undone, say) is still seen.
    try:
        return path.read_bytes()
    except OSError:
        return b"\0missing"


def _stat(path: Path) -> bytes:
    # The CSV and the Maildir can be huge: their size and times stand in for the content.
    try:
        st = path.stat()
    except OSError:
        return b"\0missing"
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}".encode()


def _digest(parts: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]
