"""A backend that writes one .eml file per message (like Django's filebased backend)."""

from __future__ import annotations

import itertools
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from course.backends.base import Backend, OutgoingMessage, ResultHook, SendResult, report
from course.backends.wire import check_batch
from course.errors import DeliveryError

Clock = Callable[[], datetime]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Process-wide, so two backends on the same folder never reuse a name;
# next() on itertools.count is atomic under the GIL.
_COUNTER = itertools.count(1)
# Characters that are safe in a file name on every common file system.
_UNSAFE = re.compile(r"[^A-Za-z0-9@+._-]")
_MAX_RECIPIENT_CHARS = 64


def utc_now() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


def to_ns(moment: datetime) -> int:
    """Nanoseconds since the epoch, exactly (a float timestamp would round the microseconds)."""
    return (moment - EPOCH) // timedelta(microseconds=1) * 1000


def from_ns(ns: int) -> datetime:
    """The aware UTC datetime for nanoseconds since the epoch, to the microsecond."""
    return EPOCH + timedelta(microseconds=ns // 1000)


def eml_name(moment: datetime, counter: int, recipient: str) -> str:
    """A file name that sorts by time, is unique per process and counter, and is safe."""
    stamp = moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    safe = _UNSAFE.sub("_", recipient)[:_MAX_RECIPIENT_CHARS]
    return f"{stamp}-{counter:06d}-{os.getpid()}-{safe}.eml"


def write_atomically(
    data: bytes, destination: Path, *, scratch_dir: Path, mtime_ns: int | None = None
) -> None:
    """Write to a temp file in scratch_dir, fsync, then rename, so readers never see half a file."""
    # The dot prefix hides the temp file from `*.eml` globs and Maildir readers alike.
    fd, name = tempfile.mkstemp(dir=scratch_dir, prefix=".tmp-")
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        if mtime_ns is not None:
            os.utime(temp, ns=(mtime_ns, mtime_ns))
        os.replace(temp, destination)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def fsync_directory(directory: Path) -> None:
    """Persist the renames just made in the directory (POSIX only; Windows cannot open folders)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileBackend(Backend):
    """Write each message's exact wire bytes to `{time}-{counter}-{pid}-{recipient}.eml`."""

    name = "file"

    def __init__(self, directory: Path, clock: Clock = utc_now) -> None:
        self.directory = Path(directory)
        self._clock = clock
        self._opened = False

    def open(self) -> None:
        """Create the directory if it is missing."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DeliveryError(f"cannot create {self.directory}: {exc}") from exc
        self._opened = True

    def close(self) -> None:
        """Nothing is held open between sends; just forget that open() ran."""
        self._opened = False

    def send(
        self, messages: Sequence[OutgoingMessage], on_result: ResultHook | None = None
    ) -> list[SendResult]:
        """Write every message, or none if any is malformed; `reply` is the file written."""
        if not self._opened:
            self.open()
        return store_batch(
            messages,
            lambda m: str(self._write(m)),
            self.directory,
            f"write to {self.directory}",
            on_result,
        )

    def _write(self, message: OutgoingMessage) -> Path:
        """Write one message and return its path."""
        path = self.directory / eml_name(self._clock(), next(_COUNTER), message.recipient)
        write_atomically(message.data, path, scratch_dir=self.directory)
        return path


def store_batch(
    messages: Sequence[OutgoingMessage],
    store: Callable[[OutgoingMessage], str],
    folder: Path,
    what: str,
    on_result: ResultHook | None,
) -> list[SendResult]:
    """Check the whole batch, store each message, make the folder's entries durable, report.

    When storing fails part-way (the disk is full, the folder became unwritable), the
    messages already stored are made durable and reported through `on_result` before the
    DeliveryError: the deliverer records them, so the next tick does not send them again.
    """
    check_batch(messages)
    results: list[SendResult] = []
    try:
        for message in messages:
            results.append(SendResult(message, "sent", store(message)))
        fsync_directory(folder)
    except OSError as exc:
        stored = _durable_part(results, folder, on_result)
        raise DeliveryError(
            f"cannot {what}: {exc.strerror or exc} ({stored} of {len(messages)} stored and "
            "recorded before that)"
        ) from exc
    return report(results, on_result)


def _durable_part(results: list[SendResult], folder: Path, on_result: ResultHook | None) -> int:
    """Report what was stored, once its directory entries are on disk; how many that was."""
    if not results:
        return 0
    try:
        fsync_directory(folder)
    except OSError:
        return 0  # not known to be on disk: sending again is the safe side (the crash rule)
    report(results, on_result)
    return len(results)
