"""Who is working on the ledger: the worker table, heartbeats, take-over, and the leader.

Every `course run`, `send` and `simulate` process registers as a worker (a row: owner id,
host, pid, started, heartbeat) and keeps its heartbeat fresh while it runs. A worker whose
heartbeat has gone stale, or whose pid is gone on this host, is dead; any other worker
takes it over with one conditional DELETE, so of two workers finding the same dead one,
exactly one does (the crash rule then recovers its claims: queue.recover_claims).

On SQLite the worker table is the single-writer lease: a second live worker is refused,
naming the first. On PostgreSQL any number of workers register, and one of them, elected
through a PostgreSQL advisory lock, leads: it runs the singleton jobs (CSV sync, bounce
processing). On SQLite the one worker leads.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, delete, insert, select, update

from course.errors import LedgerError
from course.ledger.database import Database
from course.ledger.schema import WORKERS, require_utc

_LOG = logging.getLogger("course.ledger")
# How long a worker may go without a heartbeat before others may take it over, unless
# register() says otherwise.
DEFAULT_STALE_AFTER: Final = timedelta(minutes=5)
_LEADER_LOCK: Final = "leader"


@dataclass(frozen=True, slots=True)
class WorkerView:
    """One registered worker, for `course status`."""

    owner: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    leader_since: datetime | None
    alive: bool


class Workers:
    """The worker table of one ledger, and this process's own registration in it."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.owner = ""  # this process's worker id; "" while not registered
        self.host = ""
        self.stale_after = DEFAULT_STALE_AFTER
        self._leader_conn: Connection | None = None

    # --- joining and leaving ---------------------------------------------------------------

    def register(
        self, *, owner: str, pid: int, host: str, now: datetime, stale_after: timedelta
    ) -> None:
        """Join the ledger's workers as `owner` (unique per process run, e.g. a uuid4).

        On SQLite, LedgerError if another live worker holds the ledger (the single-writer
        lease); a dead one is taken over. On PostgreSQL, any number may join.
        """
        now = require_utc(now)
        self.host, self.stale_after = host, stale_after
        row = {"owner": owner, "pid": pid, "host": host, "started_at": now, "heartbeat_at": now}
        with self._db.writing() as conn:
            for other in conn.execute(select(WORKERS).where(WORKERS.c.owner != owner)).all():
                if self._is_live(other, now):
                    if not self._db.is_shared:
                        raise LedgerError(_held_message(other, self._db.label))
                else:
                    take_over(conn, other)
            if not self._db.is_shared:
                row["leader_since"] = now  # the single writer leads
            conn.execute(delete(WORKERS).where(WORKERS.c.owner == owner))
            conn.execute(insert(WORKERS).values(row))
        self.owner = owner

    def heartbeat(self, *, owner: str, now: datetime) -> None:
        """Show `owner` is alive; LedgerError if another worker has taken it over."""
        now = require_utc(now)
        w = WORKERS
        with self._db.writing() as conn:
            result = conn.execute(update(w).where(w.c.owner == owner).values(heartbeat_at=now))
        if result.rowcount == 0:
            raise LedgerError(
                f"lost the lease on the ledger {self._db.label}: another `course run` took it "
                "over, as this one had stopped sending heartbeats"
            )

    def release(self, *, owner: str) -> None:
        """Leave the ledger (and its leadership) as `owner`."""
        self.resign()
        with self._db.writing() as conn:
            conn.execute(delete(WORKERS).where(WORKERS.c.owner == owner))
        if self.owner == owner:
            self.owner = ""

    @contextmanager
    def beating(
        self, *, owner: str, clock: Callable[[], datetime], every: float
    ) -> Iterator[Callable[[], bool]]:
        """Heartbeats from a thread every `every` seconds while the block runs.

        So a long tick (a big batch, a slow server), `send` or `simulate` never looks dead.
        Yields a function that says whether the worker has lost its registration (another
        worker took it over): the caller should then stop as soon as it can.
        """
        stop, lost = threading.Event(), threading.Event()

        def beat() -> None:
            while not stop.wait(every):
                try:
                    self.heartbeat(owner=owner, now=clock())
                except LedgerError as exc:
                    if "took it over" in str(exc):
                        _LOG.error("%s; stopping", exc)
                        lost.set()
                        return
                    _LOG.warning("heartbeat failed: %s; trying again in %.0f s", exc, every)

        thread = threading.Thread(target=beat, name="course-heartbeat", daemon=True)
        thread.start()
        try:
            yield lost.is_set
        finally:
            stop.set()
            thread.join()

    # --- who is alive ----------------------------------------------------------------------

    def dead(self, now: datetime) -> list[Any]:
        """The worker rows that are dead at `now` (never this process's own)."""
        now = require_utc(now)
        with self._db.reading() as conn:
            rows = conn.execute(select(WORKERS).where(WORKERS.c.owner != self.owner)).all()
        return [row for row in rows if not self._is_live(row, now)]

    def take_over_dead(self, conn: Connection, now: datetime) -> list[str]:
        """Take over every dead worker, inside `conn`'s transaction; their owner ids."""
        rows = conn.execute(select(WORKERS).where(WORKERS.c.owner != self.owner)).all()
        return [row.owner for row in rows if not self._is_live(row, now) and take_over(conn, row)]

    def listing(self, now: datetime) -> list[WorkerView]:
        """Every registered worker, leader first, then by start time."""
        now = require_utc(now)
        with self._db.reading() as conn:
            rows = conn.execute(select(WORKERS).order_by(WORKERS.c.started_at)).all()
        views = [
            WorkerView(
                owner=row.owner,
                host=row.host,
                pid=row.pid,
                started_at=row.started_at,
                heartbeat_at=row.heartbeat_at,
                leader_since=row.leader_since,
                alive=self._is_live(row, now),
            )
            for row in rows
        ]
        return sorted(views, key=lambda v: v.leader_since is None)

    def _is_live(self, row: Any, now: datetime) -> bool:
        return row.owner == self.owner or _is_live(row, self.host, now, self.stale_after)

    # --- the leader ------------------------------------------------------------------------

    def lead(self, now: datetime) -> bool:
        """Whether this worker leads, campaigning for it if nobody does; call once a tick.

        On PostgreSQL the leader holds a session advisory lock on a connection of its own:
        when the leader dies, the server drops the connection and its lock, and the next
        worker to campaign wins it. On SQLite the one worker always leads, and so does a
        process that never registered as a worker (a test, a benchmark): it is alone.
        """
        now = require_utc(now)
        if not self.owner or not self._db.is_shared:
            return True
        if self._leader_conn is not None and not self._still_holding():
            self._leader_conn = None
            _LOG.warning("lost the connection that held the leadership; campaigning again")
        if self._leader_conn is None:
            self._leader_conn = self._db.try_session_lock(_LEADER_LOCK)
            if self._leader_conn is None:
                return False
            w = WORKERS
            with self._db.writing() as conn:
                conn.execute(update(w).where(w.c.owner != self.owner).values(leader_since=None))
                conn.execute(update(w).where(w.c.owner == self.owner).values(leader_since=now))
            _LOG.info("this worker now leads: it runs the CSV sync and the other singleton jobs")
        return True

    @property
    def is_leader(self) -> bool:
        """What the last lead() said (always true on SQLite, or when not registered)."""
        return not self.owner or not self._db.is_shared or self._leader_conn is not None

    def resign(self) -> None:
        """Give the leadership up (closing its connection releases the advisory lock)."""
        if self._leader_conn is not None:
            self._leader_conn.close()
            self._leader_conn = None

    def _still_holding(self) -> bool:
        assert self._leader_conn is not None
        try:
            self._leader_conn.exec_driver_sql("SELECT 1")
        except Exception:  # any failure means the session, and its lock, is gone
            self._leader_conn.invalidate()
            return False
        return True

    def forget_all(self) -> None:
        """Drop every worker's registration: for a copy of the ledger, which nobody works on
        yet (their claims then count as a dead worker's, and the crash rule puts them back)."""
        with self._db.writing() as conn:
            conn.execute(delete(WORKERS))


def take_over(conn: Connection, row: Any) -> bool:
    """Take over a dead worker: delete its row if it has not beaten since it was read.

    One conditional statement, so of several workers taking over the same dead one, exactly
    one deletes the row (True); its claims and journal are then nobody's, and the crash rule
    recovers them.
    """
    w = WORKERS
    gone = conn.execute(
        delete(w).where(w.c.owner == row.owner, w.c.heartbeat_at == row.heartbeat_at)
    )
    if gone.rowcount:
        _LOG.warning(
            "took over worker %s (pid %d on host %s, last heartbeat %s): it stopped",
            row.owner,
            row.pid,
            row.host,
            row.heartbeat_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        )
    return bool(gone.rowcount)


def _is_live(row: Any, host: str, now: datetime, stale_after: timedelta) -> bool:
    """Whether a worker may still be running."""
    if now - row.heartbeat_at >= stale_after:
        return False
    # On this host we can ask the kernel; elsewhere only the heartbeat tells.
    return row.host != host or _pid_alive(row.pid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _held_message(row: Any, label: str) -> str:
    started = row.started_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f"another `course run` (pid {row.pid} on host {row.host}, started {started}) "
        f"holds the ledger {label}; stop it first"
    )
