"""The article's bytes -> text: UTF-8 (with or without BOM) first, else a confident guess.

Refused outright, before anything is decoded: a file over `MAX_BYTES` (read no further
than that, so memory stays bounded), an empty file, and binary files (NUL bytes, or a
PDF/Word/ZIP signature), each with a message that says what to do instead.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from course.errors import ArticleError

if TYPE_CHECKING:
    from charset_normalizer import CharsetMatch

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
# Over this share of accented letters, text is not Western European in Windows-1252.
_MAX_ACCENTED_SHARE = 0.3
_SAMPLE_BYTES = 4096
_MIN_NUL_SHARE = 0.6
# Multi-byte encodings of Chinese, Japanese and Korean: decoding them without error is
# itself strong evidence, where charset-normalizer's language coherence stays low.
_CJK_ENCODINGS = frozenset(
    (
        "cp932",
        "shift_jis",
        "euc_jp",
        "iso2022_jp",
        "gb2312",
        "gbk",
        "gb18030",
        "big5",
        "big5hkscs",
        "cp950",
        "euc_kr",
        "cp949",
        "johab",
    )
)
_CJK_MAX_CHAOS = 0.05
_CJK_MIN_CHARS = 20
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
        wide = _utf16_without_bom(data)
        if wide is not None:
            return Decoded(data.decode(wide), _note(source, f"{wide.upper()} (no byte order mark)"))
        raise ArticleError(
            f"{source}: byte {nul + 1}: not a text file (it contains NUL bytes); save the "
            "article as plain text (.txt) or Markdown (.md)"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        return _guess(data, error, source)
    repaired, count = repair_mojibake(text)
    if count:
        return Decoded(
            repaired,
            f"{source}: {count} characters were UTF-8 read as Windows-1252 before the text was "
            "copied (like `â€™` for `’`); repaired. Check the emails' quotation marks and accents",
        )
    return Decoded(text)


def _byte(char: str) -> int:
    return ord(char) if ord(char) < 0x100 else char.encode("cp1252")[0]


# What a UTF-8 continuation byte (0x80-0xBF) looks like once read as Windows-1252 or Latin-1.
_CONTINUATION = "".join(
    sorted(
        {chr(b) for b in range(0x80, 0xC0)}
        | {bytes([b]).decode("cp1252", "ignore") for b in range(0x80, 0xC0)} - {""}
    )
)
_CONT = "[" + re.escape(_CONTINUATION) + "]"
_LEAD = re.compile("[\u00c2-\u00f4]")
_MOJIBAKE = re.compile(
    rf"[\u00c2-\u00df]{_CONT}|[\u00e0-\u00ef]{_CONT}{{2}}|[\u00f0-\u00f4]{_CONT}{{3}}"
)


def repair_mojibake(text: str) -> tuple[str, int]:
    """Text whose UTF-8 was once read as Windows-1252 (`â€™`, `Ã©`) and saved again, put
    back; (text, characters repaired). Only when there are two or more such sequences, or
    one that is unmistakable (`â€`): a lone `Ã©` could be meant."""
    if text.isascii() or not _LEAD.search(text):
        return text, 0
    found = list(_MOJIBAKE.finditer(text))
    if not found or (len(found) < 2 and "€" not in found[0][0]):
        return text, 0
    pieces: list[str] = []
    position = 0
    repaired = 0
    for match in found:
        try:
            fixed = bytes(_byte(char) for char in match[0]).decode("utf-8")
        except (UnicodeDecodeError, UnicodeEncodeError):
            continue
        if not _plausible(fixed):
            continue
        pieces.append(text[position : match.start()])
        pieces.append(fixed)
        position = match.end()
        repaired += 1
    pieces.append(text[position:])
    return ("".join(pieces), repaired) if repaired else (text, 0)


def _plausible(char: str) -> bool:
    """A character a Western, Greek or Cyrillic text or an emoji would hold, not a rare
    script that a German "ß“" would make."""
    point = ord(char)
    return (
        0xA0 <= point <= 0x24F
        or 0x370 <= point <= 0x4FF
        or 0x2000 <= point <= 0x2BFF
        or point >= 0x1F000
    )


def _guess(data: bytes, error: UnicodeDecodeError, source: str) -> Decoded:
    """Windows-1252 when it reads as Western text, else charset-normalizer's confident pick."""
    western = _as_windows_1252(data)
    if western is not None:
        return Decoded(western, _note(source, "Windows-1252 (cp1252)"))
    from charset_normalizer import from_bytes  # only for files that are not UTF-8

    best = from_bytes(data).best()
    if best is not None and best.chaos <= 0.1:
        text = str(best)
        confident = best.coherence >= 0.2 or _reads_as_cjk(best.encoding, best, text)
        if confident and not _has_controls(text):
            return Decoded(text, _note(source, best.encoding))
    line = data[: error.start].count(b"\n") + 1
    raise ArticleError(
        f"{source}: line {line}: not UTF-8 (byte 0x{data[error.start]:02x}), and its "
        f"encoding cannot be told with confidence; {_RESAVE}"
    )


def _reads_as_cjk(encoding: str, guess: CharsetMatch, text: str) -> bool:
    """A multi-byte Chinese, Japanese or Korean encoding that decodes into a real amount
    of such text: charset-normalizer's coherence stays low for these even when right."""
    if encoding not in _CJK_ENCODINGS or guess.chaos > _CJK_MAX_CHAOS:
        return False
    wide = sum(1 for char in text if "\u3040" <= char <= "\u9fff" or "\uac00" <= char <= "\ud7af")
    return wide >= _CJK_MIN_CHARS


def _as_windows_1252(data: bytes) -> str | None:
    """The text as Windows-1252, if it reads as a Western text: mostly ASCII letters with
    some accented ones. Cyrillic or Greek in their own code pages also decode as letters
    here ("ñîâåòîâ"), but then nearly every letter is accented."""
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return None
    for char in set(text):
        if char.isascii() or char in _WESTERN_PUNCTUATION:
            continue
        if not unicodedata.category(char).startswith("L"):
            return None
    letters = sum(1 for char in text if char.isalpha())
    accented = sum(1 for char in text if char.isalpha() and not char.isascii())
    if letters and accented / letters > _MAX_ACCENTED_SHARE:
        return None
    return text


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 saved without a byte order mark: a NUL in every other byte of mostly-ASCII
    text (odd bytes for little-endian, even for big-endian)."""
    sample = data[: _SAMPLE_BYTES - _SAMPLE_BYTES % 2]
    if len(sample) < 2:
        return None
    pairs = len(sample) // 2
    for encoding, offset in (("utf-16-le", 1), ("utf-16-be", 0)):
        nuls = sample[offset::2].count(0)
        if nuls >= pairs * _MIN_NUL_SHARE and sample[1 - offset :: 2].count(0) == 0:
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                return None
            return encoding if not _has_controls(text) else None
    return None


def _has_controls(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f" for ch in text)


def _note(source: str, encoding: str) -> str:
    return (
        f"{source}: not UTF-8; read it as {encoding}. Check the emails' accents and quotation "
        "marks, and save the file as UTF-8 to silence this note"
    )
