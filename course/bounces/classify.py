"""One message from the bounce mailbox -> a Report. Pure: bytes in, data out.

In order, first match wins:

1. an ARF feedback report (RFC 5965, `message/feedback-report`): a complaint;
2. a delivery status notification (RFC 3464 `message/delivery-status`, or the RFC 6533
   `message/global-delivery-status` that SMTPUTF8 MTAs send): each recipient's Action and
   Status say whether the failure is permanent, temporary (`delayed`, 4.x.x) or a policy
   refusal (5.7.x, the same rule the SMTP backend applies);
3. an automatic reply (RFC 3834 `Auto-Submitted`, the common X- headers, out-of-office
   subjects), unless it comes from a mail system;
4. flufl.bounce's detectors for the formats MTAs use instead of RFC 3464 (Exim's
   `X-Failed-Recipients`, qmail, Yahoo, old Exchange...);
5. anything else is unrecognised, with a hint of whether it looks like a bounce and the first
   status code in its text, for the VERP fallback and for the operator.

Nothing here knows the subscribers: a Report only says which addresses a message names.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import replace
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr

from flufl.bounce import all_failures

from course.bounces.report import Failure, FailureKind, Report, ReportKind

LOG = logging.getLogger("course.bounces")
# flufl.bounce logs each detector it runs at INFO, and one that trips with a traceback at
# ERROR; the one line below says what matters.
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)

# A bounce that returns a whole lesson is ~100 KB; anything past this is the returned message's
# tail, and reading it only costs time.
MAX_MESSAGE_BYTES = 1 << 20
MAX_TEXT_CHARS = 64_000
MAX_DIAGNOSTIC_CHARS = 300

STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
RETURNED_TYPES = frozenset(
    {"message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers"}
)
SUCCESS_ACTIONS = ("delivered", "relayed", "expanded")
COMPLAINT_TYPES = frozenset({"abuse", "fraud"})
# Where the bounce's own envelope recipient (our return path, with its VERP token) shows up.
ENVELOPE_HEADERS = (
    "delivered-to",
    "x-original-to",
    "envelope-to",
    "x-envelope-to",
    "x-rcpt-to",
    "original-to",
    "to",
)

ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
REPLY_CODE = re.compile(r"(?<![\d.])([45]\d\d)(?=[ :-]|$)", re.MULTILINE)
RECEIVED_FOR = re.compile(r"\bfor\s+<([^<>\s]+@[^<>\s]+)>", re.IGNORECASE)
ANGLE_URL = re.compile(r"<([^<>\s]+)>")
MESSAGE_ID = re.compile(r"<[^<>\s@]+@[^<>\s]+>")
DAEMON_LOCAL = re.compile(
    r"^(mailer[-_.]?daemon|mail[-_.]?daemon|postmaster|microsoftexchange[0-9a-f]*)$", re.IGNORECASE
)
DAEMON_NAME = re.compile(r"mail delivery (system|subsystem)|system administrator", re.IGNORECASE)
BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (status notification|failure|has failed|incomplete)"
    r"|failure notice|mail delivery failed|returned mail|returned to sender|non[- ]?delivery"
    r"|delivery (notification|problem)|unzustellbar|non remis|no se puede entregar",
    re.IGNORECASE,
)
WARNING_WORDS = re.compile(
    r"\bdelay(ed)?\b|\bwarning\b|still being retried|will (continue|retry|be retried)"
    r"|not yet been delivered|delivery incomplete",
    re.IGNORECASE,
)
AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ _-]?(reply|response|answer)\b|autoreply|auto:|out of (the )?office"
    r"|ooo\b|on vacation|vacation reply|abwesenheit|réponse automatique|respuesta automática"
    r"|risposta automatica|automatisch antwoord|autosvar|automaattinen vastaus"
    r"|automatyczna odpowied)",
    re.IGNORECASE,
)
AUTO_FLAG_HEADERS = ("x-autoreply", "x-autorespond", "x-autoresponder", "x-auto-reply")


def classify(raw: bytes) -> Report:
    """What this message is and whom it names."""
    try:
        msg = message_from_bytes(raw[:MAX_MESSAGE_BYTES])
        return classify_message(msg)
    except RecursionError:
        # MIME nested deeper than the parser's recursion allows: nobody's bounce looks so.
        return Report(ReportKind.UNKNOWN, note="nested too deeply to read")


def classify_message(msg: Message) -> Report:
    subject = header_text(msg, "subject")
    sender = parseaddr(header_text(msg, "from"))[1] or header_text(msg, "from")
    own = list(own_parts(msg))
    complaint = _complaint(own, subject, sender)
    if complaint is not None:
        return complaint
    report = Report(
        ReportKind.UNKNOWN,
        subject=subject,
        sender=sender,
        envelope=_unique(_envelope_addresses(msg, own)),
        message_ids=_unique(_referenced_ids(msg, own)),
    )
    if _is_read_receipt(msg, own):
        return replace(report, kind=ReportKind.NO_ACTION, note="a read receipt")
    text = plain_text(own)
    dsn = _delivery_status(own)
    if dsn is not None:
        failures, successes = dsn
        if failures:
            return replace(report, kind=ReportKind.DELIVERY, failures=failures)
        if successes:
            return replace(report, kind=ReportKind.NO_ACTION, note="a success notice")
        return replace(
            report,
            kind=ReportKind.DELIVERY,
            failures=(_unreadable_failure(subject, text),),
            note="a delivery report whose recipient fields could not be read",
        )
    if _is_auto_reply(msg, subject):
        return replace(report, kind=ReportKind.AUTO_REPLY)
    failures = _detected_failures(msg, subject, text)
    if failures:
        return replace(report, kind=ReportKind.DELIVERY, failures=failures)
    if _looks_like_bounce(msg, subject):
        return replace(
            report,
            kind=ReportKind.DELIVERY,
            failures=(_unreadable_failure(subject, text),),
            note="a bounce that names no recipient it could read",
        )
    return replace(report, note="no delivery report, complaint or auto-reply found")


def _unreadable_failure(subject: str, text: str) -> Failure:
    """A bounce whose recipient cannot be read: only a VERP token can say whose it is."""
    status = first_status(text)
    diagnostic = _status_near(text, "")[1] if status else ""
    if is_warning(subject) or WARNING_WORDS.search(text[:2000]):
        kind = FailureKind.TEMPORARY
    else:
        kind = failed_kind(enhanced_code(status), status)
    return Failure(kind, (), enhanced_code(status), diagnostic or "the bounce could not be read")


def is_warning(subject: str) -> bool:
    """A subject that calls the message a delay warning rather than a failure."""
    return bool(WARNING_WORDS.search(subject)) and not BOUNCE_SUBJECT.search(subject)


# --- walking the message -------------------------------------------------------------------------


def own_parts(msg: Message) -> Iterator[Message]:
    """Every part of the message itself, not descending into a returned message."""
    yield msg
    if content_type(msg) in RETURNED_TYPES or content_type(msg) in STATUS_TYPES:
        return
    payload = msg.get_payload()
    if msg.is_multipart() and isinstance(payload, list):
        for part in payload:
            if isinstance(part, Message):
                yield from own_parts(part)


def content_type(part: Message) -> str:
    return part.get_content_type().lower()


def header_text(msg: Message, name: str) -> str:
    """A header as readable text (RFC 2047 words decoded), on one line; "" if absent."""
    value = msg.get(name)
    if value is None:
        return ""
    text = _utf8(str(value))
    with contextlib.suppress(LookupError, UnicodeError, ValueError, AssertionError):
        text = str(make_header(decode_header(text)))
    return printable(" ".join(text.split()))


def printable(text: str) -> str:
    """Text from a stranger made safe to print: control characters (terminal escapes) go."""
    return "".join(ch if ch.isprintable() else "\ufffd" for ch in text)


def _utf8(text: str) -> str:
    """Raw 8-bit header bytes (SMTPUTF8, RFC 6532) as the UTF-8 they are meant to be.

    The parser keeps bytes it cannot decode as surrogate escapes; put them back and decode.
    """
    if not any("\udc80" <= ch <= "\udcff" for ch in text):
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


def plain_text(parts: Iterable[Message]) -> str:
    """The readable text of these parts (text/plain, else text/html without its tags)."""
    parts = list(parts)
    plain = [_decoded(p) for p in parts if content_type(p) == "text/plain"]
    if not any(plain):
        html = [_decoded(p) for p in parts if content_type(p) == "text/html"]
        plain = [re.sub(r"<[^>]*>", " ", h) for h in html]
    return "\n".join(plain)[:MAX_TEXT_CHARS]


def field_blocks(part: Message) -> list[Message]:
    """The header-style blocks of a report part (RFC 3464 section 2.1, RFC 5965 section 3.1).

    Python parses `message/delivery-status` into a list of blocks, other `message/*` types into
    one message whose body holds the rest, and a part with a transfer encoding not at all; so
    the text is put back together and split on blank lines here, the same way for all of them.
    """
    payload = part.get_payload()
    if isinstance(payload, list):
        text = "\n\n".join(_as_text(block) for block in payload if isinstance(block, Message))
    else:
        text = _decoded(part) or (payload if isinstance(payload, str) else "")
    text = text.replace("\r\n", "\n")
    blocks = [b for b in re.split(r"\n[ \t]*\n", text) if b.strip()]
    parser = HeaderParser()
    return [parser.parsestr(block.strip("\n") + "\n") for block in blocks]


def _as_text(msg: Message) -> str:
    headers = "\n".join(f"{k}: {v}" for k, v in msg.items())
    raw = msg.get_payload(decode=True)
    body = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
    return headers + ("\n\n" + body if body.strip() else "")


# --- complaints (RFC 5965) -----------------------------------------------------------------------


def _complaint(own: list[Message], subject: str, sender: str) -> Report | None:
    part = next((p for p in own if content_type(p) == "message/feedback-report"), None)
    if part is None:
        return None
    fields: dict[str, list[str]] = {}
    for block in field_blocks(part):
        for name, value in block.items():
            fields.setdefault(name.lower(), []).append(" ".join(str(value).split()))
    feedback_type = (fields.get("feedback-type") or ["abuse"])[0].lower()
    original = _returned_headers(own)
    complained = [_bare_address(v) for v in fields.get("original-rcpt-to", [])]
    envelope = [_bare_address(v) for v in fields.get("original-mail-from", [])]
    urls: list[str] = []
    if original is not None:
        complained += [a for _, a in getaddresses([header_text(original, "to")]) if "@" in a]
        envelope += [_bare_address(header_text(original, "return-path"))]
        urls = ANGLE_URL.findall(header_text(original, "list-unsubscribe"))
    if feedback_type in COMPLAINT_TYPES:
        kind, note = ReportKind.COMPLAINT, ""
    elif feedback_type == "not-spam":
        kind, note = ReportKind.NO_ACTION, "a not-spam report"
    else:
        # auth-failure (RFC 6591), virus, other: worth a person's look, not an unsubscribe.
        kind, note = ReportKind.UNKNOWN, f"a {feedback_type} feedback report"
    return Report(
        kind,
        subject=subject,
        sender=sender,
        complained=_unique(complained),
        envelope=_unique(envelope),
        unsubscribe_urls=tuple(urls),
        message_ids=_unique(_referenced_ids(None, own)),
        note=note,
    )


def _returned_headers(own: list[Message]) -> Message | None:
    """The headers of the returned original message, if the report includes them."""
    for part in own:
        kind = content_type(part)
        if kind in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        if kind in ("text/rfc822-headers", "message/global-headers"):
            return HeaderParser().parsestr(_decoded(part) or str(part.get_payload()))
    return None


def _is_read_receipt(msg: Message, own: list[Message]) -> bool:
    report_type = str(msg.get_param("report-type", "", header="content-type") or "").lower()
    return report_type == "disposition-notification" or any(
        content_type(p) == "message/disposition-notification" for p in own
    )


# --- delivery status notifications (RFC 3464) ----------------------------------------------------


def _delivery_status(own: list[Message]) -> tuple[tuple[Failure, ...], int] | None:
    """The failures a DSN reports, and how many recipients it reports delivered; None if no DSN."""
    parts = [p for p in own if content_type(p) in STATUS_TYPES]
    if not parts:
        return None
    failures: list[Failure] = []
    successes = 0
    for part in parts:
        for block in field_blocks(part):
            if not any(block.get(f) for f in ("final-recipient", "original-recipient", "action")):
                continue  # the per-message block (Reporting-MTA, Arrival-Date...)
            action = header_text(block, "action").lower()
            if action.startswith(SUCCESS_ACTIONS):
                successes += 1
                continue
            failure = _recipient_failure(block, action)
            if failure is not None:
                failures.append(failure)
    return tuple(failures), successes


def _recipient_failure(block: Message, action: str) -> Failure | None:
    diagnostic = _one_line(header_text(block, "diagnostic-code"))
    diagnostic = re.sub(r"^[\w.-]+\s*;\s*", "", diagnostic)  # "smtp; 550 ..." -> "550 ..."
    status = enhanced_code(header_text(block, "status")) or enhanced_code(diagnostic)
    if action.startswith("delayed"):
        kind = FailureKind.TEMPORARY
    elif action.startswith(("failed", "error")) or status[:1] in ("4", "5"):
        # "error" is OpenSMTPD's non-standard word; an unknown action goes by its status.
        kind = failed_kind(status, diagnostic)
    else:
        return None
    addresses = []
    named_by = ""
    for field in ("original-recipient", "final-recipient", "x-actual-recipient"):
        address = _typed_address(header_text(block, field))
        if address:
            addresses.append(address)
            named_by = named_by or field.title()
    return Failure(kind, _unique(addresses), status, diagnostic, named_by)


def failed_kind(status: str, diagnostic: str = "") -> FailureKind:
    """Permanent, temporary or policy, from an RFC 3463 code (or a bare SMTP reply code)."""
    code = status or _reply_code(diagnostic)
    if code.startswith("4"):
        return FailureKind.TEMPORARY
    if code.startswith("5.7."):
        return FailureKind.POLICY
    return FailureKind.PERMANENT  # "Action: failed" is final, even without a readable code


def _typed_address(value: str) -> str:
    """`rfc822; user@example.com` -> the address; other address types (X.400...) -> ""."""
    kind, sep, address = value.partition(";")
    if not sep:
        kind, address = "rfc822", value  # seen in the wild: no type at all
    if kind.strip().lower() not in ("rfc822", "utf-8"):
        return ""
    return _bare_address(address)


def _bare_address(value: str) -> str:
    address = value.strip().strip("<>").strip()
    return address if "@" in address and " " not in address else ""


def enhanced_code(text: str) -> str:
    match = ENHANCED.search(text)
    return ".".join(match.groups()) if match else ""


def _reply_code(text: str) -> str:
    match = REPLY_CODE.search(text)
    return match[1] if match else ""


def first_status(text: str) -> str:
    """The first RFC 3463 code in the text, else the first SMTP reply code; "" if none."""
    return enhanced_code(text) or _reply_code(text)


def _one_line(text: str) -> str:
    return printable(" ".join(text.split()))[:MAX_DIAGNOSTIC_CHARS]


# --- automatic replies (RFC 3834) ----------------------------------------------------------------


def _is_auto_reply(msg: Message, subject: str) -> bool:
    if is_mail_system(msg) or BOUNCE_SUBJECT.search(subject):
        return False
    auto_submitted = header_text(msg, "auto-submitted").lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return True
    for name in AUTO_FLAG_HEADERS:
        if name in msg and header_text(msg, name).lower() not in ("no", "false", "0"):
            return True
    precedence = (header_text(msg, "precedence") + header_text(msg, "x-precedence")).lower()
    return "auto_reply" in precedence or bool(AUTO_SUBJECT.search(subject))


def is_mail_system(msg: Message) -> bool:
    """Whether the message comes from a mail system (MAILER-DAEMON, postmaster...)."""
    name, address = parseaddr(header_text(msg, "from"))
    return bool(DAEMON_LOCAL.match(address.partition("@")[0]) or DAEMON_NAME.search(name))


def _looks_like_bounce(msg: Message, subject: str) -> bool:
    return (
        is_mail_system(msg)
        or bool(BOUNCE_SUBJECT.search(subject))
        or content_type(msg) == "multipart/report"
        or header_text(msg, "return-path").strip() == "<>"
    )


# --- MTAs' own formats, through flufl.bounce -----------------------------------------------------


def _detected_failures(msg: Message, subject: str, text: str) -> tuple[Failure, ...]:
    try:
        temporary, permanent = all_failures(msg)
    except Exception as exc:
        # Third-party heuristics on arbitrary input: a detector that trips is no reason to
        # stop reading the mailbox; the message is left for the operator instead.
        LOG.warning("a bounce detector failed on %r: %s: %s", subject, type(exc).__name__, exc)
        return ()
    # Some delay warnings match flufl.bounce's permanent-failure patterns (an Exim warning
    # quoting "RCPT TO:<...>: 451 ..."); what the message calls itself wins.
    warning = is_warning(subject)
    listed = [str(v) for v in msg.get_all("x-failed-recipients", [])]
    failed = {address.lower() for _, address in getaddresses(listed)}
    failures = []
    found = [(a, False) for a in sorted(temporary)] + [(a, True) for a in sorted(permanent)]
    for raw_address, is_permanent in found:
        address = raw_address.decode("ascii", "replace")
        status, diagnostic = _status_near(text, address)
        if not is_permanent or warning:
            kind = FailureKind.TEMPORARY
        else:
            kind = failed_kind(status, diagnostic)
        named_by = "X-Failed-Recipients" if address.lower() in failed else "bounce text"
        failures.append(Failure(kind, (address,), status, diagnostic, named_by))
    return tuple(failures)


def _status_near(text: str, address: str) -> tuple[str, str]:
    """The status code and diagnostic line the text gives nearest after the address."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if address.lower() in line.lower()), 0)
    for line in lines[start : start + 12] + lines:
        status = first_status(line)
        if status:
            return enhanced_code(line), _one_line(line)
    return "", ""


