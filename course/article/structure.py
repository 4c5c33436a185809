"""Chunks -> the course's parts: which numbered lists are the items (`selection`), and
where every chunk goes around them (`sections`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from course.article.chunks import Chunk, ChunkKind, Entry, Notes
from course.article.inline import drop_prefix
from course.article.items import candidates
from course.article.runs import build_runs, number_unnumbered, renumber_all_ones
from course.article.sections import PartPlan, Sections, Structure
from course.article.selection import NoItemsError, Selection, grouping_runs
from course.article.shapes import ANSWER, count_of, count_words, item_marker
from course.article.view import ArticleView
from course.content import Inline, ListBlock, plain

__all__ = ["PartPlan", "Structure", "structure"]

_BULLET_ITEM_WORDS = 6
_QUESTION_MARK = re.compile(r"(?:Q|Question)\b")


def without_answer_marks(chunks: Sequence[Chunk]) -> list[Chunk]:
    """A Q&A's answers without their "A:": the answer right under a "Q:" line, in the same
    paragraph or the next one."""
    out = list(chunks)
    for index, chunk in enumerate(out):
        if (
            not chunk.lines
            or item_marker(chunk.text) is None
            or not _QUESTION_MARK.match(chunk.text)
        ):
            continue
        if len(chunk.lines) > 1 and ANSWER.match(plain(chunk.lines[1])):
            out[index] = replace(
                chunk, lines=(chunk.lines[0], _unmarked(chunk.lines[1]), *chunk.lines[2:])
            )
        elif index + 1 < len(out) and out[index + 1].lines and ANSWER.match(out[index + 1].text):
            following = out[index + 1]
            out[index + 1] = replace(
                following, lines=(_unmarked(following.lines[0]), *following.lines[1:])
            )
    return out


def _unmarked(line: Inline) -> Inline:
    match = ANSWER.match(plain(line))
    return drop_prefix(line, match.end()) if match else line


def structure(
    chunks: Sequence[Chunk], title: str, markdown: bool, notes: Notes, source: str
) -> Structure:
    noted = len(notes.items)
    try:
        return _structure(chunks, title, markdown, notes, source)
    except NoItemsError:
        listed = bullets_as_items(chunks, title)
        if listed is None:
            raise
        del notes.items[noted:]
        chunks, bullets = listed
        notes.add(
            bullets.line,
            f"nothing is numbered: the bulleted list of {len(bullets.entries)} entries, as many "
            "as the article counts, is read as the items",
        )
        return _structure(chunks, title, markdown, notes, source)


def bullets_as_items(chunks: Sequence[Chunk], title: str) -> tuple[list[Chunk], Chunk] | None:
    """The chunks with the one bulleted list that holds the items as a list of entries: as
    many entries as the title (or the line right above the list) counts, each with text of
    its own ("🕒 Keep a schedule – the body loves routine…")."""
    for index, chunk in enumerate(chunks):
        if chunk.kind is not ChunkKind.BLOCK or len(chunk.blocks) != 1:
            continue
        block = chunk.blocks[0]
        if not isinstance(block, ListBlock) or block.ordered or len(block.items) < 2:
            continue
        counts = [count_of(title)]
        if index and chunks[index - 1].lines:
            counts.append(count_of(chunks[index - 1].text))
        if not any(counted and counted[0] == len(block.items) for counted in counts):
            continue
        if sum(count_words(plain(item)) >= _BULLET_ITEM_WORDS for item in block.items) * 2 < len(
            block.items
        ):
            continue
        entries = tuple(
            Entry(number, (item,), (), block.line) for number, item in enumerate(block.items, 1)
        )
        listed = Chunk(ChunkKind.LIST, chunk.line, entries=entries, ordered_delimiter="-")
        return [*chunks[:index], listed, *chunks[index + 1 :]], listed
    return None


def _structure(
    chunks: Sequence[Chunk], title: str, markdown: bool, notes: Notes, source: str
) -> Structure:
    nouns = ArticleView(chunks, title, markdown, notes, source).heading_nouns()
    chunks = without_answer_marks(chunks)
    found = number_unnumbered(candidates(chunks, nouns))
    runs = build_runs(renumber_all_ones(found, notes), source, notes)
    groupers = grouping_runs(runs)
    runs = [run for run in runs if run not in groupers]
    groups = frozenset(candidate.chunk for run in groupers for candidate in run.items)
    kept = Selection(chunks, title, markdown, notes, source, runs, groups).items()
    return Sections(chunks, title, markdown, notes, source, runs, kept, groups).structure()
