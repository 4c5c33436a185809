"""What `state/` should hold, so that lost state never re-mails anyone.

`state/manifest.json` names the course, the ledger (by an identity stored inside it) and
the unsubscribe secret (by a fingerprint). Every command that sends or records goes
through `open_ledger()`, which refuses, with one line saying how to restore, when:

- the manifest names a ledger that is missing, empty, or another one (a new ledger
  would send day 1 to everyone again, unsubscribed people included);
- the secret is missing, or is not the one the manifest names, for a ledger that has
  sent mail (every link in subscribers' inboxes would answer 400).

`course init --fresh` starts over deliberately (the suppression log is kept, so nobody
who left is mailed), `course init --new-secret` accepts a new secret, and
`course restore FILE` puts a backup back.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from sqlalchemy.engine import make_url

from course.config import Settings
from course.errors import CourseError
from course.ledger import Ledger
from course.suppress import LOG_FILE
from course.tokens import encode, sign
from course.unsubscribe import SECRET_FILE, MissingSecret, load_secret

# Beside a SQLite ledger (state/ by default), so a sandbox or a scratch copy of the ledger
# (`course simulate`, `send --dry-run`) has its own; in state/ for PostgreSQL.
MANIFEST_NAME: Final = "manifest.json"
STATE_DIR: Final = "state"
# Where `course init --fresh`, `--new-secret` and `course restore` move what they replace.
PREVIOUS_DIR: Final = "state/previous"
LEDGER_ID_KEY: Final = "ledger_id"
RESTORE_HINT: Final = "restore it from a backup (`course restore FILE`)"


class StateError(CourseError):
    """state/ does not hold what the manifest says it should; the message says how to fix it."""


@dataclass(frozen=True)
class Manifest:
    """What state/ should hold: which course, which ledger, which secret."""

    course_id: str
    ledger: str  # the ledger URL as configured, password hidden (for messages)
    ledger_id: str  # the identity stored in the ledger's meta table
    secret_fingerprint: str  # "" until a secret is known
    created_at: str

    @classmethod
    def read(cls, path: Path) -> Manifest | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{name: str(data[name]) for name in cls.__dataclass_fields__})
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StateError(
                f"{path}: unreadable ({exc}); {RESTORE_HINT}, or run "
                "`course init --fresh` to start a new ledger"
            ) from None

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, path)


def manifest_path(settings: Settings) -> Path:
    database = sqlite_file(settings)
    folder = database.parent if database is not None else settings.base_dir / STATE_DIR
    return folder / MANIFEST_NAME


def shown(path: Path, base_dir: Path) -> str:
    """A path as messages show it: relative to the project when it is inside."""
    try:
        return str(path.relative_to(base_dir))
    except ValueError:
        return str(path)


# Ledger meta: the fingerprint of the secret the ledger's workers sign links with (written by
# each worker that starts; see course.commands.delivery).
LINKS_SIGNED_WITH_META: Final = "unsubscribe_secret_fingerprint"


def secret_fingerprint(secret: bytes) -> str:
    """Names a secret without revealing it (a keyed hash of nothing, 16 characters)."""
    return encode(sign(secret, "fingerprint", b"")[:12])


def ledger_label(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def sqlite_file(settings: Settings) -> Path | None:
    """The SQLite file of the ledger, or None for PostgreSQL or an in-memory database."""
    url = make_url(settings.ledger)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    database = str(url.database)
    if database.startswith("file:"):
        return None
    path = Path(database).expanduser()
    return path if path.is_absolute() else settings.base_dir / path


def open_ledger(
    settings: Settings, course_id: str, *, environ: Mapping[str, str] = os.environ
) -> Ledger:
    """Open the course's ledger after checking state/ against its manifest (see the module)."""
    path = manifest_path(settings)
    manifest = Manifest.read(path)
    if manifest is not None:
        _refuse_a_missing_ledger(settings, manifest, shown(path, settings.base_dir))
    ledger = Ledger.open(settings.ledger, base_dir=settings.base_dir)
    try:
        manifest = _check_identity(settings, ledger, manifest, course_id)
        _check_secret(settings, ledger, manifest, environ)
    except BaseException:
        ledger.close()
        raise
    return ledger


def _refuse_a_missing_ledger(settings: Settings, manifest: Manifest, where: str) -> None:
    file = sqlite_file(settings)
    if file is None:
        return
    name = shown(file, settings.base_dir)
    try:
        empty = file.stat().st_size == 0
    except FileNotFoundError:
        raise StateError(_missing(manifest, where, f"the file {name} is missing")) from None
    if empty:
        raise StateError(_missing(manifest, where, f"the file {name} is empty"))


