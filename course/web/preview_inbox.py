"""The inbox pages' logic: newest first, filtered by recipient and day, one page at a time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from course.backends.inbox import InboxMessage, read_inbox

PAGE_SIZE = 50
# A filter has to read headers until it has a page; stop there rather than read a huge inbox.
SCAN_LIMIT = 10_000


@dataclass(frozen=True)
class InboxFilter:
    """What the operator asked to see: a part of the recipient's address, and a day."""

    recipient: str = ""
    day: int | None = None

    @property
    def active(self) -> bool:
        return bool(self.recipient) or self.day is not None

    def matches(self, message: InboxMessage) -> bool:
        if self.day is not None and message.day != self.day:
            return False
        return self.recipient.casefold() in message.recipient.casefold()


@dataclass(frozen=True)
class InboxPage:
    """One page of the listing, and whether there is more (or more unsearched)."""

    messages: tuple[InboxMessage, ...]
    page: int
    has_more: bool
    capped: bool


def inbox_page(directory: Path, wanted: InboxFilter, page: int) -> InboxPage:
    """Page `page` (from 1) of the messages `wanted` matches, newest first."""
    end = page * PAGE_SIZE
    if wanted.active:
        scanned = read_inbox(directory, limit=SCAN_LIMIT)
        found = [m for m in scanned if wanted.matches(m)]
        capped = len(scanned) == SCAN_LIMIT
    else:
        found, capped = read_inbox(directory, limit=end + 1), False
    return InboxPage(tuple(found[end - PAGE_SIZE : end]), page, len(found) > end, capped)


def find_message(directory: Path, key: str) -> Path | None:
    """The file of the message called `key` in new/ or cur/; never anything outside them."""
    if not key or key.startswith(".") or any(c in key for c in "/\\\0"):
        return None
    for sub in ("new", "cur"):
        path = directory / sub / key
        if path.is_file():
            return path
    return None
