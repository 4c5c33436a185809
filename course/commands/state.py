"""`course init`, `backup` and `restore`: the state/ folder as something an operator can keep."""

from __future__ import annotations

import argparse
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from course.arguments import path_argument
from course.article import load_article
from course.backup import (
    BackupContents,
    check_destination,
    default_backup_path,
    read_backup,
    restore_files,
    write_backup,
)
from course.build import course_id
from course.commands.optout import planned_first_due
from course.config import Settings
from course.ledger import Ledger
from course.state import (
    LEDGER_ID_KEY,
    Manifest,
    StateError,
    ledger_label,
    manifest_path,
    move_aside,
    open_ledger,
    secret_fingerprint,
    sqlite_file,
)
from course.suppress import SuppressionLog, apply_pending
from course.unsubscribe import SECRET_FILE, create_secret, load_secret


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    init = commands.add_parser(
        "init", help="set up state/ (ledger, secret, manifest), or start over on purpose"
    )
    what = init.add_mutually_exclusive_group()
    what.add_argument(
        "--fresh",
        action="store_true",
        help="start a new, empty ledger (the old one is moved aside; unsubscribes are kept)",
    )
    what.add_argument(
        "--new-secret",
        action="store_true",
        help="accept a new unsubscribe secret (links already sent stop working)",
    )
    init.set_defaults(handler=cmd_init)
    backup = commands.add_parser(
        "backup", help="a consistent copy of the ledger, manifest, secret and suppression log"
    )
    backup.add_argument(
        "--out",
        type=path_argument,
        metavar="FILE",
        help="archive to write (default: backups/course-<id>-<time>.tar.gz)",
    )
    backup.set_defaults(handler=cmd_backup)
    restore = commands.add_parser("restore", help="put a `course backup` archive back")
    restore.add_argument("file", type=path_argument, metavar="FILE", help="the archive to restore")
    restore.set_defaults(handler=cmd_restore)


def _course_id(settings: Settings) -> str:
    return course_id(settings, load_article(settings.course.article))


def cmd_init(args: argparse.Namespace, settings: Settings) -> int:
    the_course = _course_id(settings)
    if args.fresh:
        with _nobody_running(settings):
            moved = _start_over(settings)
        if moved:
            print(f"moved the previous ledger to {moved}")
    if args.new_secret:
        _accept_new_secret(settings, the_course)
    with open_ledger(settings, the_course) as ledger:
        replayed = apply_pending(
            SuppressionLog.in_project(settings.base_dir),
            ledger,
            first_due=planned_first_due(settings),
        )
        manifest = Manifest.read(manifest_path(settings))
    assert manifest is not None
    print(
        f"course {manifest.course_id}: ledger {manifest.ledger} (id {manifest.ledger_id[:8]}), "
        f"secret {manifest.secret_fingerprint[:8]}"
        + (f"; {replayed} suppressed addresses carried over" if replayed else "")
    )
    return 0


def _start_over(settings: Settings) -> Path | None:
    """Move the ledger and manifest aside; the suppression log and the secret stay."""
    files = [manifest_path(settings)]
    database = sqlite_file(settings)
    if database is not None:
        files += [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
    else:
        # Nothing to move on a server: the ledger at the URL becomes this course's.
        with Ledger.open(settings.ledger, base_dir=settings.base_dir) as ledger:
            ledger.set_meta(LEDGER_ID_KEY, uuid.uuid4().hex)
    return move_aside(settings, files)


def _accept_new_secret(settings: Settings, the_course: str) -> None:
    env = settings.unsubscribe.secret_env
    if not os.environ.get(env):
        move_aside(settings, [settings.base_dir / SECRET_FILE])
        create_secret(settings.base_dir / SECRET_FILE)
    secret = load_secret(env, settings.base_dir, os.environ, create=False)
    manifest = Manifest.read(manifest_path(settings))
    if manifest is not None:
        fields = {**manifest.__dict__, "secret_fingerprint": secret_fingerprint(secret)}
        Manifest(**fields).write(manifest_path(settings))
    print(f"unsubscribe secret {secret_fingerprint(secret)[:8]} is now this course's")


@contextmanager
def _nobody_running(settings: Settings) -> Iterator[None]:
    """Hold the runner lease (if there is a ledger), so no `course run` works on it meanwhile."""
    database = sqlite_file(settings)
    if database is not None and not database.exists():
        yield
        return
    owner = f"course-state-{uuid.uuid4().hex}"
    with Ledger.open(settings.ledger, base_dir=settings.base_dir) as ledger:
        now = datetime.now(UTC)
        stale = timedelta(seconds=max(300, 3 * settings.schedule.tick_seconds))
        # On SQLite, registering refuses while another worker is alive; on PostgreSQL it
        # does not, so look at the others too.
        ledger.register_worker(
            owner=owner, pid=os.getpid(), host=socket.gethostname(), now=now, stale_after=stale
        )
        try:
            for other in ledger.workers(now):
                if other.alive and other.owner != owner:
                    raise StateError(
                        f"a `course run` (pid {other.pid} on host {other.host}) works on this "
                        "ledger; stop it first"
                    )
            yield
        finally:
            ledger.release_worker(owner=owner)


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    the_course = _course_id(settings)
    out = args.out or default_backup_path(settings, the_course, datetime.now(UTC))
    check_destination(out)
    with open_ledger(settings, the_course):
        pass  # a backup of state that does not check out would only preserve the problem
    contents = write_backup(settings, out)
    print(f"wrote {out}: {contents.summary()}")
    if contents.postgresql:
        print(
            f"the ledger is PostgreSQL ({ledger_label(settings.ledger)}): back it up with "
            "`pg_dump --format=custom --file=course.dump DBNAME` (and restore it with "
            "`pg_restore --clean --dbname=DBNAME course.dump`) before `course restore`"
        )
    return 0


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    contents: BackupContents = read_backup(args.file)
    the_course = _course_id(settings)
    if contents.course_id != the_course:
        raise StateError(
            f"{args.file}: a backup of course {contents.course_id!r}, not {the_course!r} "
            "(course.id, or the article's file name)"
        )
    with _nobody_running(settings):
        moved = restore_files(settings, args.file, contents)
    if moved:
        print(f"moved what state/ held before to {moved}")
    with open_ledger(settings, the_course) as ledger:
        replayed = apply_pending(
            SuppressionLog.in_project(settings.base_dir),
            ledger,
            first_due=planned_first_due(settings),
        )
    print(
        f"restored {args.file}: {contents.summary()}"
        + (f"; {replayed} newer suppressions applied" if replayed else "")
    )
    if contents.postgresql:
        print("the ledger is PostgreSQL: restore it with pg_restore from your pg_dump file")
    return 0
