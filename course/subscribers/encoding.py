"""Which encoding a list export is in: UTF-8 (with or without a BOM), UTF-16 with a BOM, or a
confident guess by charset-normalizer, which the report names.

The file is checked as a stream, never read whole. Only lines with non-ASCII bytes tell
encodings apart, so those (up to a bound) are what charset-normalizer gets to judge.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from charset_normalizer import from_bytes

from course.errors import SubscribersError

_CHUNK: Final = 1 << 20
_SAMPLE_MAX: Final = 256 * 1024
# At most this share of "chaos" (charset-normalizer's measure of unlikely text) is confident.
_CONFIDENT_CHAOS: Final = 0.1
# Excel on a Western-language Windows writes cp1252, by far the most common encoding of an
# export that is not UTF-8. The few non-ASCII names of a list are too little text for
# charset-normalizer to tell Western code pages apart (it rates cp775 over cp1252 for
# "René Côté"), so a preferred code page that decodes the sample with confidence wins.
_PREFERRED: Final = ("cp1252", "iso8859_15", "latin_1")


@dataclass(frozen=True)
class Decoding:
    """The codec to read the file with, and a note for the report ('' when it is certain)."""

    encoding: str
    note: str = ""


def choose_encoding(path: Path) -> Decoding:
    """Decide how to decode the file at path; SubscribersError if nothing fits with confidence."""
    try:
        with path.open("rb") as file:
            return _choose(path, file)
    except OSError as error:
        raise SubscribersError(unreadable(path, error)) from None


def unreadable(path: Path, error: OSError) -> str:
    """The message for a file the OS will not give us."""
    return f"{path}: cannot read the subscribers file ({error.strerror}); check the path"


def _choose(path: Path, file: BinaryIO) -> Decoding:
    head = file.read(4)
    if head.startswith(codecs.BOM_UTF8):
        return Decoding("utf-8-sig")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return Decoding("utf-16")
    file.seek(0)
    failure = _first_utf8_error(file)
    if failure is None:
        return Decoding("utf-8")
    file.seek(0)
    guess = _guess(_non_ascii_lines(file))
    if guess is None:
        line, byte = failure
        raise SubscribersError(
            f"{path}: not UTF-8 (byte 0x{byte:02x} on line {line}), and its encoding cannot be "
            "told for sure; export it as 'CSV UTF-8' or re-save it with UTF-8 encoding"
        )
    return Decoding(
        guess,
        f"the file is not UTF-8; read as {guess} (charset-normalizer's guess); "
        "export it as 'CSV UTF-8' to be sure of every name",
    )


def _first_utf8_error(file: BinaryIO) -> tuple[int, int] | None:
    """(line, byte) of the first byte that is not UTF-8, or None if the whole file is."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 1
    while True:
        chunk = file.read(_CHUNK)
        # The error's position counts from the bytes the decoder held back from the last chunk.
        held = decoder.getstate()[0]
        try:
            decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as error:
            data = held + chunk
            return lines + data.count(b"\n", len(held), error.start), data[error.start]
        if not chunk:
            return None
        lines += chunk.count(b"\n")


def _non_ascii_lines(file: BinaryIO) -> bytes:
    """The lines that carry non-ASCII bytes, up to a bound: all an encoding guess can use."""
    sample = bytearray()
    for line in file:
        if not line.isascii():
            sample += line
            if len(sample) >= _SAMPLE_MAX:
                break
    return bytes(sample)


def _guess(sample: bytes) -> str | None:
    """A confident encoding for the sample, or None."""
    matches = from_bytes(sample)
    best = matches.best()
    if best is None or best.chaos > _CONFIDENT_CHAOS or best.encoding in ("utf_8", "ascii"):
        return None
    for preferred in _PREFERRED:
        for match in matches:
            if preferred in match.could_be_from_charset and match.chaos <= _CONFIDENT_CHAOS:
                return preferred
    return str(best.encoding)
