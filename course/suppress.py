"""The one way into the suppression list: a durable log first, then the ledger.

Every path that stops mail to an address goes through here: `course unsubscribe`, the
one-click POST, an SMTP 5xx bounce, and the bounce mailbox's DSNs, complaints and provider
webhooks. Each appends a `Suppression` to `state/suppressions.log` (JSON lines, fsync'd,
append-only) before anything else, so:

- a request is on disk before it is answered, even while the ledger is locked by a long
  tick or a backup; the ledger catches up with `apply_pending()` as soon as it can, and
  every tick calls it before claiming anything;
- the suppression list exists twice: a ledger rebuilt from nothing replays the whole log
  before anything is sent, so nobody who left is mailed again.

The ledger remembers how far into the log it has applied (its meta row `suppressions_log`:
the log's id and a byte offset). Applying is idempotent and keeps each address's last word:
an unsubscribe followed by `course resubscribe` ends active, whichever order they reach
the ledger in.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from course.errors import CourseError
from course.ledger import Ledger, NoticeResult, ResumeDue, Stop, SubscriberStatus, Verdict

LOG = logging.getLogger("course.suppress")
LOG_FILE: Final = "state/suppressions.log"
WATERMARK_KEY: Final = "suppressions_log"
_HEADER_KIND: Final = "dripcourse suppressions"
_FORMAT: Final = 1
# Read in pieces, so a long log never has to fit in memory at once.
_READ_CHUNK: Final = 1 << 20


class Action(StrEnum):
    """What happened to an address."""

    UNSUBSCRIBE = "unsubscribe"  # the subscriber asked: link, one-click, mailto, by hand
    COMPLAINT = "complaint"  # a spam complaint (ARF feedback report, provider webhook)
    BOUNCE = "bounce"  # the address does not exist (5xx at RCPT, a DSN, a webhook)
    RESUBSCRIBE = "resubscribe"  # the operator let them back in (`course resubscribe`)


SUPPRESSING: Final = frozenset({Action.UNSUBSCRIBE, Action.COMPLAINT, Action.BOUNCE})
SUPPRESSED_STATUSES: Final = frozenset({SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED})


@dataclass(frozen=True, slots=True)
class Suppression:
    """One line of the log: an address, what happened, how we learned it, and when."""

    email: str
    action: Action
    how: str
    at: datetime
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "at": self.at.astimezone(UTC).isoformat(timespec="microseconds"),
                "action": self.action.value,
                "email": self.email,
                "how": self.how,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, line: str) -> Suppression:
        data = json.loads(line)
        return cls(
            email=str(data["email"]),
            action=Action(data["action"]),
            how=str(data["how"]),
            at=datetime.fromisoformat(data["at"]).astimezone(UTC),
            id=str(data["id"]),
        )


class SuppressionLogError(CourseError):
    """The suppression log cannot be written or read; the message names the file."""


@dataclass(frozen=True, slots=True)
class LogRead:
    """What read_from() found: the log's id, the entries, and where the next read starts."""

    log_id: str
    entries: list[Suppression]
    end: int
    skipped: int  # lines that were not an entry (a torn write from a crash)


