"""The article's bytes -> text: UTF-8 (with or without BOM) first, else a confident guess.

Refused outright, before anything is decoded: a file over `MAX_BYTES` (read no further
than that, so memory stays bounded), an empty file, and binary files (NUL bytes, or a
PDF/Word/ZIP signature), each with a message that says what to do instead.
"""

from __future__ import annotations

import codecs
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from course.errors import ArticleError

# A long listicle is 100 KB; at 1 MB a course would be hundreds of emails.
MAX_BYTES = 1_000_000
_SIGNATURES = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a Word document or ZIP archive"),
    (b"\xd0\xcf\x11\xe0", "an old Word (.doc) document"),
    (b"{\\rtf", "an RTF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
)
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Characters a Western article in Windows-1252 is made of; anything else means the guess
# is not Windows-1252.
_WESTERN_PUNCTUATION = frozenset("’‘“”„–—…•€ ©®°·«»×÷¿¡§¶™‹›†‡‰")
_RESAVE = (
    "save it as UTF-8 (VS Code: 'Save with Encoding' > UTF-8; Notepad: Save As > "
    "Encoding: UTF-8; TextEdit: Plain Text, UTF-8) and try again"
)


@dataclass(frozen=True)
class Decoded:
    """The article's text, and a note when it was not UTF-8."""

    text: str
    note: str = ""


def read_article(path: Path) -> Decoded:
    """Read and decode the article; every refusal names the file, the cause and the fix."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as error:
        raise ArticleError(f"{path}: cannot read the article: {error.strerror or error}") from None
    if len(data) > MAX_BYTES:
        raise ArticleError(
            f"{path}: the article is over {MAX_BYTES // 1_000_000} MB; an article that long "
            "would make hundreds of emails. Split it into several courses, or check that "
            "course.article names the article and not another file"
        )
    return decode(data, str(path))


def decode(data: bytes, source: str) -> Decoded:
    """Bytes -> text, refusing binary and undecodable input with a fix."""
    if not data.strip():
        raise ArticleError(
            f"{source}: the article is empty; put the article's text in it (title, intro, "
            "then the numbered items)"
        )
    for signature, what in _SIGNATURES:
        if data.startswith(signature):
            raise ArticleError(
                f"{source}: this is {what}, not text; open it and save or export it as plain "
                "text (.txt) or Markdown (.md)"
            )
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return Decoded(data.decode(encoding), _note(source, encoding.upper()))
    nul = data.find(b"\0")
    if nul >= 0:
        raise ArticleError(
            f"{source}: byte {nul + 1}: not a text file (it contains NUL bytes); save the "
            "article as plain text (.txt) or Markdown (.md)"
        )
    try:
        return Decoded(data.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        return _guess(data, error, source)


def _guess(data: bytes, error: UnicodeDecodeError, source: str) -> Decoded:
    """Windows-1252 when it reads as Western text, else charset-normalizer's confident pick."""
    western = _as_windows_1252(data)
    if western is not None:
        return Decoded(western, _note(source, "Windows-1252 (cp1252)"))
    from charset_normalizer import from_bytes  # only for files that are not UTF-8

    best = from_bytes(data).best()
    if best is not None and best.chaos <= 0.1 and best.coherence >= 0.2:
        text = str(best)
        if not _has_controls(text):
            return Decoded(text, _note(source, best.encoding))
    line = data[: error.start].count(b"\n") + 1
    raise ArticleError(
        f"{source}: line {line}: not UTF-8 (byte 0x{data[error.start]:02x}), and its "
        f"encoding cannot be told with confidence; {_RESAVE}"
    )


def _as_windows_1252(data: bytes) -> str | None:
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return None
    for char in set(text):
        if char.isascii() or char in _WESTERN_PUNCTUATION:
            continue
        if not unicodedata.category(char).startswith("L"):
            return None
    return text


def _has_controls(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f" for ch in text)


def _note(source: str, encoding: str) -> str:
    return (
        f"{source}: not UTF-8; read it as {encoding}. Check the emails' accents and quotation "
        "marks, and save the file as UTF-8 to silence this note"
    )
