"""The bounce mailbox: a local Maildir or an IMAP folder over TLS.

Both give the messages not yet handled, and both move a message once it is handled, so
nothing is read twice and nothing is deleted:

| | Maildir | IMAP |
|---|---|---|
| waiting | `new/`, or `cur/` with neither S nor F | in the folder, neither \\Seen nor \\Flagged |
| processed | `cur/`, flag S (seen) | \\Seen, moved to `bounces.processed_folder` |
| left for the operator | `cur/`, flag F (flagged), not S | \\Flagged, left in the folder |

A message someone has read (S, \\Seen) is a person's business, not the processor's: a held
message the operator reads is theirs from then on, and so is one read before it was
processed (so keep the bounce mailbox for the course alone).
"""

from __future__ import annotations

import base64
import imaplib
import os
import re
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from course.bounces.classify import MAX_MESSAGE_BYTES
from course.config import BouncesSettings, ImapSettings
from course.errors import CourseError

MAILDIR_SUBDIRS = ("tmp", "new", "cur")
SEEN, FLAGGED = "S", "F"


class MailboxError(CourseError):
    """The bounce mailbox cannot be opened or read; the message names it."""


@dataclass(frozen=True, slots=True)
class MailboxMessage:
    """One message: where it is (`key`) and its first MAX_MESSAGE_BYTES bytes."""

    key: str
    data: bytes


class Mailbox(Protocol):
    """What the bounce processor needs from a mailbox."""

    label: str

    def waiting(self) -> Iterator[MailboxMessage]:
        """Messages not yet processed nor left for the operator, oldest first."""

    def processed(self, message: MailboxMessage) -> None:
        """Mark as seen and move out of the way."""

    def hold(self, message: MailboxMessage) -> None:
        """Leave for the operator: flagged, unread."""

    def held(self) -> Iterator[MailboxMessage]:
        """Messages left for the operator that nobody has dealt with yet."""

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def open_mailbox(settings: BouncesSettings, password: str = "") -> Mailbox:
    """The configured mailbox, opened (a Maildir is created when missing)."""
    if settings.imap is not None:
        return ImapMailbox(
            settings.imap,
            password=password,
            ca_file=settings.ca_file,
            processed_folder=settings.processed_folder,
            timeout=settings.timeout,
        )
    assert settings.maildir is not None
    return MaildirMailbox(settings.maildir)