def _envelope_addresses(msg: Message, own: list[Message]) -> Iterator[str]:
    for name in ENVELOPE_HEADERS:
        for value in msg.get_all(name, []):
            for _, address in getaddresses([str(value)]):
                if "@" in address:
                    yield address
    for value in msg.get_all("received", []):
        yield from RECEIVED_FOR.findall(str(value))
    for part in own:
        if content_type(part) in STATUS_TYPES:
            for block in field_blocks(part):
                sender = _typed_address(header_text(block, "x-postfix-sender"))
                if sender:
                    yield sender
    original = _returned_headers(own)
    if original is not None:
        returned = _bare_address(header_text(original, "return-path"))
        if returned:
            yield returned


def _referenced_ids(msg: Message | None, own: list[Message]) -> Iterator[str]:
    """The Message-IDs a report is about: the returned message's first, then the headers'."""
    original = _returned_headers(own)
    if original is not None:
        yield from MESSAGE_ID.findall(header_text(original, "message-id"))
    for part in own:
        if content_type(part) in STATUS_TYPES:
            for block in field_blocks(part):
                yield from MESSAGE_ID.findall(header_text(block, "x-original-message-id"))
    if msg is not None:
        for name in ("in-reply-to", "references"):
            yield from MESSAGE_ID.findall(header_text(msg, name))


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for value in values:
        if value and value.lower() not in seen:
            seen[value.lower()] = value
    return tuple(seen.values())
