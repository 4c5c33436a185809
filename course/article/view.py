"""What the structure finders share: the article's chunks, its numbered lists, and what
its headings and items look like."""

from __future__ import annotations

from collections.abc import Sequence

from course.article.chunks import Chunk, ChunkKind, Notes
from course.article.runs import ItemRun
from course.article.shapes import announces, count_of, count_words, item_marker, reads_as_heading
from course.content import block_texts

Position = tuple[int, int]  # (chunk, entry); entry -1 is the whole chunk


class ArticleView:
    """The chunks after the title, with the article's numbered lists (`runs`)."""

    def __init__(
        self,
        chunks: Sequence[Chunk],
        title: str,
        markdown: bool,
        notes: Notes,
        source: str,
        runs: Sequence[ItemRun] = (),
        groups: frozenset[int] = frozenset(),
    ) -> None:
        self.chunks = chunks
        # Numbered lines that head a group of items ("Part 2: Method"): headings here.
        self.groups = groups
        self._group_chunks = {id(chunks[index]) for index in groups}
        self.title = title
        self.markdown = markdown
        # Markdown headings are explicit; Markdown without any (web copy with some **bold**)
        # has its headings as plain lines, like plain text.
        self.explicit = markdown and any(chunk.is_heading for chunk in chunks)
        self.notes = notes
        self.source = source
        self.runs = list(runs)

    def heading_nouns(self) -> tuple[str, ...]:
        nouns = []
        for chunk in self.chunks:
            if chunk.kind in (ChunkKind.HEADING, ChunkKind.PARAGRAPH) and len(chunk.lines) == 1:
                counted = count_of(chunk.text)
                if counted:
                    nouns.append(counted[1].lower().removesuffix("s"))
        counted = count_of(self.title)
        if counted:
            nouns.append(counted[1].lower().removesuffix("s"))
        return tuple(nouns)

    def boundary_between(self, outer: ItemRun, start: Position, end: Position) -> bool:
        """A heading between the two that ends the outer list's last item."""
        for index in range(start[0] + 1, end[0]):
            chunk = self.chunks[index]
            if chunk.is_heading and (
                not outer.first.is_heading or chunk.level <= outer.family.heading_level
            ):
                return True
            if not self.explicit and self.plain_heading(chunk) and announces(chunk.text):
                return True
        return False

    def item_words(self, run: ItemRun, index: int) -> int:
        """Words of an item's own text: what follows its title, up to the next candidate."""
        candidate = run.items[index]
        words = sum(count_words(text) for b in candidate.rest for text in block_texts(b))
        if candidate.entry >= 0:
            chunk = self.chunks[candidate.chunk]
            if candidate.entry < len(chunk.entries) - 1:
                return words
        following = self.following_candidate(candidate.position)
        stop = following[0] if following else len(self.chunks)
        for chunk in self.chunks[candidate.chunk + 1 : stop]:
            if chunk.is_heading and (
                not candidate.is_heading or chunk.level <= candidate.family.heading_level
            ):
                break
            words += count_words(chunk.text) + sum(
                count_words(t) for b in chunk.blocks for t in block_texts(b)
            )
        return words

    def following_candidate(self, position: Position) -> Position | None:
        later = [c.position for run in self.runs for c in run.items if c.position > position]
        return min(later) if later else None

    def announcing_heading(self, run: ItemRun) -> int | None:
        heading = self.part_heading(run, 0)
        if heading is not None and announces(self.chunks[heading].text):
            return heading
        return None

    def part_heading(self, run: ItemRun, floor: int) -> int | None:
        """The heading that announces a list, above its first item and below `floor`.

        Markdown: the nearest heading above the first item (shallower than heading items),
        unless it is a plain section heading ("Introduction") with text under it. Plain text:
        the last heading stating a count, else a heading line right above the first item.
        """
        first = run.first.chunk
        if self.explicit:
            for index in range(first - 1, floor - 1, -1):
                chunk = self.chunks[index]
                if not chunk.is_heading:
                    continue
                if run.first.is_heading:
                    # Heading items sit under a shallower heading, or under one of their own
                    # level that announces them ("## 4 reasons" above "## 1. …").
                    level = run.family.heading_level
                    if chunk.level > level or (chunk.level == level and not announces(chunk.text)):
                        continue
                    return index
                if announces(chunk.text) or not self.text_between(index, first):
                    return index
                return None
            return None
        counted = [
            i
            for i in range(floor, first)
            if self.plain_heading(self.chunks[i]) and count_of(self.chunks[i].text)
        ]
        if counted:
            return counted[-1]
        if first - 1 >= floor and self.plain_heading(self.chunks[first - 1]):
            return first - 1
        return None

    def text_between(self, start: int, end: int) -> bool:
        return any(c.kind is ChunkKind.PARAGRAPH for c in self.chunks[start + 1 : end])

    def heading_like(self, chunk: Chunk) -> bool:
        if self.explicit:
            return chunk.is_heading
        return self.plain_heading(chunk)

    def plain_heading(self, chunk: Chunk) -> bool:
        """A one-line paragraph that reads as a heading (and is not a numbered line, unless
        it heads a group of items)."""
        return (
            chunk.kind is ChunkKind.PARAGRAPH
            and len(chunk.lines) == 1
            and reads_as_heading(chunk.text)
            and (item_marker(chunk.text) is None or id(chunk) in self._group_chunks)
        )

    def is_group(self, chunk: Chunk) -> bool:
        return id(chunk) in self._group_chunks
