"""Chunks -> the course's parts: which numbered lists are the items (`selection`), and
where every chunk goes around them (`sections`)."""

from __future__ import annotations

from collections.abc import Sequence

from course.article.chunks import Chunk, Notes
from course.article.items import candidates
from course.article.runs import build_runs, renumber_all_ones
from course.article.sections import PartPlan, Sections, Structure
from course.article.selection import Selection, grouping_runs
from course.article.view import ArticleView

__all__ = ["PartPlan", "Structure", "structure"]


def structure(
    chunks: Sequence[Chunk], title: str, markdown: bool, notes: Notes, source: str
) -> Structure:
    nouns = ArticleView(chunks, title, markdown, notes, source).heading_nouns()
    runs = build_runs(renumber_all_ones(candidates(chunks, nouns), notes), source)
    groupers = grouping_runs(runs)
    runs = [run for run in runs if run not in groupers]
    groups = frozenset(candidate.chunk for run in groupers for candidate in run.items)
    kept = Selection(chunks, title, markdown, notes, source, runs, groups).items()
    return Sections(chunks, title, markdown, notes, source, runs, kept, groups).structure()
