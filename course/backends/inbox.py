"""A backend that delivers into a local Maildir, and the reader behind the operator's preview.

The files in `new/` hold the exact wire bytes, CRLF line endings included. We write them
ourselves instead of calling `mailbox.Maildir.add`, because `add` rewrites every LF as
`os.linesep`: harmless on POSIX but it turns CRLF into CR CR LF on Windows. Python's
`mailbox` and `email` modules read CRLF Maildir files fine (Dovecot can even store CRLF
itself, see its `mail_save_crlf`).
"""

from __future__ import annotations

import itertools
import os
import re
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import AddressHeader
from email.message import Message
from email.parser import BytesHeaderParser
from pathlib import Path

from course.backends.base import Backend, OutgoingMessage, ResultHook, SendResult
from course.backends.file import Clock, from_ns, store_batch, to_ns, utc_now, write_atomically
from course.errors import DeliveryError

MAILDIR_SUBDIRS = ("tmp", "new", "cur")
# Process-wide, so two backends on the same Maildir never reuse a name within a microsecond.
_COUNTER = itertools.count(1)
# Message-IDs look like <{course_id}.d{day:02d}.{anything}@{domain}>; the first match wins.
_DAY = re.compile(r"\.d(\d+)\.")
# Foreign files may use bare LF, so accept either line ending when looking for the blank line.
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_CHUNK = 8192


@dataclass(frozen=True, slots=True)
class InboxMessage:
    """One delivered message as the preview lists it; only the headers were read."""

    key: str
    path: Path
    received_at: datetime
    recipient: str
    subject: str
    day: int | None
    message_id: str

    def read_bytes(self) -> bytes:
        """The whole message exactly as stored."""
        return self.path.read_bytes()


def maildir_key(moment: datetime, counter: int, hostname: str) -> str:
    """A unique Maildir name, `{seconds}.M{micro}P{pid}Q{counter}.{host}` (the modern spec)."""
    seconds = int(moment.timestamp())
    return f"{seconds}.M{moment.microsecond:06d}P{os.getpid()}Q{counter:06d}.{hostname}"


def safe_hostname() -> str:
    """The host name with `/` and `:` escaped, as the Maildir spec asks."""
    return socket.gethostname().replace("/", r"\057").replace(":", r"\072")


class InboxBackend(Backend):
    """Deliver each message's exact wire bytes into `{directory}/new/`, tmp/ first."""

    name = "inbox"

    def __init__(self, directory: Path, clock: Clock = utc_now) -> None:
        self.directory = Path(directory)
        self._clock = clock
        self._hostname = safe_hostname()
        self._opened = False

    def open(self) -> None:
        """Create the Maildir (tmp/, new/, cur/) if any part is missing."""
        # mailbox.Maildir(create=True) skips the subfolders when the folder already exists.
        try:
            for sub in MAILDIR_SUBDIRS:
                (self.directory / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise DeliveryError(f"cannot create Maildir {self.directory}: {exc}") from exc
        self._opened = True

    def close(self) -> None:
        """Nothing is held open between sends; just forget that open() ran."""
        self._opened = False

    def send(
        self, messages: Sequence[OutgoingMessage], on_result: ResultHook | None = None
    ) -> list[SendResult]:
        """Deliver every message, or none if any is malformed; `reply` is the Maildir key."""
        if not self._opened:
            self.open()
        return store_batch(
            messages,
            self._deliver,
            self.directory / "new",
            f"deliver to Maildir {self.directory}",
            on_result,
        )

    def _deliver(self, message: OutgoingMessage) -> str:
        """Write one message into tmp/, move it to new/, and return its key."""
        moment = self._clock()
        key = maildir_key(moment, next(_COUNTER), self._hostname)
        # The mtime is the delivery time Maildir readers (and read_inbox) show.
        write_atomically(
            message.data,
            self.directory / "new" / key,
            scratch_dir=self.directory / "tmp",
            mtime_ns=to_ns(moment),
        )
        return key


def read_inbox(directory: Path, limit: int | None = None) -> list[InboxMessage]:
    """The newest `limit` (default all) messages in new/ and cur/; no Maildir means none."""
    root = Path(directory)
    found = [(path, mtime_ns) for sub in ("new", "cur") for path, mtime_ns in _scan(root / sub)]
    found.sort(key=lambda item: (item[1], item[0].name), reverse=True)
    # Sorting needs only a stat; parsing headers is the slow part, so do it for one page only.
    page = found if limit is None else found[:limit]
    return [message for path, mtime_ns in page if (message := _summarise(path, mtime_ns))]


def _scan(folder: Path) -> Iterator[tuple[Path, int]]:
    """(path, mtime in ns) of each message file; dot files are not messages in a Maildir."""
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_file():
            continue
        try:
            yield Path(entry.path), entry.stat().st_mtime_ns
        except FileNotFoundError:  # a mail client moved it to cur/ meanwhile
            continue


def _summarise(path: Path, mtime_ns: int) -> InboxMessage | None:
    """The listing entry for one file, or None if it vanished before we could read it."""
    try:
        head = _read_head(path)
    except FileNotFoundError:
        return None
    headers = BytesHeaderParser(policy=policy.default).parsebytes(head)
    message_id = str(headers.get("Message-ID", "")).strip()
    return InboxMessage(
        key=path.name,
        path=path,
        received_at=from_ns(mtime_ns),
        recipient=_first_address(headers),
        subject=str(headers.get("Subject", "")),
        day=_day(message_id),
        message_id=message_id,
    )


def _read_head(path: Path) -> bytes:
    """The header section up to the first blank line, so a large body costs nothing."""
    head = b""
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            head += chunk
            blank = _BLANK_LINE.search(head)
            if blank:
                return head[: blank.end()]
    return head


def _first_address(headers: Message) -> str:
    """The first address in To, or the raw header text when it does not parse."""
    to = headers.get("To")
    if isinstance(to, AddressHeader) and to.addresses:
        return to.addresses[0].addr_spec
    return "" if to is None else str(to)


def _day(message_id: str) -> int | None:
    """The course day encoded in the Message-ID as `.dNN.`, if any."""
    match = _DAY.search(message_id.partition("@")[0])
    return int(match.group(1)) if match else None