class SuppressionLog:
    """state/suppressions.log: append-only JSON lines with a header naming the log.

    Appends are durable when append() returns (write + fsync, under an exclusive flock so
    several processes can share the file). Concurrent appends in one process share a fsync.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cond = threading.Condition()
        self._waiting: list[_Waiter] = []
        self._flushing = False

    @classmethod
    def in_project(cls, base_dir: Path) -> SuppressionLog:
        return cls(base_dir / LOG_FILE)

    # --- writing ---------------------------------------------------------------------------

    def append(self, entries: Sequence[Suppression]) -> None:
        """Write `entries` and fsync; SuppressionLogError if that fails (nothing is then owed)."""
        if not entries:
            return
        waiter = _Waiter("".join(entry.to_json() + "\n" for entry in entries).encode())
        with self._cond:
            self._waiting.append(waiter)
            while not waiter.done:
                if self._flushing:
                    self._cond.wait()
                    continue
                # Group commit: whoever finds no flush running writes everyone's lines at once.
                self._flushing = True
                batch, self._waiting = self._waiting, []
                self._cond.release()
                try:
                    error = self._write(b"".join(w.data for w in batch))
                finally:
                    self._cond.acquire()
                    self._flushing = False
                for queued in batch:
                    queued.done, queued.error = True, error
                self._cond.notify_all()
        if waiter.error is not None:
            raise SuppressionLogError(f"cannot write {self.path}: {waiter.error}")

    def _write(self, data: bytes) -> OSError | None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            return exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            prefix = b""
            if size == 0:
                prefix = _header_line().encode()
            elif os.pread(fd, 1, size - 1) != b"\n":
                prefix = b"\n"  # a crash tore the last line: start ours on a fresh one
            record = prefix + data
            if os.write(fd, record) != len(record):
                # Only part of it went (the disk is full): nothing is promised; the torn
                # line is skipped by readers and set apart by the next append.
                return OSError(errno.ENOSPC, "short write")
            os.fsync(fd)
            if size == 0:
                _fsync_directory(self.path.parent)
        except OSError as exc:
            return exc
        finally:
            os.close(fd)  # also releases the flock
        return None

    # --- reading ---------------------------------------------------------------------------

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def read_from(self, offset: int, *, log_id: str = "") -> LogRead:
        """Complete entries from byte `offset` to the last full line, when the log is the one
        named `log_id`; from the start when it is another one (or `log_id` is "")."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return LogRead("", [], 0, 0)
        except OSError as exc:
            raise SuppressionLogError(f"cannot read {self.path}: {exc}") from None
        try:
            with os.fdopen(os.dup(fd), "rb") as stream:
                # The lock only while the header and the size are taken: appends wait for
                # nothing but that, however much there is to parse.
                fcntl.flock(fd, fcntl.LOCK_SH)
                header = stream.readline()
                size = os.fstat(fd).st_size
                fcntl.flock(fd, fcntl.LOCK_UN)
                found = _log_id(header, self.path)
                start = max(offset, len(header)) if found == log_id else len(header)
                if start >= size:
                    return LogRead(found, [], start, 0)  # nothing new: the common case
                stream.seek(start)
                return _parse(stream, found, start, size)
        except OSError as exc:
            raise SuppressionLogError(f"cannot read {self.path}: {exc}") from None
        finally:
            os.close(fd)

    def entries(self) -> list[Suppression]:
        return self.read_from(0).entries


@dataclass
class _Waiter:
    data: bytes
    done: bool = False
    error: OSError | None = None


def _header_line() -> str:
    header = {"kind": _HEADER_KIND, "format": _FORMAT, "log": uuid.uuid4().hex}
    return json.dumps(header, separators=(",", ":")) + "\n"


def _log_id(header: bytes, path: Path) -> str:
    try:
        data = json.loads(header)
        if data.get("kind") == _HEADER_KIND and int(data.get("format", 0)) <= _FORMAT:
            return str(data["log"])
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    raise SuppressionLogError(
        f"{path}: not a suppression log (its first line is not the header this version "
        "writes); restore it from a backup (`course restore FILE`) or move it aside"
    )


def _parse(stream: Any, log_id: str, start: int, size: int) -> LogRead:
    """The complete lines between `start` and `size` (what was there when the lock was held)."""
    entries: list[Suppression] = []
    skipped = 0
    position = start
    carry = b""
    while position + len(carry) < size and (
        chunk := stream.read(min(_READ_CHUNK, size - position - len(carry)))
    ):
        *lines, carry = (carry + chunk).split(b"\n")
        for line in lines:
            position += len(line) + 1
            if not line.strip():
                continue
            try:
                entries.append(Suppression.from_json(line.decode("utf-8")))
            except (ValueError, KeyError, TypeError):
                skipped += 1
    # `carry` is a line still being written (or torn by a crash): it is read next time.
    return LogRead(log_id, entries, position, skipped)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- into the ledger --------------------------------------------------------------------------

