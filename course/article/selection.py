"""Which numbered lists of the article are its items; the others stay lists in the text.

- Lists of headings win over lists of paragraphs; a list of paragraphs inside a heading
  item (sub-steps) belongs to that item, as does a more indented list in web copy.
- A list of one item, or one whose items (mostly) have no text of their own, is a list
  inside the text: a quiz in the intro, a summary in the closing.
- A list in the intro, before the heading that announces the real list ("7 signs"), is
  part of the intro when its items are questions or much shorter than the real ones.
- A list after a closing heading ("Conclusion", "Final thoughts") is part of the closing.

Without numbered items, headings one level under a heading that announces a list ("Tips",
"5 reasons", "Why?") are the items; in plain text, heading lines are, when their number
is exactly the one the title or a heading announces.
"""

from __future__ import annotations

from collections.abc import Sequence

from course.article.checks import median_of
from course.article.chunks import Chunk, ChunkKind
from course.article.items import Candidate, Family, split_title
from course.article.runs import ItemRun
from course.article.shapes import (
    GROUPING_NOUNS,
    OPENING_WORDS,
    announces,
    count_of,
    is_closing_heading,
    item_marker,
    quote,
)
from course.article.view import ArticleView
from course.errors import ArticleError

_INTRO_SHORTER = 4


class NoItemsError(ArticleError):
    """The article has nothing that reads as its items."""


_MIN_BOLD_ITEMS = 3
_MIN_BOLD_ANNOUNCED = 2
_MAX_BOLD_WORDS = 15  # an intro list's items are this many times shorter than the real ones


