"""Chunks -> the course's parts: which numbered lists are the items (`selection`), and
where every chunk goes around them (`sections`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from course.article.chunks import Chunk, Notes
from course.article.inline import drop_prefix
from course.article.items import candidates
from course.article.runs import build_runs, number_unnumbered, renumber_all_ones
from course.article.sections import PartPlan, Sections, Structure
from course.article.selection import Selection, grouping_runs
from course.article.shapes import ANSWER, item_marker
from course.article.view import ArticleView
from course.content import Inline, plain

__all__ = ["PartPlan", "Structure", "structure"]

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
    nouns = ArticleView(chunks, title, markdown, notes, source).heading_nouns()
    chunks = without_answer_marks(chunks)
    found = number_unnumbered(candidates(chunks, nouns))
    runs = build_runs(renumber_all_ones(found, notes), source)
    groupers = grouping_runs(runs)
    runs = [run for run in runs if run not in groupers]
    groups = frozenset(candidate.chunk for run in groupers for candidate in run.items)
    kept = Selection(chunks, title, markdown, notes, source, runs, groups).items()
    return Sections(chunks, title, markdown, notes, source, runs, kept, groups).structure()
