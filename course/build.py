"""`course build`: parse the article, render every lesson, write the files an operator opens."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import jinja2

from course.article import load_article
from course.article.checks import check_lessons, structural_warnings
from course.config import Settings
from course.content import Course
from course.dkim import load_signers
from course.edits import apply_edits, load_edits
from course.errors import ConfigError, OutputError
from course.message import PreparedLesson, Recipient, Sender
from course.render import WARN_BYTES, RenderedLesson, Renderer, course_name
from course.slots import fill

SAMPLE_EMAIL = "sample.reader@example.com"
SAMPLE_NAME = "Sample Reader"


@dataclass(frozen=True)
class CourseBuild:
    """Every lesson rendered and encoded once, with what the operator should hear about."""

    course: Course
    sender: Sender
    lessons: tuple[PreparedLesson, ...]
    warnings: tuple[str, ...]

    def lesson(self, day: int) -> PreparedLesson:
        return self.lessons[day - 1]


def build_course(settings: Settings, environ: Mapping[str, str] = os.environ) -> CourseBuild:
    """Parse, edit and render the whole course; fails fast on an empty lesson, a missing
    title, or any template, size or key error.

    `environ` is where a DKIM key named by `key_env` is read from.
    """
    course = load_course(settings)
    check_lessons(course)
    sender = course_sender(settings, course, environ)
    rendered = Renderer(settings, course).render_all()
    prepared = tuple(PreparedLesson(r, sender) for r in rendered)
    warnings = [*course.notes, *structural_warnings(course), *build_warnings(rendered)]
    return CourseBuild(course, sender, prepared, tuple(_unique(warnings)))


def load_course(settings: Settings) -> Course:
    """The article as the operator's edits leave it; a course needs a name."""
    course = load_article(settings.course.article)
    course = apply_edits(
        course, load_edits(settings.course.edits, settings.source, settings.base_dir)
    )
    if not settings.course.name and not course.title:
        raise ConfigError(
            f"{settings.source}: course.name: required, since the article has no title "
            f"({course.source} starts with no heading or short first line that could be one); "
            "set course.name, or give the article a title line"
        )
    return course


def course_sender(
    settings: Settings, course: Course, environ: Mapping[str, str] = os.environ
) -> Sender:
    return Sender(
        name=settings.sender.from_name,
        address=settings.sender.from_address,
        course_id=course_id(settings, course),
        reply_to=settings.sender.reply_to,
        list_name=course_name(settings, course),
        unsubscribe_mailto=settings.unsubscribe.mailto,
        feedback_id=settings.sender.feedback_id,
        dkim=load_signers(settings.sender.dkim, environ),
    )


def course_id(settings: Settings, course: Course) -> str:
    """The configured id, else a slug of the article's file name."""
    if settings.course.id:
        return settings.course.id
    stem = Path(course.source).stem.lower()
    return re.sub(r"[^a-z0-9]+", "-", stem).strip("-")[:63] or "course"


def build_warnings(rendered: list[RenderedLesson]) -> list[str]:
    """What the operator should fix; a phrase repeated across lessons is one warning."""
    unlinked: dict[str, list[int]] = {}
    for lesson in rendered:
        for phrase in lesson.unlinked:
            days = unlinked.setdefault(phrase, [])
            if lesson.day not in days:
                days.append(lesson.day)
    warnings = [
        f"{_where(days)}: call to action has no link: {phrase!r}; map it under "
        "course.links in schedule.yaml"
        for phrase, days in unlinked.items()
    ]
    warnings += [
        f"day {lesson.day}: HTML is {lesson.html_bytes:,} bytes, close to "
        "Gmail's 102 KB clipping limit"
        for lesson in rendered
        if lesson.html_bytes >= WARN_BYTES
    ]
    return warnings


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _where(days: list[int]) -> str:
    """'day 3', or '15 lessons (days 1-12, 14-15)'."""
    if len(days) == 1:
        return f"day {days[0]}"
    runs: list[list[int]] = []
    for day in sorted(days):
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    spans = ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)
    return f"{len(days)} lessons (days {spans})"


def sample_recipient(settings: Settings) -> Recipient:
    return Recipient(
        email=SAMPLE_EMAIL,
        name=SAMPLE_NAME,
        unsubscribe_url=f"{settings.unsubscribe.base_url}/unsubscribe/sample",
        fields={},
    )


def write_build(build: CourseBuild, settings: Settings, out: Path, *, now: datetime) -> Path:
    """Write day-NN.html/.txt/.eml and index.html into `out`; returns the index path."""
    make_folder(out)
    sample = sample_recipient(settings)
    for lesson in build.lessons:
        stem = out / f"day-{lesson.day:02d}"
        values = sample.values()
        rendered = lesson.rendered
        write_atomic(
            stem.with_suffix(".html"), fill(rendered.html, rendered.slots, values).encode("utf-8")
        )
        write_atomic(
            stem.with_suffix(".txt"), fill(rendered.text, rendered.slots, values).encode("utf-8")
        )
        write_atomic(stem.with_suffix(".eml"), lesson.build(sample, date=now)[1])
    index = out / "index.html"
    write_atomic(index, render_index(build, settings).encode("utf-8"))
    return index


def make_folder(path: Path) -> None:
    """Create an output folder (and its parents); OutputError names it if that fails."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{path}: exists and is not a folder; choose another name") from None
    except OSError as exc:
        raise OutputError(f"{path}: cannot create the folder: {exc.strerror or exc}") from None


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temp file and rename, so a crash never leaves half a file."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise OutputError(_cannot_write(path, exc)) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException as exc:
        os.unlink(tmp)
        if isinstance(exc, OSError):
            raise OutputError(_cannot_write(path, exc)) from None
        raise


def _cannot_write(path: Path, exc: OSError) -> str:
    if not path.parent.is_dir():
        return f"{path}: cannot write: the folder {path.parent} does not exist"
    if path.is_dir():
        return f"{path}: is a folder; name a file to write"
    return f"{path}: cannot write: {exc.strerror or exc}"


def render_index(build: CourseBuild, settings: Settings) -> str:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("course", "defaults"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    template = env.get_template("build-index.html")
    return template.render(
        course_name=course_name(settings, build.course),
        lessons=[lesson.rendered for lesson in build.lessons],
        warnings=build.warnings,
    )
