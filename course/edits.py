"""The operator's edits, applied to the course read from the article.

Declarative, so they survive a re-import of the article, and strict: an edit that matches
nothing is an error naming the edit, so edits cannot rot silently when the article changes.

    course:
      edits:                      # or: edits: course-edits.yaml (the same mapping, in a file)
        omit:
          - item: 3               # the article's 3rd item; or "reason 3", or its title
          - paragraphs: "Like me on Facebook"   # every paragraph containing the phrase
        retitle:
          14: "Don't try to fix him"
        replace:
          "This article": "This course"         # everywhere: titles, lessons, welcome, closing
        lesson:
          5: lessons/day-5.md     # the lesson's body from a Markdown file
        welcome: welcome.md       # day 1's opening, from a Markdown file
        closing: closing.md       # the last day's closing, from a Markdown file

Items are named as in the article, before any edit: a number counts the items from the
first (so with 11 reasons and 4 steps, 14 is step 3), "<kind> N" names the Nth of a part
("step 3", "reason 11"), and any other text is an item's title. The course's length
follows: omitting one of 15 items gives a 14-day course.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from course.article.inline import drop_prefix, merge, take_prefix
from course.content import (
    Block,
    CodeBlock,
    Course,
    Image,
    Inline,
    Lesson,
    ListBlock,
    Run,
    Section,
    block_texts,
    plain,
)
from course.errors import ConfigError, CourseError

VERBS = ("omit", "retitle", "replace", "lesson", "welcome", "closing")


@dataclass(frozen=True)
class EditSource:
    """Where the edits are written: schedule.yaml's course.edits, or a file of their own."""

    file: Path
    prefix: str  # "course.edits." in schedule.yaml, "" in an edits file
    base_dir: Path

    def key(self, path: str) -> str:
        return f"{self.file}: {self.prefix}{path}"


@dataclass(frozen=True)
class Edits:
    raw: Mapping[str, Any]
    where: EditSource


def load_edits(
    edits: Mapping[str, Any] | Path | None, config_file: Path, base_dir: Path
) -> Edits | None:
    if edits is None:
        return None
    if isinstance(edits, Path):
        try:
            data = yaml.safe_load(edits.read_text(encoding="utf-8-sig"))
        except FileNotFoundError:
            raise ConfigError(
                f"{config_file}: course.edits: the edits file {edits} does not exist; create it "
                "or remove course.edits"
            ) from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise ConfigError(f"{edits}: cannot read the edits: {_first_line(error)}") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{edits}: expected a mapping of edits (omit, retitle, …)")
        return Edits(data, EditSource(edits, "", edits.parent))
    return Edits(edits, EditSource(config_file, "course.edits.", base_dir))


