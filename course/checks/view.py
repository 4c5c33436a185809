"""One email as a mail client would read it: headers, HTML and text parts, the raw source."""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser


@dataclass(frozen=True)
class MessageView:
    """What the tabs show, parsed from the exact bytes a subscriber receives."""

    headers: tuple[tuple[str, str], ...]
    html: str | None
    text: str | None
    raw: str
    size: int
    data: bytes

    def header(self, name: str) -> str:
        """The first header called `name` (any case), or ''."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), "")

    def has_header(self, name: str) -> bool:
        return any(key.lower() == name.lower() for key, _ in self.headers)


def view_message(data: bytes) -> MessageView:
    """Parse an .eml with the stdlib parser, as a mail client would."""
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)  # policy.default always builds EmailMessage
    return MessageView(
        headers=tuple((key, str(value)) for key, value in message.items()),
        html=_body(message, "html"),
        text=_body(message, "plain"),
        raw=data.decode("utf-8", errors="replace"),
        size=len(data),
        data=data,
    )


def _body(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None:
        return None
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # an unknown charset or a broken transfer encoding
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
    return str(content)
