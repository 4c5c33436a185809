"""Wire-format checks every backend runs before it stores or sends anything."""

from __future__ import annotations

import re
from collections.abc import Iterable

from course.backends.base import OutgoingMessage
from course.errors import DeliveryError

CRLF = b"\r\n"
# RFC 5322 §2.1.1: a line is at most 998 octets, not counting the CRLF.
MAX_LINE_OCTETS = 998
# RFC 5321 §4.5.3.1.3: a path is at most 256 octets including the angle brackets.
MAX_ADDRESS_OCTETS = 254

# RFC 5322 atext, widened by RFC 6531 to UTF-8 (minus C1 controls and lone surrogates).
_NON_ASCII = "\u00a0-\ud7ff\ue000-\U0010ffff"
_ATEXT = rf"[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~\-{_NON_ASCII}]"
_QUOTED = rf'"(?:[\x20\x21\x23-\x5b\x5d-\x7e{_NON_ASCII}]|\\[\x20-\x7e])*"'
_LABEL = rf"[A-Za-z0-9{_NON_ASCII}](?:[A-Za-z0-9\-{_NON_ASCII}]*[A-Za-z0-9{_NON_ASCII}])?"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*|\[[\x21-\x5a\x5e-\x7e]+\]"
_ADDR_SPEC = re.compile(rf"(?:{_ATEXT}+(?:\.{_ATEXT}+)*|{_QUOTED})@(?:{_DOMAIN})")
# RFC 5322 msg-id, printable ASCII only: `<left@right>` with no brackets or spaces inside.
_MSG_ID = re.compile(r"<[!-;=?A-~]+@[!-;=?A-~]+>")
# A header field starts with a name of printable ASCII except the colon.
_FIELD_START = re.compile(rb"[!-9;-~]+:")
# RFC 5322 §2.2.3: unfolding removes a CRLF that is followed by whitespace.
_FOLD = re.compile(rb"\r\n(?=[ \t])")


def check_batch(messages: Iterable[OutgoingMessage]) -> None:
    """Check every message before any is stored, so a bad batch leaves no trace."""
    for message in messages:
        check_wire_format(message)


class WireRefusal(DeliveryError):
    """The wire check refused one message; the deliverer fails that delivery, not the run."""

    def __init__(self, message: OutgoingMessage, reason: str) -> None:
        # repr() keeps an injected CRLF from splitting the log line that shows this error.
        super().__init__(
            f"refused message {message.message_id!r} to {message.recipient!r}: {reason}"
        )
        self.message = message
        self.reason = reason


def check_wire_format(message: OutgoingMessage) -> None:
    """Raise WireRefusal unless the message is what a strict MTA would accept."""
    reason = wire_problem(message)
    if reason:
        raise WireRefusal(message, reason)


def wire_problem(message: OutgoingMessage) -> str:
    """The first thing wrong with the message, or "" when it is fine."""
    return (
        _address_problem("sender", message.sender)
        or _address_problem("recipient", message.recipient)
        or _message_id_problem(message.message_id)
        or _data_problem(message.data)
        or _header_problem(message.data, message.message_id)
    )


def _address_problem(role: str, address: str) -> str:
    """Why the envelope address is not a single clean addr-spec, or ""."""
    if not isinstance(address, str) or not _ADDR_SPEC.fullmatch(address):
        return f"{role} is not a plain addr-spec"
    if len(address.encode()) > MAX_ADDRESS_OCTETS:
        return f"{role} is longer than {MAX_ADDRESS_OCTETS} octets"
    return ""


def _message_id_problem(message_id: str) -> str:
    """Why the envelope message id is not a `<left@right>` msg-id, or ""."""
    if not isinstance(message_id, str) or not _MSG_ID.fullmatch(message_id):
        return "message_id is not of the form <left@right>"
    return ""


def _data_problem(data: bytes) -> str:
    """Why the bytes cannot go on the wire as they are, or ""."""
    # bytearray and memoryview are refused too: a stored message must not change later.
    if not isinstance(data, bytes):
        return f"data is {type(data).__name__}, not bytes"
    if b"\x00" in data:
        return "data contains a NUL octet"
    crlf = data.count(CRLF)
    if data.count(b"\r") != crlf or data.count(b"\n") != crlf:
        return "data has a bare CR or LF; every line must end with CRLF"
    if _has_long_line(data):
        longest = max(map(len, data.split(CRLF)))
        return f"data has a {longest}-octet line; the limit is {MAX_LINE_OCTETS}"
    return ""


def _has_long_line(data: bytes) -> bool:
    """Whether any line exceeds the limit, given that every line break is CRLF.

    Hops from line break to line break a window at a time instead of splitting the message
    into lines: the split was most of the cost of checking a message on every send.
    """
    window = MAX_LINE_OCTETS + 2  # a line's octets plus its CR, with the LF outside
    position = 0
    while len(data) - position > MAX_LINE_OCTETS:
        newline = data.rfind(b"\n", position, position + window)
        if newline < 0:
            return True
        position = newline + 1
    return False


def _header_problem(data: bytes, message_id: str) -> str:
    """Why the header section is malformed or disagrees with the envelope, or ""."""
    head, blank, _ = data.partition(CRLF + CRLF)
    if not blank:
        return "no blank line separates the header from the body"
    lines = head.split(CRLF)
    if lines[0][:1] in (b" ", b"\t"):
        return "the header starts with a continuation line"
    bad = next((line for line in lines if not _is_header_line(line)), None)
    if bad is not None:
        return f"malformed header line {bad[:40]!r}"
    return _message_id_header_problem(head, message_id)


def _is_header_line(line: bytes) -> bool:
    """True for `Name: value` or a folded continuation of the previous field."""
    return line[:1] in (b" ", b"\t") or _FIELD_START.match(line) is not None


def _message_id_header_problem(head: bytes, message_id: str) -> str:
    """Why the Message-ID header is missing, repeated or different from the envelope, or ""."""
    found = _field_values(head, b"message-id")
    if len(found) != 1:
        return f"expected one Message-ID header, found {len(found)}"
    if found[0] != message_id.encode():
        return f"Message-ID header {found[0].decode(errors='replace')!r} differs from message_id"
    return ""


def _field_values(head: bytes, name: bytes) -> list[bytes]:
    """The unfolded, stripped values of every field called name (lower case)."""
    # The lines are already known to be well formed, so unfolding and splitting is all the
    # parsing needed, and several times faster than the email package on every send.
    fields = (field.partition(b":") for field in _FOLD.sub(b"", head).split(CRLF))
    return [value.strip() for field, _, value in fields if field.lower() == name]
