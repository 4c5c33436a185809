"""`course backup` / `course restore`: one archive holding what state/ needs to come back.

The archive (a .tar.gz, mode 0600: it holds the unsubscribe secret) contains:

- `course.db`: an online, consistent copy of a SQLite ledger, made with SQLite's backup
  API while `course run` keeps working (a PostgreSQL ledger is pg_dump's job);
- `manifest.json`, `suppressions.log` and, when it lives in a file, `unsubscribe.secret`;
- `backup.json`: what the archive holds, and for which course.

Restoring keeps what happened since the backup: the suppression log in state/ is kept
when it continues the backup's (the usual case), and otherwise merged into it, so an
unsubscribe recorded after the backup is applied to the restored ledger before anything
is sent. Whatever state/ held before is moved to state/previous/<time>/, never deleted.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import tarfile
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from course.config import Settings
from course.errors import CourseError
from course.state import (
    Manifest,
    ledger_label,
    manifest_path,
    move_aside,
    sqlite_file,
)
from course.suppress import LOG_FILE, Suppression, SuppressionLog
from course.unsubscribe import SECRET_FILE

BACKUP_DIR: Final = "backups"
_INDEX: Final = "backup.json"
_LEDGER: Final = "course.db"
_MANIFEST: Final = "manifest.json"
_LOG: Final = "suppressions.log"
_SECRET: Final = "unsubscribe.secret"  # noqa: S105 (a file name)
_MEMBERS: Final = frozenset({_INDEX, _LEDGER, _MANIFEST, _LOG, _SECRET})
_FORMAT: Final = 1


class BackupError(CourseError):
    """An archive that cannot be written or read as a `course backup`; names the file."""


@dataclass(frozen=True)
class BackupContents:
    """What one archive holds."""

    course_id: str
    created_at: str
    ledger: str
    postgresql: bool
    members: tuple[str, ...]

    def summary(self) -> str:
        held = {
            _LEDGER: "ledger",
            _MANIFEST: "manifest",
            _LOG: "suppression log",
            _SECRET: "secret",
        }
        parts = [held[name] for name in (_LEDGER, _MANIFEST, _LOG, _SECRET) if name in self.members]
        return f"course {self.course_id}, {', '.join(parts)} (from {self.created_at})"


def default_backup_path(settings: Settings, course_id: str, now: datetime) -> Path:
    return settings.base_dir / BACKUP_DIR / f"course-{course_id}-{now:%Y%m%dT%H%M%SZ}.tar.gz"


# --- writing ----------------------------------------------------------------------------------


def check_destination(out: Path) -> None:
    """BackupError unless an archive can be written at `out`; writes nothing.

    `course backup` asks before it opens the ledger, so a path that cannot take the archive
    (a folder, a place that takes no files) is refused before state/ is set up.
    """
    if out.is_dir():
        raise BackupError(f"{out}: is a folder; name the archive, e.g. {out / 'course.tar.gz'}")
    folder = out.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the folders still missing are created when writing
    if not folder.is_dir():
        raise BackupError(f"{out}: cannot create its folder: {folder} is not a folder")
    try:
        # The one sure test of a folder that takes files (/proc, a read-only mount, another
        # user's folder): make a file there, which vanishes when closed.
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise BackupError(f"{out}: cannot write there: {exc.strerror or exc}") from None


def write_backup(settings: Settings, out: Path) -> BackupContents:
    """Write the archive to `out` (atomically, mode 0600) and say what it holds."""
    manifest = Manifest.read(manifest_path(settings))
    if manifest is None:
        raise BackupError(
            f"{manifest_path(settings)}: missing; run a command that opens the ledger first"
        )
    files: dict[str, bytes] = {_MANIFEST: manifest_path(settings).read_bytes()}
    database = sqlite_file(settings)
    try:
        scratch_dir = tempfile.TemporaryDirectory(dir=_scratch_dir(out))
    except OSError as exc:  # a folder that exists but takes no files (/proc, read-only)
        raise BackupError(f"{out}: cannot write there: {exc.strerror or exc}") from None
    with scratch_dir as scratch:
        if database is not None:
            copy = Path(scratch) / _LEDGER
            _sqlite_online_copy(database, copy)
            files[_LEDGER] = copy.read_bytes()
        # After the ledger: the log then holds at least what the copy has applied.
        for name, relative in ((_LOG, LOG_FILE), (_SECRET, SECRET_FILE)):
            path = settings.base_dir / relative
            if path.exists():
                files[name] = path.read_bytes()
        contents = BackupContents(
            course_id=manifest.course_id,
            created_at=datetime.now().astimezone().isoformat(timespec="seconds"),
            ledger=ledger_label(settings.ledger),
            postgresql=database is None,
            members=tuple(sorted(files)),
        )
        files[_INDEX] = (json.dumps({"format": _FORMAT, **contents.__dict__}) + "\n").encode()
        _write_archive(out, files)
    return contents


def _scratch_dir(out: Path) -> Path:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"{out}: cannot create its folder: {exc.strerror or exc}") from None
    return out.parent


def _sqlite_online_copy(source: Path, target: Path) -> None:
    """A consistent copy while others read and write (SQLite's backup API, in one step)."""
    if not source.exists():
        raise BackupError(f"{source}: the ledger is missing; nothing to back up")
    try:
        src = sqlite3.connect(source, timeout=30)
        try:
            dst = sqlite3.connect(target)
            try:
                src.backup(dst)  # pages=-1: the whole database from one read snapshot
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        raise BackupError(f"{source}: cannot copy the ledger: {exc}") from None


def _write_archive(out: Path, files: dict[str, bytes]) -> None:
    fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as archive:
            for member, data in sorted(files.items()):
                info = tarfile.TarInfo(member)
                info.size = len(data)
                info.mode = 0o600
                info.mtime = int(time.time())
                archive.addfile(info, io.BytesIO(data))
            # tarfile closes before the file: flush and sync what it wrote.
        with open(name, "rb") as written:
            os.fsync(written.fileno())
        os.replace(name, out)
    except OSError as exc:
        Path(name).unlink(missing_ok=True)
        raise BackupError(f"{out}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


# --- reading and restoring --------------------------------------------------------------------


def read_backup(path: Path) -> BackupContents:
    """What the archive at `path` holds; BackupError unless it is a `course backup`."""
    index = _members(path).get(_INDEX)
    if index is None:
        raise BackupError(f"{path}: not a `course backup` archive (no {_INDEX})")
    try:
        data = json.loads(index)
        return BackupContents(
            course_id=str(data["course_id"]),
            created_at=str(data["created_at"]),
            ledger=str(data["ledger"]),
            postgresql=bool(data["postgresql"]),
            members=tuple(str(name) for name in data["members"]),
        )
    except (ValueError, KeyError, TypeError):
        raise BackupError(f"{path}: {_INDEX} is damaged") from None


def _members(path: Path) -> dict[str, bytes]:
    """Every member's bytes; only the plain files a backup holds, nothing else, no paths."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:gz") as archive:
            for info in archive:
                if info.name not in _MEMBERS or not info.isfile():
                    raise BackupError(f"{path}: unexpected member {info.name[:80]!r}")
                stream = archive.extractfile(info)
                assert stream is not None
                found[info.name] = stream.read()
    except FileNotFoundError:
        raise BackupError(f"{path}: no such file") from None
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise BackupError(f"{path}: not a readable backup archive: {exc}") from None
    return found


def restore_files(settings: Settings, path: Path, contents: BackupContents) -> Path | None:
    """Put the archive's files in place; return where the replaced ones went (or None)."""
    members = _members(path)
    database = sqlite_file(settings)
    if database is None and not contents.postgresql:
        raise BackupError(f"{path}: holds a SQLite ledger, but `ledger:` is not SQLite")
    if database is not None and _LEDGER not in members:
        raise BackupError(
            f"{path}: holds no ledger (it was PostgreSQL); restore it with pg_restore"
        )
    log_path = settings.base_dir / LOG_FILE
    merged_log = _merged_log(members.get(_LOG, b""), log_path)
    replaced = [manifest_path(settings), log_path]
    if _SECRET in members:
        replaced.append(settings.base_dir / SECRET_FILE)
    if database is not None:
        replaced += [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
    # Stage everything first, so a failure leaves state/ as it was.
    staged = {manifest_path(settings): members[_MANIFEST], log_path: merged_log}
    if _SECRET in members:
        staged[settings.base_dir / SECRET_FILE] = members[_SECRET]
    if database is not None:
        staged[database] = members[_LEDGER]
    temporaries = {target: _stage(target, data) for target, data in staged.items() if data}
    moved = move_aside(settings, replaced)
    for target, temporary in temporaries.items():
        os.replace(temporary, target)
    return moved


def _stage(target: Path, data: bytes) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    with os.fdopen(fd, "wb") as stream:
        os.fchmod(stream.fileno(), 0o600)
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
    return Path(name)


def _merged_log(from_backup: bytes, current_path: Path) -> bytes:
    """The backup's log, with what was recorded since: usually the current log as it is."""
    try:
        current = current_path.read_bytes()
    except FileNotFoundError:
        return from_backup
    if not from_backup or current.startswith(from_backup):
        return current  # it continues the backup's: it already holds everything
    # Diverged (the log was replaced meanwhile): the backup's entries, then the current ones
    # it lacks, so offsets in the restored ledger's watermark stay valid.
    known = {entry.id for entry in _entries(from_backup)}
    newer = [entry for entry in _entries(current) if entry.id not in known]
    merged = from_backup if from_backup.endswith(b"\n") else from_backup + b"\n"
    return merged + b"".join(entry.to_json().encode() + b"\n" for entry in newer)


def _entries(data: bytes) -> list[Suppression]:
    with tempfile.TemporaryDirectory() as scratch:
        log = SuppressionLog(Path(scratch) / "suppressions.log")
        log.path.write_bytes(data)
        return log.entries()