class Selection(ArticleView):
    """Picks the item lists among the article's numbered lists."""

    def items(self) -> list[ItemRun]:
        """The lists that are the course's items, in order; ArticleError when there are none
        or when one does not count from 1."""
        kept = (
            self._select(self.runs)
            or self._heading_items()
            or self._plain_heading_items()
            or self._bold_items()
        )
        if not kept:
            raise self._no_items()
        for run in kept:
            self._check_start(run)
        return kept

    def _select(self, runs: Sequence[ItemRun]) -> list[ItemRun]:
        top = [run for run in runs if not run.nested]
        top = [run for run in top if not self._nested_in_other(run, top)]
        listed = [run for run in top if len(run.items) > 1 or self._announced_single(run)]
        if not listed:
            # An article of a single item.
            listed = [run for run in top if run.first.number == 1 and self.item_words(run, 0) > 0][
                :1
            ]
        bodied = [run for run in listed if self._bodied(run)]
        if not bodied and listed:
            # One-line items throughout: still the items (their lessons are near-empty,
            # which `course build` reports), unless there is nothing that announces them.
            bodied = [max(listed, key=lambda run: len(run.items))]
        kept = sorted(bodied, key=lambda run: run.first.position)
        kept = [run for run in kept if not self._after_closing_heading(run, kept)]
        if len(kept) > 1 and self._is_intro_list(kept[0], kept[1]):
            kept = kept[1:]
        return _without_overlaps(kept)

    def _nested_in_other(self, run: ItemRun, others: Sequence[ItemRun]) -> bool:
        for other in others:
            if other is run or not _outranks(other, run):
                continue
            if other.first.position < run.first.position < other.last.position:
                return True
            if run.first.position > other.last.position and not self.boundary_between(
                other, other.last.position, run.first.position
            ):
                return True
        return False

    def _announced_single(self, run: ItemRun) -> bool:
        heading = self.part_heading(run, 0)
        return (
            heading is not None
            and announces(self.chunks[heading].text)
            and self.item_words(run, 0) > 0
        )

    def _bodied(self, run: ItemRun) -> bool:
        with_body = sum(1 for index in range(len(run.items)) if self.item_words(run, index) > 0)
        return with_body * 2 >= len(run.items)

    def _after_closing_heading(self, run: ItemRun, kept: Sequence[ItemRun]) -> bool:
        """A list after a heading that closes the article ("Conclusion"). Before the first
        list, a summary box ("Key takeaways", "Summary", "TL;DR") opens the article."""
        previous = [other for other in kept if other.last.position < run.first.position]
        start = max((other.last.chunk for other in previous), default=-1)
        return any(
            self.heading_like(chunk)
            and is_closing_heading(chunk.text)
            and (previous or not OPENING_WORDS.match(chunk.text.strip()))
            for chunk in self.chunks[start + 1 : run.first.chunk]
        )

    def _is_intro_list(self, intro: ItemRun, main: ItemRun) -> bool:
        """A list before the heading that announces the main list, shorter or all questions."""
        if self.announcing_heading(intro) is not None:
            return False
        if self.announcing_heading(main) is None:
            return False
        questions = sum(1 for c in intro.items if c.title.endswith("?")) * 2 > len(intro.items)
        intro_words = median_of(self.item_words(intro, i) for i in range(len(intro.items)))
        main_words = median_of(self.item_words(main, i) for i in range(len(main.items)))
        return questions or intro_words * _INTRO_SHORTER < main_words

    def _heading_items(self) -> list[ItemRun]:
        """Markdown: headings one level under a heading that announces a list."""
        if not self.explicit:
            return []
        sets: list[tuple[int, list[int]]] = []
        for index, chunk in enumerate(self.chunks):
            if chunk.is_heading and announces(chunk.text):
                children = self._child_headings(index, chunk.level)
                if len(children) >= 2:
                    sets.append((index, children))
        if not sets and announces(self.title):
            children = self._child_headings(-1, 0)
            if len(children) >= 2:
                sets.append((-1, children))
        # Prefer the innermost: a set whose span holds another set's heading gives way.
        chosen = [
            (parent, children)
            for parent, children in sets
            if not any(children[0] <= other <= children[-1] for other, _ in sets if other != parent)
        ]
        runs = []
        for _, children in chosen:
            family = Family(self.chunks[children[0]].level, "", "", False, False)
            items = [
                Candidate(
                    index,
                    -1,
                    number,
                    family,
                    self.chunks[index].text,
                    (),
                    self.chunks[index].line,
                    0,
                    False,
                    self.chunks[index].text,
                    self.chunks[index].runs,
                )
                for number, index in enumerate(children, start=1)
            ]
            runs.append(ItemRun(family, items))
        return runs

    def _child_headings(self, parent: int, level: int) -> list[int]:
        span: list[int] = []
        for index in range(parent + 1, len(self.chunks)):
            chunk = self.chunks[index]
            if chunk.is_heading and chunk.level <= level:
                break
            if chunk.is_heading:
                span.append(index)
        if not span:
            return []
        child_level = min(self.chunks[i].level for i in span)
        children = [i for i in span if self.chunks[i].level == child_level]
        while children and _opening_or_closing(self.chunks[children[0]].text, first=True):
            children.pop(0)
        while children and _opening_or_closing(self.chunks[children[-1]].text, first=False):
            children.pop()
        return children

    def _plain_heading_items(self) -> list[ItemRun]:
        """Plain text: as many heading lines as the title or a heading announces."""
        if self.explicit:
            return []
        announcers = [(-1, self.title)] + [
            (i, c.text) for i, c in enumerate(self.chunks) if self.plain_heading(c)
        ]
        for parent, text in announcers:
            counted = count_of(text)
            if counted is None:
                continue
            lines = [
                i
                for i in range(parent + 1, len(self.chunks))
                if self.plain_heading(self.chunks[i])
                and i + 1 < len(self.chunks)
                and not self.plain_heading(self.chunks[i + 1])
            ]
            while lines and is_closing_heading(self.chunks[lines[-1]].text):
                lines.pop()
            if len(lines) == counted[0]:
                family = Family(0, "", "", False, False)
                items = [
                    Candidate(
                        i,
                        -1,
                        number,
                        family,
                        self.chunks[i].text,
                        (),
                        self.chunks[i].line,
                        0,
                        False,
                        self.chunks[i].text,
                        self.chunks[i].runs,
                    )
                    for number, i in enumerate(lines, start=1)
                ]
                return [ItemRun(family, items)]
        return []

    def _bold_items(self) -> list[ItemRun]:
        """Paragraphs that open with a line all in bold ("**Keep it cool.**"), each with
        text after it: the items of a listicle that numbers nothing, three or more of them
        (two when the title announces a list)."""
        found = [
            index
            for index, chunk in enumerate(self.chunks)
            if chunk.kind is ChunkKind.PARAGRAPH and _bold_lead(chunk)
        ]
        found = [index for index in found if self._text_after(index, found)]
        if len(found) < (_MIN_BOLD_ANNOUNCED if announces(self.title) else _MIN_BOLD_ITEMS):
            return []
        family = Family(0, "", "", False, True)
        items = []
        for number, index in enumerate(found, start=1):
            chunk = self.chunks[index]
            title, rest = split_title(chunk.lines, chunk.line)
            items.append(
                Candidate(
                    index,
                    -1,
                    number,
                    family,
                    title,
                    rest,
                    chunk.line,
                    0,
                    False,
                    chunk.text,
                    chunk.runs,
                )
            )
        return [ItemRun(family, items)]

    def _text_after(self, index: int, found: Sequence[int]) -> bool:
        """Text of its own after a bold lead: in its paragraph, or before the next one."""
        if len(self.chunks[index].lines) > 1:
            return True
        following = self.chunks[index + 1] if index + 1 < len(self.chunks) else None
        return (
            following is not None
            and index + 1 not in found
            and following.kind in (ChunkKind.PARAGRAPH, ChunkKind.BLOCK, ChunkKind.LIST)
            and not (following.kind is ChunkKind.PARAGRAPH and _bold_lead(following))
        )

    def _no_items(self) -> ArticleError:
        return NoItemsError(
            f"{self.source}: no numbered items found; number the items in the article as "
            "`1) Title`, `1. Title`, `## 1. Title`, `#1 – Title` or `Step 1: Title`, or put "
            "them as headings under a heading that announces them (`## 5 tips`)"
        )

    def _check_start(self, run: ItemRun) -> None:
        first = run.first
        if run.descending:
            if run.last.number != 1:
                # "And the #1 reason is…" often closes a countdown in a sentence of its own.
                self.notes.add(
                    run.last.line,
                    f"this countdown ends at item {run.last.number}: "
                    f"{quote(run.last.source, 60)}; the text after it is that item's lesson "
                    "(give the last item its own numbered line to make it a lesson of its own)",
                )
        elif first.number != 1:
            raise ArticleError(
                f"{self.source}: line {first.line}: the list starts at item {first.number}: "
                f"{quote(first.source)}; number it from 1, or check that item 1 has its number "
                "and a blank line before it"
            )


