"""Lessons -> emails: Jinja2 (autoescaped, strict) -> MJML -> HTML, plus the text part.

Each lesson renders once. Per-subscriber values are placeholders (see `course.slots`)
filled in by `course.message`, so MJML never compiles per subscriber.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

import jinja2
import mjml

from course import links as linking
from course.config import Settings
from course.content import (
    Block,
    CodeBlock,
    Course,
    Heading,
    Image,
    Inline,
    Kind,
    Lesson,
    ListBlock,
    Quote,
    Run,
)
from course.errors import RenderError, TemplateError
from course.mjml_check import check_mjml, locate_mjml_error
from course.slots import Slot, SlotTable, SubscriberProxy, fallback_filter

CLIP_LIMIT_BYTES = 102_000  # Gmail clips an HTML part larger than ~102 KB
WARN_BYTES = 90_000
TEXT_WIDTH = 72
LAYOUT_TEMPLATE = "lesson.mjml"
TEXT_TEMPLATE = "lesson.txt"


BlockKind = Literal["paragraph", "quote", "heading", "bullets", "button", "image", "code"]


@dataclass(frozen=True, slots=True)
class BlockView:
    """An article block as templates see it.

    `parts` are runs of inline text (`part.strong`, `.emphasis`, `.code`, `.url`;
    `part.is_break` is a line break); `items` are a list's entries (`ordered` from
    `start`); an image has `url` (its address), `text` (alt) and `href` (its link); a
    button has `url` and `text`; code has `text`.
    """

    kind: BlockKind
    parts: tuple[Run, ...] = ()
    items: tuple[BlockView, ...] = ()
    url: str = ""
    text: str = ""
    href: str = ""
    ordered: bool = False
    start: int = 1


@dataclass(frozen=True)
class RenderedLesson:
    """One finished lesson email, with placeholders where subscriber values go."""

    lesson: Lesson
    days: int
    subject: str
    preheader: str
    html: str
    text: str
    slots: tuple[Slot, ...]
    unlinked: tuple[str, ...]

    @property
    def day(self) -> int:
        return self.lesson.day

    @property
    def html_bytes(self) -> int:
        return len(self.html.encode("utf-8"))


class Renderer:
    """Compiles the templates once at start-up, then renders any lesson of the course."""

    def __init__(self, settings: Settings, course: Course) -> None:
        self.settings = settings
        self.course = course
        self.template_dir = template_dir(settings)
        self.env = make_environment(self.template_dir)
        self.html_template = self._load(LAYOUT_TEMPLATE)
        self.text_template = self._load(TEXT_TEMPLATE)
        self.subject_template = self._subject_template()
        self._sources: dict[str, str] | None = None

    def _load(self, name: str) -> jinja2.Template:
        try:
            return self.env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"{exc.filename or name}: line {exc.lineno}: {exc.message}"
            ) from None
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"{self.template_dir}: template {exc.name!r} not found") from None

    def _mjml_sources(self) -> dict[str, str]:
        """Every .mjml template's source, so an MJML error can name the file that has it."""
        if self._sources is None:
            self._sources = {}
            loader = self.env.loader
            for name in self.env.list_templates(extensions=["mjml"]) if loader else ():
                with contextlib.suppress(jinja2.TemplateNotFound, OSError, UnicodeError):
                    self._sources[name] = loader.get_source(self.env, name)[0] if loader else ""
        return self._sources

    def _subject_template(self) -> jinja2.Template:
        try:
            return self.env.from_string(self.settings.course.subject)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"{self.settings.source}: course.subject: {exc.message}") from None

    def render(self, lesson: Lesson) -> RenderedLesson:
        """Render one lesson; raises TemplateError naming the template and line."""
        slots = SlotTable()
        context = self._context(lesson, slots)
        subject = _one_line(
            _run(self.subject_template, context, f"{self.settings.source}: course.subject")
        )
        context["subject"] = subject
        html = compile_mjml(
            _run(self.html_template, context, LAYOUT_TEMPLATE), lesson.day, self._mjml_sources()
        )
        text = tidy_text(_run(self.text_template, context, TEXT_TEMPLATE))
        rendered = RenderedLesson(
            lesson=lesson,
            days=self.course.days,
            subject=subject,
            preheader=str(context["preheader"]),
            html=html,
            text=text,
            slots=slots.slots(),
            unlinked=tuple(self._unlinked(lesson)),
        )
        check_size(rendered)
        return rendered

    def render_all(self) -> list[RenderedLesson]:
        return [self.render(lesson) for lesson in self.course.lessons]

    def _context(self, lesson: Lesson, slots: SlotTable) -> dict[str, object]:
        course, links = self.course, self.settings.course.links
        last = lesson.day == course.days
        return {
            "course": course,
            "course_name": course_name(self.settings, course),
            "lesson": lesson,
            "day": lesson.day,
            "days": course.days,
            "lesson_label": lesson_label(course, lesson),
            "course_summary": course_summary(course),
            "blocks": block_views(lesson.blocks, links),
            "welcome": block_views(course.welcome, links) if lesson.day == 1 else (),
            "closing": _closing_views(course, links) if last else (),
            "disclosure": block_views(course.disclosure, links),
            "next_title": "" if last else course.lessons[lesson.day].title,
            "preheader": preheader(lesson),
            "postal_address": self.settings.sender.postal_address,
            "subscriber": SubscriberProxy(slots),
            "unsubscribe_url": SubscriberProxy(slots).unsubscribe_url,
        }

    def _unlinked(self, lesson: Lesson) -> Iterable[str]:
        links = self.settings.course.links
        blocks = list(lesson.blocks) + list(self.course.disclosure)
        if lesson.day == 1:
            blocks += self.course.welcome
        if lesson.day == self.course.days:
            blocks += [b for section in self.course.closing for b in section.blocks]
        for runs in _inlines(blocks):
            yield from linking.unlinked(runs, links)


