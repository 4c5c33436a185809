"""The course as read from the article: frozen value objects, no behaviour beyond naming.

Text is kept as runs of inline text (`Run`): plain, bold, italic, code or linked, so the HTML
part can show the article's formatting and the text part can print it cleanly. A run whose
text is "\\n" is a line break.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

LINE_BREAK = "\n"


@dataclass(frozen=True, slots=True)
class Run:
    """A run of inline text with one formatting; `url` makes it a link."""

    text: str
    url: str = ""
    strong: bool = False
    emphasis: bool = False
    code: bool = False

    @property
    def is_break(self) -> bool:
        return self.text == LINE_BREAK


Inline = tuple[Run, ...]


def plain(runs: Iterable[Run]) -> str:
    """The runs as text: formatting dropped, a line break as a newline."""
    return "".join(run.text for run in runs)


def runs_of(text: str) -> Inline:
    """Plain text as runs (one unformatted run; none for empty text)."""
    return (Run(text),) if text else ()


@dataclass(frozen=True)
class _RunsBlock:
    """A block of formatted runs, from the article's line `line`."""

    runs: Inline
    line: int

    @property
    def text(self) -> str:
        return plain(self.runs)


@dataclass(frozen=True)
class Paragraph(_RunsBlock):
    """A paragraph of running text."""


@dataclass(frozen=True)
class Quote(_RunsBlock):
    """A quoted paragraph (a `>` block in Markdown, or a paragraph wholly in quotation marks)."""


@dataclass(frozen=True)
class Heading(_RunsBlock):
    """A heading inside a lesson, the welcome or the closing (not one that parts the course)."""


@dataclass(frozen=True)
class ListBlock:
    """A bulleted or numbered list; a numbered one keeps the article's first number.

    `levels` gives each item's depth: 0 for the list's own entries, 1 for an entry of a
    list nested under the entry above it, and so on; empty when nothing is nested."""

    items: tuple[Inline, ...]
    line: int
    ordered: bool = False
    start: int = 1
    levels: tuple[int, ...] = ()

    def level(self, index: int) -> int:
        return self.levels[index] if self.levels else 0

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(plain(item) for item in self.items)


@dataclass(frozen=True)
class Image:
    """An image at an absolute http(s) URL, with its alt text; `href` when it is a link."""

    src: str
    alt: str
    line: int
    href: str = ""


@dataclass(frozen=True)
class CodeBlock:
    """Preformatted text (a fenced or indented code block), kept as written."""

    text: str
    line: int


Block = Paragraph | Quote | Heading | ListBlock | Image | CodeBlock


def block_texts(block: Block) -> tuple[str, ...]:
    """The readable text of a block: one string per paragraph or list item."""
    if isinstance(block, ListBlock):
        return block.texts
    if isinstance(block, Image):
        return (block.alt,) if block.alt else ()
    return (block.text,)


class Kind(StrEnum):
    """What a numbered list holds, named from its heading ("10 signs" -> sign)."""

    REASON = "reason"
    ACTION = "action"
    SIGN = "sign"
    TIP = "tip"
    WAY = "way"
    MISTAKE = "mistake"
    STEP = "step"
    HABIT = "habit"
    IDEA = "idea"
    QUESTION = "question"
    RULE = "rule"
    SECRET = "secret"  # noqa: S105 (a kind of item, not a password)
    STRATEGY = "strategy"
    MYTH = "myth"
    TRICK = "trick"
    LESSON = "lesson"

    @property
    def label(self) -> str:
        """The word before "3 of 10" in a lesson's label."""
        return "Action step" if self is Kind.ACTION else self.value.capitalize()

    def counted(self, count: int) -> str:
        """ "10 signs", "1 sign", "4 things you can do"."""
        if self is Kind.ACTION:
            return f"{count} {'thing' if count == 1 else 'things'} you can do"
        if count == 1:
            return f"1 {self.value}"
        plural = "strategies" if self is Kind.STRATEGY else f"{self.value}s"
        return f"{count} {plural}"


@dataclass(frozen=True)
class Part:
    """One numbered list of the article: its heading and what its items are."""

    heading: str
    kind: Kind
    line: int


@dataclass(frozen=True)
class Section:
    """A run of blocks after the last item (the closing), with its heading if it has one."""

    heading: str | None
    blocks: tuple[Block, ...]
    line: int


@dataclass(frozen=True)
class Lesson:
    """One numbered item of the article: one email of the course.

    `number` is the item's place in its part ("Sign 3 of 10"); `edits` says which of the
    operator's edits changed it.
    """

    day: int
    part: int
    kind: Kind
    number: int
    title: str
    blocks: tuple[Block, ...]
    line: int
    edits: tuple[str, ...] = ()


@dataclass(frozen=True)
class Course:
    """The whole article, every paragraph in exactly one place.

    `notes` are what reading the article found worth telling the operator (an encoding
    guessed, a list renumbered, an image dropped), each naming the file and line.
    """

    title: str
    description: str
    disclosure: tuple[Block, ...]
    welcome: tuple[Block, ...]
    parts: tuple[Part, ...]
    lessons: tuple[Lesson, ...]
    closing: tuple[Section, ...]
    source: str
    notes: tuple[str, ...] = ()

    @property
    def days(self) -> int:
        return len(self.lessons)

    def part_size(self, part: int) -> int:
        """How many lessons the part has."""
        return sum(1 for lesson in self.lessons if lesson.part == part)
