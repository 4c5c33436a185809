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
from dataclasses import dataclass, field, replace
from pathlib import Path

from course.backends.file import Clock
from course.build import CourseBuild, build_course, sample_recipient
from course.checks import Check, Judges, Level, lesson_checks, spam_check, view_message, worst
from course.checks.spam import SpamAssassin
from course.config import Settings, load_settings
from course.dkim import Keyring
from course.edits import edit_files
from course.errors import CourseError
from course.message import PreparedLesson
from course.render import template_dir
from course.runtime import read_subscribers
from course.web.preview_spam import Key, SpamScorer

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
    edits: tuple[str, ...] = ()  # what the operator's edits changed in this lesson

    @property
    def level(self) -> Level:
        return worst(self.checks)

    def with_spam(self, check: Check) -> LessonSummary:
        """The same summary with the SpamAssassin finding brought up to date."""
        checks = tuple(check if c.name == check.name else c for c in self.checks)
        return replace(self, checks=checks)


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
    spam_generation: int = -1  # the scorer's generation the lessons' verdicts are from

    def judges(self, day: int, spam: SpamScorer) -> Judges:
        """What lesson `day` is checked against: the DKIM keys, its SpamAssassin verdict."""
        keyring = Keyring.of(self.build.sender.dkim) if self.build else Keyring({})
        return Judges(keyring, spam.verdict((self.version, day)))


class PreviewState:
    """Hands every request the current snapshot; rebuilds at most once per change."""

    def __init__(
        self, settings: Settings, clock: Clock, spam_judge: SpamAssassin | None = None
    ) -> None:
        self._settings = settings
        self._clock = clock
        self.spam = SpamScorer(spam_judge)
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
            elif self._snapshot.spam_generation != self.spam.generation:
                self._snapshot = self._with_spam(self._snapshot)
            return self._snapshot

    def checks_version(self) -> str:
        """Changes when background checks (SpamAssassin) finish."""
        return str(self.spam.generation)

    def _with_spam(self, snap: Snapshot) -> Snapshot:
        generation = self.spam.generation
        lessons = tuple(
            lesson.with_spam(spam_check(self.spam.verdict((snap.version, lesson.day))))
            for lesson in snap.lessons
        )
        return replace(snap, lessons=lessons, spam_generation=generation)

    def course_version(self) -> str:
        """Changes whenever the article, a template, schedule.yaml or the CSV changes."""
        settings = self._settings
        return _digest(
            [_content(path) for path in course_files(settings)] + [_stat(settings.subscribers)]
        )

    def inbox_version(self, inbox: Path | None = None) -> str:
        """Changes whenever a message arrives in (or leaves) the inbox Maildir (or `inbox`)."""
        inbox = self._settings.delivery.inbox if inbox is None else inbox
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
            sample = sample_recipient(self._settings)
            messages: dict[Key, bytes] = {
                (version, lesson.day): lesson.build(sample, date=self._clock())[1]
                for lesson in build.lessons
            }
        except CourseError as exc:
            return Snapshot(version, self._settings, error=str(exc))
        self.spam.request(messages)
        generation = self.spam.generation
        snap = Snapshot(version, self._settings, build, "", (), self._subscribers(), generation)
        lessons = tuple(
            summary(lesson, messages[version, lesson.day], snap.judges(lesson.day, self.spam))
            for lesson in build.lessons
        )
        return replace(snap, lessons=lessons)

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
    """What the course is built from: schedule.yaml, the article, the edits (and the files
    they name) and every template file."""
    folder = template_dir(settings)
    templates = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    edits = edit_files(settings.course.edits, settings.base_dir)
    return [settings.source, settings.course.article, *edits, *templates]


def summary(lesson: PreparedLesson, data: bytes, judges: Judges) -> LessonSummary:
    """Check the sample's message exactly as the lesson page does."""
    view = view_message(data)
    rendered = lesson.rendered
    return LessonSummary(
        day=lesson.day,
        kind=rendered.lesson.kind,
        title=rendered.lesson.title,
        subject=view.header("Subject"),
        preheader=rendered.preheader,
        html_bytes=len((view.html or "").encode("utf-8")),
        checks=tuple(lesson_checks(rendered, view, judges)),
        edits=rendered.lesson.edits,
    )


def people(settings: Settings) -> People:
    """The CSV's subscribers to choose from; a CSV that cannot be read is a note, not a crash."""
    try:
        listed = read_subscribers(settings).subscribers
    except CourseError as exc:
        return People(problem=str(exc))
    choices = tuple((s.email, s.first_name) for s in listed[:MAX_CHOICES])
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
