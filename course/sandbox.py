"""The sandbox `course simulate` runs in: its own ledger and inbox under state/simulate/.

Simulating fifteen days in seconds must not mark the real subscribers completed or bury
real mail in the real inbox. The sandbox starts from a copy of the real ledger (or an
empty one) and always delivers into its own Maildir, whatever backend is configured, so
nothing leaves the machine. The preview shows its inbox apart from the real one.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from course.config import Settings
from course.errors import CourseError

FOLDER = "state/simulate"
LEDGER_FILE = "course.db"


def sandbox_folder(settings: Settings) -> Path:
    return settings.base_dir / FOLDER


def sandbox_inbox(settings: Settings) -> Path:
    return sandbox_folder(settings) / "inbox"


def sandbox_settings(settings: Settings) -> Settings:
    """The settings with the ledger and the delivery moved into the sandbox."""
    folder = sandbox_folder(settings)
    delivery = replace(
        settings.delivery, backend="inbox", inbox=folder / "inbox", outbox=folder / "outbox"
    )
    return replace(settings, ledger=f"sqlite:///{folder / LEDGER_FILE}", delivery=delivery)


def prepare_sandbox(settings: Settings, *, fresh: bool) -> bool:
    """Empty the sandbox and start its ledger from a copy of the real one (unless `fresh`).

    True when it starts from a copy; False when it starts empty (asked, or no real ledger
    yet). The real ledger is only read, with SQLite's backup API or one read transaction.
    """
    folder = sandbox_folder(settings)
    inside = [
        p for p in _real_paths(settings) if p == folder.resolve() or folder.resolve() in p.parents
    ]
    if inside:
        raise CourseError(
            f"{settings.source}: {inside[0]} is inside the sandbox {folder}, which simulate "
            "empties; keep the real ledger and inbox outside it"
        )
    try:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    except OSError as exc:
        raise CourseError(f"{folder}: cannot prepare the sandbox: {exc.strerror or exc}") from None
    if fresh:
        return False
    # Imported here: the preview needs the sandbox's paths, not the database stack.
    from course.ledger import Ledger

    return Ledger.copy(settings.ledger, base_dir=settings.base_dir, target=folder / LEDGER_FILE)


def _real_paths(settings: Settings) -> set[Path]:
    """Folders holding the real course, which emptying the sandbox must never touch."""
    paths = {settings.delivery.inbox.resolve(), settings.delivery.outbox.resolve()}
    if settings.ledger.startswith("sqlite:///"):
        ledger = Path(settings.ledger.removeprefix("sqlite:///"))
        paths.add((ledger if ledger.is_absolute() else settings.base_dir / ledger).resolve())
    return paths