def _missing(manifest: Manifest, where: str, what: str) -> str:
    return (
        f"{where} says this course's ledger is {manifest.ledger} (id "
        f"{manifest.ledger_id[:8]}), but {what}: a new one would mail day 1 to everyone "
        f"again. {RESTORE_HINT[0].upper()}{RESTORE_HINT[1:]}, or run `course init --fresh` to "
        f"start a new ledger on purpose (the unsubscribes in {LOG_FILE} are kept)"
    )


def _check_identity(
    settings: Settings, ledger: Ledger, manifest: Manifest | None, course_id: str
) -> Manifest:
    found = ledger.meta(LEDGER_ID_KEY)
    where = shown(manifest_path(settings), settings.base_dir)
    if manifest is None:
        # A first run, or state/ from before manifests: describe what is here. Two commands
        # started together get the same identity (the first to store one wins).
        if found is None:
            found = ledger.first_meta(LEDGER_ID_KEY, uuid.uuid4().hex)
        manifest = Manifest(
            course_id=course_id,
            ledger=ledger_label(settings.ledger),
            ledger_id=found,
            secret_fingerprint="",
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        manifest.write(manifest_path(settings))
        return manifest
    if found is None:
        label = ledger_label(settings.ledger)
        raise StateError(_missing(manifest, where, f"{label} is a new, empty one"))
    if found != manifest.ledger_id:
        raise StateError(
            f"{where} says this course's ledger has id {manifest.ledger_id[:8]}, but "
            f"{ledger_label(settings.ledger)} has id {found[:8]}: another course's, or an "
            f"older copy. Point `ledger:` at the right one, {RESTORE_HINT}, or run "
            "`course init --fresh` to start a new ledger on purpose"
        )
    return manifest


def _check_secret(
    settings: Settings, ledger: Ledger, manifest: Manifest, environ: Mapping[str, str]
) -> None:
    env = settings.unsubscribe.secret_env
    has_sent = ledger.has_deliveries()
    try:
        secret = load_secret(env, settings.base_dir, environ, create=not has_sent)
    except MissingSecret:
        raise StateError(
            f"{SECRET_FILE} is missing and {env} is not set, but this ledger has sent mail "
            f"whose unsubscribe links that secret signed: {RESTORE_HINT} or set {env} to it. "
            "`course init --new-secret` makes a new one (links already sent stop working)"
        ) from None
    fingerprint = secret_fingerprint(secret)
    if fingerprint == manifest.secret_fingerprint:
        return
    # A host new to a shared ledger (PostgreSQL, several workers) has no fingerprint of its
    # own yet: the one the ledger's workers sign with says which secret links were signed by.
    shared = ledger.meta(LINKS_SIGNED_WITH_META)
    if not manifest.secret_fingerprint and shared not in (None, fingerprint) and has_sent:
        where = f"{env}" if environ.get(env) else SECRET_FILE
        raise StateError(
            f"the unsubscribe secret in {where} is not the one the other workers on "
            f"{ledger_label(settings.ledger)} sign links with: set {env} to theirs on every "
            "worker (links signed with another would not verify where `course serve` runs)"
        )
    if manifest.secret_fingerprint and has_sent:
        where = f"{env}" if environ.get(env) else SECRET_FILE
        raise StateError(
            f"the unsubscribe secret in {where} is not the one this course's links were signed "
            f"with ({shown(manifest_path(settings), settings.base_dir)}): {RESTORE_HINT} or "
            f"set {env} to the old one. "
            "`course init --new-secret` accepts this one (links already sent stop working)"
        )
    replace_secret_fingerprint(settings, manifest, fingerprint)


def move_aside(settings: Settings, files: list[Path]) -> Path | None:
    """Move the files that exist into state/previous/<time>/; return that folder (or None)."""
    present = [path for path in files if path.exists()]
    if not present:
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    folder = settings.base_dir / PREVIOUS_DIR / stamp
    folder.mkdir(parents=True)
    for path in present:
        shutil.move(path, folder / path.name)
    return folder


def replace_secret_fingerprint(settings: Settings, manifest: Manifest, fingerprint: str) -> None:
    fields = asdict(manifest) | {"secret_fingerprint": fingerprint}
    Manifest(**fields).write(manifest_path(settings))