def template_dir(settings: Settings) -> Path:
    return settings.course.templates or settings.base_dir / "templates"


def course_name(settings: Settings, course: Course) -> str:
    return settings.course.name or course.title


def make_environment(directory: Path) -> jinja2.Environment:
    """Autoescape on for MJML/HTML (select_autoescape alone misses .mjml), strict undefined."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "htm", "xml", "mjml"), default_for_string=False
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["fallback"] = fallback_filter
    env.filters["wrap"] = wrap
    env.filters["as_text"] = as_text
    return env


def _run(template: jinja2.Template, context: dict[str, object], name: str) -> str:
    try:
        return template.render(context)
    except jinja2.TemplateError as exc:
        raise TemplateError(f"{_template_position(exc, name)}: {exc}") from None


def _template_position(exc: BaseException, fallback: str) -> str:
    """The innermost template frame of a render error; Jinja rewrites frames to template lines."""
    position = fallback
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith((".mjml", ".txt", ".html")):
            position = f"{filename}: line {tb.tb_lineno}"
        tb = tb.tb_next
    return position


def compile_mjml(source: str, day: int, templates: Mapping[str, str] | None = None) -> str:
    """MJML -> HTML, failing with the template (or rendered) line when MRML would refuse it."""
    where = f"{LAYOUT_TEMPLATE} (day {day})"
    check_mjml(source, where, templates)
    try:
        return mjml.mjml2html(source, disable_comments=True, fonts={})
    except ValueError as exc:
        position = locate_mjml_error(source, where, templates)
        raise TemplateError(f"{position}: MJML error: {exc}") from None


def check_size(rendered: RenderedLesson) -> None:
    size = rendered.html_bytes
    if size >= CLIP_LIMIT_BYTES:
        raise RenderError(
            f"day {rendered.day}: HTML is {size:,} bytes; Gmail clips emails over "
            f"{CLIP_LIMIT_BYTES:,} bytes. Shorten the lesson or simplify the templates."
        )


def block_views(blocks: Iterable[Block], links: Mapping[str, str]) -> tuple[BlockView, ...]:
    return tuple(_view(block, links) for block in blocks)


def _view(block: Block, links: Mapping[str, str]) -> BlockView:
    if isinstance(block, ListBlock):
        entries = [
            (block.level(index), BlockView("paragraph", linking.link_phrases(item, links)))
            for index, item in enumerate(block.items)
        ]
        return BlockView(
            "bullets", items=_nested(entries), ordered=block.ordered, start=block.start
        )
    if isinstance(block, Image):
        return BlockView("image", url=block.src, text=block.alt, href=block.href)
    if isinstance(block, CodeBlock):
        return BlockView("code", text=block.text)
    parts = linking.link_phrases(block.runs, links)
    if isinstance(block, Quote):
        return BlockView("quote", parts)
    if isinstance(block, Heading):
        return BlockView("heading", parts)
    mapped = set(links.values())
    if linking.is_button(parts) and any(p.url in mapped for p in parts):
        # Only the operator's calls to action become buttons, never the article's own links.
        link = next(p for p in parts if p.url)
        return BlockView("button", parts, url=link.url, text=block.text.strip("() .").rstrip())
    return BlockView("paragraph", parts)


def _nested(entries: Sequence[tuple[int, BlockView]]) -> tuple[BlockView, ...]:
    """List entries with their depths -> entries whose `items` hold a bulleted list of the
    entries nested under them."""
    views: list[BlockView] = []
    index = 0
    while index < len(entries):
        level, view = entries[index]
        index += 1
        children = []
        while index < len(entries) and entries[index][0] > level:
            children.append(entries[index])
            index += 1
        if children:
            view = dataclasses.replace(view, items=(BlockView("bullets", items=_nested(children)),))
        views.append(view)
    return tuple(views)


def _closing_views(course: Course, links: Mapping[str, str]) -> tuple[dict[str, object], ...]:
    return tuple(
        {"heading": s.heading, "blocks": block_views(s.blocks, links)} for s in course.closing
    )


def _inlines(blocks: Iterable[Block]) -> Iterable[Inline]:
    for block in blocks:
        if isinstance(block, ListBlock):
            yield from block.items
        elif not isinstance(block, Image | CodeBlock):
            yield block.runs


def lesson_label(course: Course, lesson: Lesson) -> str:
    """ "Sign 3 of 10", "Action step 2 of 4"."""
    return f"{lesson.kind.label} {lesson.number} of {course.part_size(lesson.part)}"


def course_summary(course: Course) -> str:
    """The welcome's sentence on what is coming: "…: 11 reasons, then 4 things you can do"."""
    days = course.days
    if days == 1:
        return "This course is a single lesson, and here it is."
    counts = [
        part.kind.counted(course.part_size(index))
        for index, part in enumerate(course.parts)
        if course.part_size(index)
    ]
    kinds = {part.kind for index, part in enumerate(course.parts) if course.part_size(index)}
    opening = f"Over the next {days} days you will get one short lesson a day"
    if kinds <= {Kind.LESSON}:
        return f"{opening}. Here is the first."
    listing = counts[0] if len(counts) == 1 else ", ".join(counts[:-1]) + ", then " + counts[-1]
    return f"{opening}: {listing}. Here is the first."


