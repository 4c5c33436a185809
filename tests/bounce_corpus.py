"""The DSN/ARF/auto-reply corpus in tests/data/bounces/, with its placeholders filled in.

The messages are our own, written from RFC 3464/3834/5965 and the shapes Postfix, Exim,
Exchange/Office 365, Gmail and Yahoo send. Where a message carries one of our signed
tokens, the file has a placeholder, since the signature depends on the secret:

- `@@VERP:email:day@@`: our VERP return path for that subscriber and day;
- `@@FORGED:email:day@@`: the same shape, signed with another secret;
- `@@UNSUB:email@@`: that subscriber's unsubscribe token.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

CORPUS = Path(__file__).parent / "data" / "bounces"
PLACEHOLDER = re.compile(rb"@@(VERP|FORGED|UNSUB):([^:@]+@[^:@]+)(?::(\d+))?@@")

Signer = Callable[[str, str, int], str]  # (kind, email, day) -> text


def names() -> list[str]:
    return sorted(p.name for p in CORPUS.glob("*.eml"))


def load(name: str, sign: Signer) -> bytes:
    """The message with every placeholder replaced by what `sign` makes for it."""

    def fill(match: re.Match[bytes]) -> bytes:
        kind, email, day = match[1].decode(), match[2].decode(), int(match[3] or 0)
        return sign(kind, email, day).encode()

    return PLACEHOLDER.sub(fill, (CORPUS / name).read_bytes())


def plain(kind: str, email: str, day: int) -> str:
    """Stand-ins for tests that only classify: shaped like the real thing, signed by nobody."""
    if kind == "UNSUB":
        return "dW5zaWduZWQ.c2lnbmF0dXJl"
    return f"bounces+placeholder{day:02d}@example.com"