def read_limited(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(MAX_MESSAGE_BYTES)


# --- Maildir ----------------------------------------------------------------------------------


class MaildirMailbox:
    """A Maildir that Postfix, Exim or Dovecot deliver the return path's mail into."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.label = f"maildir:{self.directory}"
        try:
            for sub in MAILDIR_SUBDIRS:
                (self.directory / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise MailboxError(f"{self.label}: cannot create the Maildir: {exc}") from None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        pass

    def waiting(self) -> Iterator[MailboxMessage]:
        fresh = [f"new/{name}" for name in self._names("new")]
        # A mail client that opened the Maildir moves new/ to cur/ without reading anything.
        untouched = [
            f"cur/{name}" for name in self._names("cur") if not {SEEN, FLAGGED} & set(_flags(name))
        ]
        yield from self._read(fresh + untouched)

    def held(self) -> Iterator[MailboxMessage]:
        names = [
            f"cur/{name}"
            for name in self._names("cur")
            if FLAGGED in _flags(name) and SEEN not in _flags(name)
        ]
        yield from self._read(names)

    def processed(self, message: MailboxMessage) -> None:
        self._move(message, SEEN)

    def hold(self, message: MailboxMessage) -> None:
        self._move(message, FLAGGED)

    def _names(self, sub: str) -> list[str]:
        try:
            names = [n for n in os.listdir(self.directory / sub) if not n.startswith(".")]
        except OSError as exc:
            raise MailboxError(f"{self.label}: cannot read {sub}/: {exc}") from None
        # Maildir names start with the delivery time in seconds: name order is arrival order.
        return sorted(names)

    def _read(self, keys: list[str]) -> Iterator[MailboxMessage]:
        for key in keys:
            try:
                data = read_limited(self.directory / key)
            except FileNotFoundError:
                continue  # another reader moved it first
            except OSError as exc:
                raise MailboxError(f"{self.label}: cannot read {key}: {exc}") from None
            yield MailboxMessage(key, data)

    def _move(self, message: MailboxMessage, flag: str) -> None:
        name = message.key.partition("/")[2]
        base, _, _ = name.partition(":")
        flags = "".join(sorted(set(_flags(name)) | {flag}))
        target = self.directory / "cur" / f"{base}:2,{flags}"
        try:
            os.rename(self.directory / message.key, target)
        except FileNotFoundError:
            pass  # another reader handled it: the same result
        except OSError as exc:
            raise MailboxError(f"{self.label}: cannot move {message.key}: {exc}") from None


def _flags(name: str) -> str:
    """The flags of a Maildir name `unique:2,FLAGS` ("" if it has none)."""
    _, sep, info = name.partition(":2,")
    return info if sep else ""


# --- IMAP -------------------------------------------------------------------------------------


class ImapMailbox:
    """A folder on an IMAP server, over TLS verified as for SMTP (system CAs, or `ca_file`)."""

    def __init__(
        self,
        settings: ImapSettings,
        *,
        password: str,
        ca_file: Path | None,
        processed_folder: str,
        timeout: float,
    ) -> None:
        self.settings = settings
        self.label = (
            f"imaps://{settings.username}@{settings.host}:{settings.port}/{settings.folder}"
        )
        self._processed_folder = processed_folder
        self._folder_ready = False
        context = _tls_context(ca_file)
        try:
            self._imap = imaplib.IMAP4_SSL(
                settings.host, settings.port, ssl_context=context, timeout=timeout
            )
        except ssl.SSLCertVerificationError as exc:
            raise MailboxError(
                f"{self.label}: the server's certificate does not verify ({exc.verify_message}); "
                "for a private CA set bounces.ca_file"
            ) from None
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailboxError(f"{self.label}: cannot connect: {_reason(exc)}") from None
        try:
            self._imap.login(settings.username, password)
            reply = self._command("CAPABILITY", self._imap.capability)
            self._capabilities = set(_text(reply[0]).upper().split())
            status, data = self._imap.select(encode_folder(settings.folder))
            if status != "OK":
                raise MailboxError(f"{self.label}: cannot open the folder: {_text(data)}")
        except imaplib.IMAP4.error as exc:
            self._imap.shutdown()
            raise MailboxError(f"{self.label}: login refused: {_reason(exc)}") from None
        except (OSError, MailboxError):
            self._imap.shutdown()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._imap.close()
            self._imap.logout()
        except (OSError, imaplib.IMAP4.error):
            self._imap.shutdown()

    def waiting(self) -> Iterator[MailboxMessage]:
        yield from self._fetch(self._search("UNSEEN UNFLAGGED UNDELETED"))

    def held(self) -> Iterator[MailboxMessage]:
        yield from self._fetch(self._search("FLAGGED UNSEEN UNDELETED"))

    def processed(self, message: MailboxMessage) -> None:
        self._ensure_processed_folder()
        folder = encode_folder(self._processed_folder)
        self._uid("STORE", message.key, "+FLAGS.SILENT", r"(\Seen)")
        if "MOVE" in self._capabilities:
            self._uid("MOVE", message.key, folder)
            return
        # RFC 3501 without MOVE: copy, then expunge only this message (UIDPLUS when offered).
        self._uid("COPY", message.key, folder)
        self._uid("STORE", message.key, "+FLAGS.SILENT", r"(\Deleted)")
        if "UIDPLUS" in self._capabilities:
            self._uid("EXPUNGE", message.key)
        else:
            self._command("EXPUNGE", self._imap.expunge)

    def hold(self, message: MailboxMessage) -> None:
        self._uid("STORE", message.key, "+FLAGS.SILENT", r"(\Flagged)")

    def _search(self, criteria: str) -> list[str]:
        data = self._uid("SEARCH", criteria)
        return [uid.decode() for uid in (data[0] or b"").split()] if data else []

    def _fetch(self, uids: list[str]) -> Iterator[MailboxMessage]:
        for uid in uids:
            # PEEK: reading must not set \Seen; the partial fetch bounds what a huge message costs.
            data = self._uid("FETCH", uid, f"(BODY.PEEK[]<0.{MAX_MESSAGE_BYTES}>)")
            body = next((item[1] for item in data if isinstance(item, tuple)), None)
            if isinstance(body, bytes):
                yield MailboxMessage(uid, body)

    def _ensure_processed_folder(self) -> None:
        if self._folder_ready:
            return
        status, data = self._imap.create(encode_folder(self._processed_folder))
        # NO [ALREADYEXISTS] (RFC 5530), or plain NO from servers without response codes.
        if status != "OK" and b"exist" not in b" ".join(d for d in data if isinstance(d, bytes)):
            raise MailboxError(
                f"{self.label}: cannot create the folder {self._processed_folder!r}: {_text(data)}"
            )
        self._folder_ready = True

    def _uid(self, command: str, *args: str) -> list[Any]:
        return self._command(f"UID {command}", lambda: self._imap.uid(command, *args))

    def _command(self, what: str, call: Callable[[], tuple[str, list[Any]]]) -> list[Any]:
        try:
            status, data = call()
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailboxError(f"{self.label}: {what} failed: {_reason(exc)}") from None
        if status != "OK":
            raise MailboxError(f"{self.label}: {what} refused: {_text(data)}")
        return list(data)


def _tls_context(ca_file: Path | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise MailboxError(f"bounces.ca_file: cannot load {ca_file}: {exc}") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    return str(exc) or exc.__class__.__name__


def _text(data: object) -> str:
    if isinstance(data, list):
        return " ".join(_text(item) for item in data)
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(data)


def encode_folder(name: str) -> str:
    """A folder name as an IMAP astring: modified UTF-7 (RFC 3501 5.1.3), quoted."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for ch in name:
        if " " <= ch <= "~":
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return '"' + re.sub(r'(["\\])', r"\\\1", "".join(out)) + '"'