def edit_files(edits: Mapping[str, Any] | Path | None, base_dir: Path) -> list[Path]:
    """Every file the edits are read from, for the preview to watch."""
    files: list[Path] = []
    raw: object = edits
    if isinstance(edits, Path):
        files.append(edits)
        base_dir = edits.parent
        try:
            raw = yaml.safe_load(edits.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return files
    if not isinstance(raw, dict):
        return files
    lessons = raw.get("lesson")
    named = list(lessons.values()) if isinstance(lessons, dict) else []
    named += [raw.get("welcome"), raw.get("closing")]
    files += [base_dir / value for value in named if isinstance(value, str) and value]
    return files


@dataclass
class _Log:
    """What each edit changed, by the lesson's place in the article."""

    marks: dict[int, list[str]] = field(default_factory=dict)
    welcome: list[str] = field(default_factory=list)
    closing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def mark(self, item: int, what: str) -> None:
        self.marks.setdefault(item, []).append(what)


def apply_edits(course: Course, edits: Edits | None) -> Course:
    """The course with the edits applied; CourseError names any edit that matches nothing."""
    if edits is None:
        return course
    where = edits.where
    raw = edits.raw
    for key in raw:
        if key not in VERBS:
            raise ConfigError(
                f"{where.key(str(key))}: unknown edit; expected one of {', '.join(VERBS)}"
            )
    log = _Log()
    items = list(course.lessons)  # index = the item's place in the article, from 0
    for key, value in _pairs(raw, "lesson", where):
        index = _resolve(course, key, f"lesson.{key}", where)
        path = _file(value, f"lesson.{key}", where)
        blocks, notes = read_fragment(path)
        items[index] = replace(items[index], blocks=blocks)
        log.notes += notes
        log.mark(index, f"body from {path.name}")
    for key, value in _pairs(raw, "retitle", where):
        index = _resolve(course, key, f"retitle.{key}", where)
        title = _text(value, f"retitle.{key}", where)
        items[index] = replace(items[index], title=title)
        log.mark(index, f"retitled to {title!r}")
    welcome, disclosure, closing = course.welcome, course.disclosure, course.closing
    if raw.get("welcome") is not None:
        path = _file(raw["welcome"], "welcome", where)
        welcome, notes = read_fragment(path)
        log.notes += notes
        log.welcome.append(f"welcome from {path.name}")
    if raw.get("closing") is not None:
        path = _file(raw["closing"], "closing", where)
        closing, notes = read_sections(path)
        log.notes += notes
        log.closing.append(f"closing from {path.name}")
    omitted: set[int] = set()
    phrases: list[tuple[str, str]] = []
    for position, entry in enumerate(_list(raw, "omit", where)):
        key = f"omit[{position + 1}]"
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ConfigError(
                f'{where.key(key)}: expected `item: N` (a number, "reason 3" or a title) or '
                "`paragraphs: PHRASE`"
            )
        ((kind, value),) = entry.items()
        if kind == "item":
            omitted.add(_resolve(course, value, key, where))
        elif kind == "paragraphs":
            phrases.append((_text(value, key, where), key))
        else:
            raise ConfigError(f"{where.key(key)}.{kind}: unknown; expected item or paragraphs")
    kept = [(i, lesson) for i, lesson in enumerate(items) if i not in omitted]
    if not kept:
        raise ConfigError(f"{where.key('omit')}: every item is omitted; keep at least one")
    edited = _Edited(kept, welcome, disclosure, closing, log)
    for phrase, key in phrases:
        if not edited.drop_paragraphs(phrase):
            raise ConfigError(
                f"{where.key(key)}: no paragraph contains {phrase!r}; fix the phrase (as "
                "the course has it now) or remove this edit"
            )
    for phrase, replacement in _pairs(raw, "replace", where):
        text = _text(replacement, f"replace.{phrase}", where, empty=True)
        if not edited.replace(str(phrase), text):
            raise ConfigError(
                f"{where.key(f'replace.{phrase}')}: {phrase!r} is nowhere in the course; fix "
                "the phrase (as the course has it now) or remove this edit"
            )
    return edited.course(course)


class _Edited:
    """The course's pieces while edits apply to them."""

    def __init__(
        self,
        items: list[tuple[int, Lesson]],
        welcome: tuple[Block, ...],
        disclosure: tuple[Block, ...],
        closing: tuple[Section, ...],
        log: _Log,
    ) -> None:
        self.items = items
        self.welcome = welcome
        self.disclosure = disclosure
        self.closing = closing
        self.log = log

    def drop_paragraphs(self, phrase: str) -> int:
        dropped = 0

        def keep(block: Block) -> Block | None:
            nonlocal dropped
            if isinstance(block, ListBlock):
                kept = [
                    index
                    for index, item in enumerate(block.items)
                    if not _contains(plain(item), phrase)
                ]
                dropped += len(block.items) - len(kept)
                if not kept:
                    return None
                levels = tuple(block.level(index) for index in kept) if block.levels else ()
                return replace(block, items=tuple(block.items[i] for i in kept), levels=levels)
            if any(_contains(text, phrase) for text in block_texts(block)):
                dropped += 1
                return None
            return block

        what = f"omitted paragraphs containing {phrase!r}"
        self._map_blocks(keep, what)
        return dropped

    def replace(self, phrase: str, replacement: str) -> int:
        count = 0

        def swap_text(text: str) -> str:
            nonlocal count
            new, found = _replace(text, phrase, replacement)
            count += found
            return new

        def swap(block: Block) -> Block | None:
            nonlocal count
            new, found = _replace_in_block(block, phrase, replacement)
            count += found
            return new

        what = f"replaced {phrase!r}"
        before = count
        for index, (place, lesson) in enumerate(self.items):
            title = swap_text(lesson.title)
            if count != before:
                self.items[index] = (place, replace(lesson, title=title))
                self.log.mark(place, what)
                before = count
        self._map_blocks(swap, what)
        before = count
        closing = []
        for section in self.closing:
            heading = swap_text(section.heading) if section.heading else section.heading
            if count != before:
                self.log.closing.append(what)
                before = count
            closing.append(replace(section, heading=heading))
        self.closing = tuple(closing)
        return count

    def _map_blocks(self, change: Callable[[Block], Block | None], what: str) -> None:
        for index, (place, lesson) in enumerate(self.items):
            blocks = _mapped(lesson.blocks, change)
            if blocks != lesson.blocks:
                self.items[index] = (place, replace(lesson, blocks=blocks))
                self.log.mark(place, what)
        welcome = _mapped(self.welcome, change)
        if welcome != self.welcome:
            self.welcome = welcome
            self.log.welcome.append(what)
        self.disclosure = _mapped(self.disclosure, change)
        closing = tuple(
            replace(section, blocks=_mapped(section.blocks, change)) for section in self.closing
        )
        if closing != self.closing:
            self.log.closing.append(what)
        self.closing = tuple(s for s in closing if s.blocks or s.heading)

    def course(self, original: Course) -> Course:
        lessons: list[Lesson] = []
        numbers: dict[int, int] = {}
        for place, lesson in self.items:
            numbers[lesson.part] = numbers.get(lesson.part, 0) + 1
            marks = list(self.log.marks.get(place, []))
            if numbers[lesson.part] != lesson.number:
                marks.append(f"{lesson.kind.label.lower()} {lesson.number} in the article")
            lessons.append(
                replace(
                    lesson,
                    day=len(lessons) + 1,
                    number=numbers[lesson.part],
                    edits=tuple(dict.fromkeys(marks)),
                )
            )
        if lessons and self.log.welcome:
            first = lessons[0]
            lessons[0] = replace(first, edits=(*first.edits, *dict.fromkeys(self.log.welcome)))
        if lessons and self.log.closing:
            last = lessons[-1]
            lessons[-1] = replace(last, edits=(*last.edits, *dict.fromkeys(self.log.closing)))
        return replace(
            original,
            welcome=self.welcome,
            disclosure=self.disclosure,
            closing=self.closing,
            lessons=tuple(lessons),
            notes=(*original.notes, *self.log.notes),
        )


def read_fragment(path: Path) -> tuple[tuple[Block, ...], tuple[str, ...]]:
    # Imported here: markdown-it-py is only needed when an edit names a Markdown file.
    from course.article.fragments import read_fragment as read

    return read(path)


def read_sections(path: Path) -> tuple[tuple[Section, ...], tuple[str, ...]]:
    from course.article.fragments import read_sections as read

    return read(path)


def _mapped(blocks: Sequence[Block], change: Callable[[Block], Block | None]) -> tuple[Block, ...]:
    return tuple(b for b in (change(block) for block in blocks) if b is not None)


def _replace_in_block(block: Block, phrase: str, replacement: str) -> tuple[Block, int]:
    if isinstance(block, ListBlock):
        pairs = [_replace_runs(item, phrase, replacement) for item in block.items]
        return replace(block, items=tuple(p[0] for p in pairs)), sum(p[1] for p in pairs)
    if isinstance(block, Image):
        alt, count = _replace(block.alt, phrase, replacement)
        return replace(block, alt=alt), count
    if isinstance(block, CodeBlock):
        text, count = _replace(block.text, phrase, replacement)
        return replace(block, text=text), count
    runs, count = _replace_runs(block.runs, phrase, replacement)
    return replace(block, runs=runs), count


def _replace_runs(runs: Inline, phrase: str, replacement: str) -> tuple[Inline, int]:
    """The phrase replaced even where it spans runs; the replacement takes the formatting
    of the run the phrase starts in."""
    text = plain(runs)
    folded, key = _fold(text), _fold(phrase)
    if not key or key not in folded:
        return runs, 0
    out: list[Run] = []
    position = 0
    count = 0
    for match in re.finditer(re.escape(key), folded):
        out.extend(take_prefix(drop_prefix(runs, position), match.start() - position))
        style = drop_prefix(runs, match.start())[0]
        if replacement:
            out.append(replace(style, text=replacement))
        position = match.end()
        count += 1
    out.extend(drop_prefix(runs, position))
    return merge(out), count


def _fold(text: str) -> str:
    """Typographic quotes folded, length kept, so a phrase typed with ' finds ’."""
    return text.translate(str.maketrans("’‘“”", "''\"\""))


def _contains(text: str, phrase: str) -> bool:
    return _fold(phrase).casefold() in _fold(text).casefold()


def _replace(text: str, phrase: str, replacement: str) -> tuple[str, int]:
    folded, key = _fold(text), _fold(phrase)
    if not key or key not in folded:
        return text, 0
    parts = []
    position = 0
    count = 0
    for match in re.finditer(re.escape(key), folded):
        parts.append(text[position : match.start()])
        parts.append(replacement)
        position = match.end()
        count += 1
    parts.append(text[position:])
    return "".join(parts), count


def _resolve(course: Course, ref: object, key: str, where: EditSource) -> int:
    """The article position (from 0) of the item an edit names."""
    lessons = course.lessons
    if isinstance(ref, int) and not isinstance(ref, bool):
        if 1 <= ref <= len(lessons):
            return ref - 1
        raise ConfigError(
            f"{where.key(key)}: there is no item {ref}; the article has {len(lessons)} items "
            "(numbered from 1 across all its lists)"
        )
    if not isinstance(ref, str) or not ref.strip():
        raise ConfigError(f"{where.key(key)}: expected an item number or title, got {ref!r}")
    text = ref.strip()
    named = re.fullmatch(r"([A-Za-z ]+?)\s+(\d+)", text)
    if named:
        word, number = named[1].lower(), int(named[2])
        for index, lesson in enumerate(lessons):
            if word in (lesson.kind.value, lesson.kind.label.lower()) and lesson.number == number:
                return index
    folded = _fold(text).casefold()
    for index, lesson in enumerate(lessons):
        if _fold(lesson.title).casefold() == folded:
            return index
    titles = [lesson.title for lesson in lessons]
    close = difflib.get_close_matches(text, titles, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "; `course lessons` lists the titles"
    raise ConfigError(f"{where.key(key)}: no item is called {text!r}{hint}")


def _pairs(raw: Mapping[str, Any], verb: str, where: EditSource) -> Iterable[tuple[Any, Any]]:
    value = raw.get(verb)
    if value is None:
        return []
    if not isinstance(value, dict):
        raise ConfigError(f"{where.key(verb)}: expected a mapping (item or phrase: value)")
    return list(value.items())


def _list(raw: Mapping[str, Any], verb: str, where: EditSource) -> list[Any]:
    value = raw.get(verb)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{where.key(verb)}: expected a list, e.g. `- item: 3`")
    return value


def _text(value: object, key: str, where: EditSource, *, empty: bool = False) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise ConfigError(f"{where.key(key)}: expected text, got {value!r}")
    return value if empty else value.strip()


def _file(value: object, key: str, where: EditSource) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where.key(key)}: expected the path of a Markdown file")
    path = where.base_dir / value.strip()
    if not path.is_file():
        raise ConfigError(f"{where.key(key)}: {path} does not exist; create it or fix the path")
    return path


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


__all__ = ["CourseError", "Edits", "apply_edits", "edit_files", "load_edits"]