def preheader(lesson: Lesson, limit: int = 140) -> str:
    """The lesson's opening sentence, which inbox lists show beside the subject (a
    sub-heading that opens the lesson is no sentence, nor a line that repeats the title)."""
    first = next(
        (
            b.text
            for b in lesson.blocks
            if not isinstance(b, ListBlock | Image | CodeBlock | Heading)
            and b.text.strip() != lesson.title
        ),
        lesson.title,
    )
    sentence = re.split(r"(?<=[.!?…])\s+", first.strip(), maxsplit=1)[0]
    if len(sentence) <= limit:
        return sentence
    return sentence[: limit - 1].rsplit(" ", 1)[0] + "…"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def wrap(text: str, width: int = TEXT_WIDTH, indent: str = "", hanging: str = "") -> str:
    """Fold at `width` columns without breaking words or URLs."""
    return textwrap.fill(
        " ".join(str(text).split()),
        width=width,
        initial_indent=indent,
        subsequent_indent=hanging or indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _inline_text(parts: Iterable[Run]) -> str:
    """Runs as plain text: formatting dropped, a link's address after its text."""
    out: list[str] = []
    for part in parts:
        if part.url and part.text.strip() != part.url and not part.url.startswith("mailto:"):
            out.append(f"{part.text} <{part.url}>")
        else:
            out.append(part.text)
    return "".join(out)


def _wrapped(parts: Iterable[Run], indent: str = "", hanging: str = "") -> str:
    """Wrapped text that keeps the article's line breaks."""
    lines = _inline_text(parts).split("\n")
    first = wrap(lines[0], indent=indent, hanging=hanging or indent)
    rest = [wrap(line, indent=hanging or indent) for line in lines[1:]]
    return "\n".join([first, *rest])


def as_text(block: BlockView) -> str:
    """One block of the plain-text part."""
    if block.kind == "bullets":
        return "\n".join(_list_lines(block, "")) + "\n"
    if block.kind == "button":
        return wrap(f"{block.text}: {block.url}") + "\n"
    if block.kind == "quote":
        return _wrapped(block.parts, indent="    ") + "\n"
    if block.kind == "image":
        label = f"[Image: {block.text}]" if block.text else "[Image]"
        return wrap(f"{label} <{block.href}>" if block.href else label) + "\n"
    if block.kind == "code":
        return "\n".join("    " + line for line in block.text.splitlines()) + "\n"
    if block.kind == "heading":
        return _wrapped(block.parts) + "\n"
    return _wrapped(block.parts) + "\n"


def _list_lines(block: BlockView, indent: str) -> list[str]:
    """A list's lines in the text part; a nested list indented under its entry."""
    lines = []
    for number, item in enumerate(block.items, start=block.start):
        marker = f"{number}. " if block.ordered else "- "
        hanging = indent + " " * len(marker)
        lines.append(_wrapped(item.parts, indent=indent + marker, hanging=hanging))
        for nested in item.items:
            lines.extend(_list_lines(nested, hanging))
    return lines


def tidy_text(text: str) -> str:
    """One blank line between blocks, no trailing spaces (but keep the `-- ` sig separator)."""
    lines = [line if line == "-- " else line.rstrip() for line in text.splitlines()]
    tidy = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
    return tidy + "\n"