def grouping_runs(runs: Sequence[ItemRun]) -> list[ItemRun]:
    """Numbered lines that head groups of items rather than being items: "Part 1:",
    "Chapter 2:" (a grouping noun), each (or all but one) with another list's items under
    it, numbered on from group to group or from 1 in each."""
    groupers = []
    for run in runs:
        if run.family.noun not in GROUPING_NOUNS or len(run.items) < 2:
            continue
        others = [
            candidate.position
            for other in runs
            if other is not run and len(other.items) > 1 and other.family.noun not in GROUPING_NOUNS
            for candidate in other.items
        ]
        starts = [candidate.position for candidate in run.items]
        ends = [*starts[1:], (1 << 30, 0)]
        filled = sum(
            1
            for start, end in zip(starts, ends, strict=True)
            if any(start < p < end for p in others)
        )
        if filled >= max(2, len(starts) - 1):
            groupers.append(run)
    return groupers


def _bold_lead(chunk: Chunk) -> bool:
    """A paragraph whose first line is all bold and short enough to be a title."""
    first = chunk.lines[0] if chunk.lines else ()
    text = "".join(run.text for run in first).strip()
    return (
        bool(text)
        and all(run.strong or not run.text.strip() for run in first)
        and len(text.split()) <= _MAX_BOLD_WORDS
        and item_marker(text) is None
        and not is_closing_heading(text)
    )


def _outranks(outer: ItemRun, inner: ItemRun) -> bool:
    if outer.first.is_heading and not inner.first.is_heading:
        return True
    if outer.first.is_heading and inner.first.is_heading:
        return outer.family.heading_level < inner.family.heading_level
    return not inner.first.is_heading and inner.first.indent > outer.first.indent


def _without_overlaps(runs: list[ItemRun]) -> list[ItemRun]:
    kept: list[ItemRun] = []
    for run in runs:
        if kept and run.first.position < kept[-1].last.position:
            continue
        kept.append(run)
    return kept


def _opening_or_closing(text: str, *, first: bool) -> bool:
    """An "Introduction" heading first, or a "Conclusion" last: not an item."""
    if first:
        return OPENING_WORDS.match(text.strip()) is not None
    return is_closing_heading(text)
