"""Numbered candidates -> lists ("runs") that count 1, 2, 3… in order.

Each family of candidates (same heading level, noun, delimiter, boldness) is read with a
stack: a number that continues the list on top extends it; one that continues a list lower
in the stack closes the lists above it as nested (sub-steps inside an item); a 1 starts a
new list. Anything else is a numbering error that names the line, the cause and the fix.
A list numbered 1, 1, 1… (an HTML list copied as text) is renumbered, with a note.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from course.article.chunks import Notes
from course.article.items import Candidate, Family
from course.article.shapes import UNNUMBERED, quote
from course.errors import ArticleError

_ALL_ONES_MINIMUM = 3


@dataclass
class ItemRun:
    """Candidates numbered in order: one list of the article (or a list inside an item)."""

    family: Family
    items: list[Candidate] = field(default_factory=list)
    nested: bool = False

    @property
    def first(self) -> Candidate:
        return self.items[0]

    @property
    def last(self) -> Candidate:
        return self.items[-1]

    @property
    def descending(self) -> bool:
        return len(self.items) > 1 and self.items[1].number < self.items[0].number

    def expects(self, number: int) -> bool:
        last = self.last.number
        if len(self.items) == 1:
            return number == last + 1 or (last > 1 and number == last - 1)
        return number == (last - 1 if self.descending else last + 1)

    @property
    def next_number(self) -> int:
        return self.last.number - 1 if self.descending else self.last.number + 1


def number_unnumbered(found: Sequence[Candidate]) -> list[Candidate]:
    """Markers without a number ("Q:") numbered 1, 2, 3… in order, within their family."""
    counters: dict[Family, int] = {}
    numbered: list[Candidate] = []
    for candidate in found:
        if candidate.number == UNNUMBERED:
            counters[candidate.family] = counters.get(candidate.family, 0) + 1
            candidate = replace(candidate, number=counters[candidate.family])
        numbered.append(candidate)
    return numbered


def renumber_all_ones(found: Sequence[Candidate], notes: Notes) -> list[Candidate]:
    """Within each family, three or more items in a row all numbered 1 are numbered 1..k."""
    result = list(found)
    by_family: dict[Family, list[int]] = {}
    for index, candidate in enumerate(found):
        by_family.setdefault(candidate.family, []).append(index)
    for indices in by_family.values():
        streak: list[int] = []
        for index in [*indices, -1]:
            if index >= 0 and found[index].number == 1:
                streak.append(index)
                continue
            if len(streak) >= _ALL_ONES_MINIMUM:
                for number, at in enumerate(streak, start=1):
                    result[at] = replace(found[at], number=number)
                notes.add(
                    found[streak[0]].line,
                    f"every item of this list is numbered 1 (lines {found[streak[0]].line}-"
                    f"{found[streak[-1]].line}), as when a web page's list is copied as text; "
                    f"read as items 1 to {len(streak)} in order",
                )
            streak = []
    return result


def build_runs(
    found: Sequence[Candidate], source: str, notes: Notes | None = None
) -> list[ItemRun]:
    runs: list[ItemRun] = []
    stacks: dict[Family, list[ItemRun]] = {}
    for candidate in found:
        stack = stacks.setdefault(candidate.family, [])
        if stack and stack[-1].expects(candidate.number):
            stack[-1].items.append(candidate)
            continue
        stray = _stray(runs, stack[-1], candidate) if stack and len(stack[-1].items) > 1 else None
        if stray is not None:
            # "### 3." among "## 1.", "3)" among "1.": the one item written differently
            # fills the gap exactly; it is read as the item it numbers, with a note.
            runs.remove(stray)
            stacks[stray.family].remove(stray)
            stack[-1].items += [replace(stray.first, family=stack[-1].family), candidate]
            if notes is not None:
                notes.add(
                    stray.first.line,
                    f"item {stray.first.number} {quote(stray.first.source, 50)}"
                    f"{_difference(stack[-1].family, stray.family)}; read as item "
                    f"{stray.first.number} of the list (write it like the others to silence "
                    "this note)",
                )
            continue
        below = next(
            (i for i in range(len(stack) - 2, -1, -1) if stack[i].expects(candidate.number)), None
        )
        if below is not None:
            for inner in stack[below + 1 :]:
                inner.nested = True
            del stack[below + 1 :]
            stack[below].items.append(candidate)
            continue
        if candidate.number != 1 and stack and len(stack[-1].items) > 1:
            raise numbering_error(stack[-1], candidate, source, found)
        run = ItemRun(candidate.family, [candidate])
        stack.append(run)
        runs.append(run)
    return runs


def _stray(runs: Sequence[ItemRun], run: ItemRun, candidate: Candidate) -> ItemRun | None:
    """A one-item list of another family that holds exactly the item `run` misses before
    `candidate`, which comes right after it."""
    for other in runs:
        if (
            len(other.items) == 1
            and other.family != run.family
            and other.first.number == run.next_number
            and run.last.position < other.first.position < candidate.position
            and candidate.number == run.next_number + (-1 if run.descending else 1)
        ):
            return other
    return None


def _difference(family: Family, other: Family) -> str:
    """How an item is written differently from its list, in words."""

    def heading(level: int) -> str:
        return f"a {'#' * level} heading" if level else "a line of text"

    if family.heading_level != other.heading_level:
        return f" is {heading(other.heading_level)}, the others {heading(family.heading_level)}"
    if family.delimiter != other.delimiter:
        return f" has `{other.delimiter}` after its number, the others `{family.delimiter}`"
    if family.bold != other.bold:
        return " is in bold, the others not" if other.bold else " is not in bold, the others are"
    return ""


def numbering_error(
    run: ItemRun, candidate: Candidate, source: str, everything: Sequence[Candidate] = ()
) -> ArticleError:
    expected = run.next_number
    found = candidate.number
    repeated = found <= run.last.number if not run.descending else found >= run.last.number
    # Item 3 may be there, written differently ("### 3." among "## 1.", "3)" among "1."…).
    elsewhere = next(
        (
            other
            for other in everything
            if other.number == expected
            and other.family != run.family
            and run.last.position < other.position < candidate.position
        ),
        None,
    )
    if elsewhere is not None:
        cause = (
            f"item {expected} is on line {elsewhere.line} but written differently: "
            f"{quote(elsewhere.source, 50)}{_difference(run.family, elsewhere.family)}; write it "
            "like the others"
        )
    elif repeated:
        cause = f"item {found} comes again"
    else:
        cause = "a number is skipped, or the item before it lost its number or its blank line"
    return ArticleError(
        f"{source}: line {candidate.line}: expected item {expected}, found item {found}: "
        f"{quote(candidate.source)}; {cause}. Number the items in order in the article "
        "(or, if a new list starts here, number it from 1)"
    )