FirstDue = Callable[[str, datetime], datetime]


def suppress(
    log: SuppressionLog,
    ledger: Ledger,
    entries: Sequence[Suppression],
    *,
    first_due: FirstDue,
    resume_due: ResumeDue | None = None,
) -> None:
    """Record `entries` durably in the log, then bring the ledger up to date with it.

    When the log write fails nothing is recorded anywhere (SuppressionLogError); when only
    the ledger write fails (LedgerError, e.g. locked), the entries are safe in the log and
    the next apply_pending() (every tick runs one first) takes them in.
    """
    log.append(entries)
    apply_pending(log, ledger, first_due=first_due, resume_due=resume_due)


# The bounce mailbox's and the webhooks' verdicts that stop mail, as log entries.
NOTICE_ACTIONS: Final = {
    Verdict.BOUNCED: Action.BOUNCE,
    Verdict.COMPLAINED: Action.COMPLAINT,
    Verdict.UNSUBSCRIBED: Action.UNSUBSCRIBE,
}


def take_notice(
    log: SuppressionLog | None,
    ledger: Ledger,
    *,
    key: str,
    verdict: Verdict,
    email: str,
    detail: str,
    source: str,
    evidence: str,
    now: datetime,
    day: int = 0,
) -> NoticeResult:
    """A bounce, complaint or provider event: into the log first when it stops mail, then
    taken in by the ledger (once per event key, see Ledger.take_notice).

    `log` is None only for tests of the parsers; every command passes the project's log.
    """
    action = NOTICE_ACTIONS.get(verdict)
    # A replayed event must not reach the log again: applied after a `course resubscribe`,
    # its entry would be the address's last word and suppress it a second time.
    if ledger.notice_taken(key):
        return NoticeResult.DUPLICATE
    if log is not None and action is not None:
        log.append([Suppression(email, action, f"{source}: {detail}", now)])
    return ledger.take_notice(
        key=key,
        verdict=verdict,
        email=email,
        detail=detail,
        source=source,
        evidence=evidence,
        now=now,
        day=day,
    )


def apply_pending(
    log: SuppressionLog,
    ledger: Ledger,
    *,
    first_due: FirstDue,
    resume_due: ResumeDue | None = None,
) -> int:
    """Apply the log's entries the ledger has not seen yet; return how many addresses changed.

    A resubscribe is due at resume_due(zone, now, last lesson's time) when given (never a
    second lesson on one local date), else at first_due(zone, now).

    Cheap when nothing is new (a meta read, and the log's first line and size), so it runs
    before every batch. A log other than the one the ledger followed (a new ledger, a
    restored or replaced log) is replayed whole: replaying what was applied changes nothing.
    """
    log_id, offset = _watermark(ledger)
    read = log.read_from(offset, log_id=log_id)
    if not read.log_id or (read.log_id == log_id and not read.entries and not read.skipped):
        if read.log_id and read.end != offset:
            ledger.set_meta(WATERMARK_KEY, json.dumps({"log": read.log_id, "offset": read.end}))
        return 0
    if read.skipped:
        LOG.warning(
            "%s: skipped %d line(s) that are not suppressions (torn by a crash?)",
            log.path,
            read.skipped,
        )
    final = _last_word(read.entries)
    # The suppressions in one transaction: thousands of one-click POSTs that queued up
    # behind a locked ledger are taken in at once, not one commit each.
    changed = ledger.suppress([_stop(entry) for entry in final if entry.action in SUPPRESSING])
    changed += sum(
        _resubscribe(ledger, entry, first_due, resume_due)
        for entry in final
        if entry.action == Action.RESUBSCRIBE
    )
    ledger.set_meta(WATERMARK_KEY, json.dumps({"log": read.log_id, "offset": read.end}))
    return changed


def _watermark(ledger: Ledger) -> tuple[str, int]:
    raw = ledger.meta(WATERMARK_KEY)
    if not raw:
        return "", 0
    try:
        data = json.loads(raw)
        return str(data["log"]), int(data["offset"])
    except (ValueError, KeyError, TypeError):
        return "", 0


