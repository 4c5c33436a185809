"""Who is working on the ledger: the runner lease, its heartbeat, and taking it over.

One `course run` (or `send`, `simulate`) at a time holds the lease; a second refuses to start,
naming the first. The lease of a runner that died is taken over.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, insert, select, update
from sqlalchemy import delete as sql_delete
from sqlalchemy.exc import IntegrityError

from course.errors import LedgerError
from course.ledger.database import Database
from course.ledger.schema import RUNNER, require_utc

LEASE_NAME: Final = "course run"


class Workers:
    """The runner lease of one ledger, and which owner this process holds it as."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.owner = ""  # the lease this object holds; "" for none

    def acquire(
        self, *, owner: str, pid: int, host: str, now: datetime, stale_after: timedelta
    ) -> None:
        """Take the runner lease, so a second `course run` on this ledger refuses to start.

        `owner` must be unique per process run (e.g. a uuid4). A lease held by another owner is
        taken over when its heartbeat is older than `stale_after`, or when it names a pid on
        this host that is no longer alive; otherwise LedgerError says who holds it.
        """
        now = require_utc(now)
        try:
            self._take(owner=owner, pid=pid, host=host, now=now, stale_after=stale_after)
        except IntegrityError:
            # Two runners inserted the first lease row at once; looking again names the winner.
            self._take(owner=owner, pid=pid, host=host, now=now, stale_after=stale_after)
        self.owner = owner

    def heartbeat(self, *, owner: str, now: datetime) -> None:
        """Show the lease holder is alive; LedgerError if another runner has taken it over."""
        now = require_utc(now)
        r = RUNNER
        with self._db.writing() as conn:
            result = conn.execute(
                update(r).where(r.c.name == LEASE_NAME, r.c.owner == owner).values(heartbeat_at=now)
            )
        if result.rowcount == 0:
            raise LedgerError(
                f"lost the lease on the ledger {self._db.label}: another `course run` took it over"
            )

    def release(self, *, owner: str) -> None:
        """Give the lease up (if `owner` still holds it)."""
        r = RUNNER
        with self._db.writing() as conn:
            conn.execute(sql_delete(r).where(r.c.name == LEASE_NAME, r.c.owner == owner))
        if self.owner == owner:
            self.owner = ""

    def _take(
        self, *, owner: str, pid: int, host: str, now: datetime, stale_after: timedelta
    ) -> None:
        r = RUNNER
        lease = {"owner": owner, "pid": pid, "host": host, "started_at": now, "heartbeat_at": now}
        with self._db.writing() as conn:
            holder = conn.execute(select(r).where(r.c.name == LEASE_NAME)).first()
            if holder is None:
                conn.execute(insert(r).values(name=LEASE_NAME, **lease))
                return
            if holder.owner != owner and _is_live(holder, host, now, stale_after):
                raise LedgerError(_held_message(holder, self._db.label))
            conn.execute(update(r).where(r.c.name == LEASE_NAME).values(lease))


def lease_holder(conn: Connection) -> str | None:
    """The owner holding the runner lease, or None."""
    r = RUNNER
    holder: str | None = conn.execute(
        select(r.c.owner).where(r.c.name == LEASE_NAME)
    ).scalar_one_or_none()
    return holder


def _is_live(holder: Any, host: str, now: datetime, stale_after: timedelta) -> bool:
    """Whether the lease holder may still be running."""
    if now - holder.heartbeat_at >= stale_after:
        return False
    # On this host we can ask the kernel; elsewhere only the heartbeat tells.
    return holder.host != host or _pid_alive(holder.pid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _held_message(holder: Any, label: str) -> str:
    started = holder.started_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f"another `course run` (pid {holder.pid} on host {holder.host}, started {started}) "
        f"holds the ledger {label}; stop it first"
    )