def _last_word(entries: Iterable[Suppression]) -> list[Suppression]:
    """Each address's last entry, in log order: only the final state matters to the ledger."""
    last: dict[str, Suppression] = {}
    for entry in entries:
        last.pop(entry.email.lower(), None)
        last[entry.email.lower()] = entry
    return list(last.values())


def _stop(entry: Suppression) -> Stop:
    """What an unsubscribe, complaint or bounce entry means for the ledger."""
    if entry.action == Action.BOUNCE:
        return Stop(entry.email, SubscriberStatus.BOUNCED, entry.how, entry.at)
    how = entry.how if entry.action == Action.UNSUBSCRIBE else f"{entry.action}: {entry.how}"
    return Stop(entry.email, SubscriberStatus.UNSUBSCRIBED, how, entry.at)


def _resubscribe(
    ledger: Ledger, entry: Suppression, first_due: FirstDue, resume_due: ResumeDue | None
) -> bool:
    """The operator let them back in: active again, if the ledger still has them stopped."""
    view = ledger.subscriber(entry.email)
    if view is None or view.status not in SUPPRESSED_STATUSES:
        return False
    return ledger.reactivate(entry.email, now=entry.at, first_due=first_due, resume_due=resume_due)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():  # a waiter that timed out has cancelled it
        future.set_result(None)


class LedgerCatchUp:
    """Applies the log to the ledger from a background thread, as soon as the ledger lets it.

    `course serve` answers a one-click POST once its entry is in the log; this thread then
    waits out a locked ledger (a long tick, a backup) without holding up any request.
    """

    def __init__(
        self,
        log: SuppressionLog,
        ledger: Ledger,
        first_due: FirstDue,
        *,
        retry_seconds: float = 1.0,
    ) -> None:
        self._log = log
        self._ledger = ledger
        self._first_due = first_due
        self._retry_seconds = retry_seconds
        self._wanted = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="course-catch-up", daemon=True)
        # Pokes counted, how many of them the ledger has caught up with, and the event
        # loops' futures waiting for a ticket (see applied()).
        self._progress = threading.Condition()
        self._poked = 0
        self._applied = 0
        self._watchers: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def start(self) -> LedgerCatchUp:
        self._wanted.set()  # entries left from before a restart
        self._thread.start()
        return self

    def poke(self) -> int:
        """Something new is in the log: apply it when the ledger allows; returns a ticket."""
        with self._progress:
            self._poked += 1
            ticket = self._poked
        self._wanted.set()
        return ticket

    def wait(self, ticket: int, timeout: float) -> bool:
        """Wait up to `timeout` for the ledger to catch up with `ticket`; True if it did."""
        with self._progress:
            return self._progress.wait_for(lambda: self._applied >= ticket, timeout)

    async def applied(self, ticket: int, timeout: float) -> bool:
        """As wait(), from an event loop, holding no thread meanwhile."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._progress:
            if self._applied >= ticket:
                return True
            self._watchers.append((ticket, loop, future))
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return False
        return True

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wanted.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._wanted.wait()
            if self._stopping.is_set():
                return
            self._wanted.clear()
            with self._progress:
                ticket = self._poked
            try:
                apply_pending(self._log, self._ledger, first_due=self._first_due)
                failures = 0
                with self._progress:
                    self._applied = ticket
                    self._progress.notify_all()
                    ready = [w for w in self._watchers if w[0] <= ticket]
                    self._watchers = [w for w in self._watchers if w[0] > ticket]
                for _, loop, future in ready:
                    with contextlib.suppress(RuntimeError):  # that loop has closed
                        loop.call_soon_threadsafe(_settle, future)
            except CourseError as exc:
                failures += 1
                if failures == 1:  # once per outage, not once a second
                    LOG.warning(
                        "suppressions wait in %s until the ledger frees: %s", self._log.path, exc
                    )
                self._wanted.set()
                self._stopping.wait(self._retry_seconds)
