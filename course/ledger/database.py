"""The database under the ledger: its URL, the engine, transactions and dialect differences.

Everything above this module speaks SQLAlchemy Core and asks a `Database` for a transaction;
what differs between SQLite and PostgreSQL (pragmas, how a write transaction begins, upserts,
errors the operator can act on) is decided here.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, Final, TypeVar

from sqlalchemy import (
    ClauseElement,
    ColumnElement,
    Connection,
    Dialect,
    Engine,
    Insert,
    Table,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    DBAPIError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.compiler import SQLCompiler

from course.errors import LedgerError

_LOG = logging.getLogger("course.ledger")
_T = TypeVar("_T")
# Goes at a transaction PostgreSQL aborted to break a deadlock, before giving up.
_WRITE_ATTEMPTS: Final = 4
DEFAULT_URL: Final = "sqlite:///state/course.db"
BUSY_TIMEOUT_MS: Final = 30_000
# Execution option that makes the SQLite `begin` hook emit BEGIN IMMEDIATE (see _begin_sqlite).
_WRITE_OPTION: Final = "ledger_write"
_SQLITE_PRAGMAS: Final = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
)
# psycopg connection settings: give up connecting after 10 s rather than hang a tick, and
# notice a dead server (or a dead network) within about a minute.
_PG_CONNECT_ARGS: Final = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "application_name": "course",
}


class Database:
    """One ledger database: read and write transactions, and what differs between dialects.

    Open it with `Database.open()`; `close()` when done. Writes of one process go one at a
    time through a single kept connection; reads use the pool.
    """

    def __init__(self, engine: Engine, label: str) -> None:
        self.engine = engine
        self.label = label  # the database as the operator wrote it (password masked)
        self._writer = engine.execution_options(**{_WRITE_OPTION: True})
        self._write_lock = threading.Lock()
        self._write_conn: Connection | None = None
        self._driver_conn: PoolProxiedConnection | None = None
        # SQLite: the journal's transactions queue with every other write of the process.
        self._driver_lock = threading.Lock() if self.is_shared else self._write_lock

    @classmethod
    def open(cls, url: str, *, base_dir: Path) -> Database:
        """The database at `url`; a relative SQLite path is resolved against `base_dir`.

        LedgerError names the URL when it is invalid or its driver is missing.
        """
        return cls(*_engine(url, base_dir))

    @classmethod
    def open_rolled_back(cls, url: str, *, base_dir: Path) -> Database:
        """The database at `url` as one transaction that every read and write joins, and
        that close() rolls back: a rehearsal whose changes nobody else ever sees."""
        return _RolledBack(*_engine(url, base_dir))

    @classmethod
    def open_if_exists(cls, url: str, *, base_dir: Path) -> Database | None:
        """Like open(), but None for a SQLite file that is not there yet, which stays so."""
        parsed = _parse_url(url)
        if parsed.get_backend_name() == "sqlite":
            path = _sqlite_path(parsed, base_dir)
            if path is not None and not path.is_file():
                return None
        return cls.open(url, base_dir=base_dir)

    @classmethod
    def snapshot_sqlite(cls, url: str, *, base_dir: Path, target: Path) -> bool:
        """Copy the SQLite ledger at `url` into `target` with sqlite3's online backup API.

        One consistent copy, WAL content included, taken while a running `course run` goes
        on writing (the copy only reads). False, with nothing created, when there is no file.
        """
        source = _sqlite_path(_parse_url(url), base_dir)
        if source is None or not source.is_file():
            return False
        try:
            with (
                closing(sqlite3.connect(source, timeout=BUSY_TIMEOUT_MS / 1000)) as real,
                closing(sqlite3.connect(target)) as copy,
            ):
                real.backup(copy)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot copy the ledger {source}: {exc}") from exc
        return True

    @property
    def dialect(self) -> str:
        """Which database this is: "sqlite" or "postgresql"."""
        return self.engine.dialect.name

    @property
    def is_shared(self) -> bool:
        """Whether several workers may write at once (PostgreSQL), or one at a time (SQLite)."""
        return self.dialect == "postgresql"

    def close(self) -> None:
        with self._write_lock:
            if self._write_conn is not None:
                self._write_conn.close()
                self._write_conn = None
        with self._driver_lock:
            if self._driver_conn is not None:
                self._driver_conn.close()
                self._driver_conn = None
        self.engine.dispose()

    # --- transactions ----------------------------------------------------------------------

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A write transaction: on SQLite, BEGIN IMMEDIATE and one per process at a time.

        On SQLite, threads of one process queue on a lock rather than on SQLite's busy
        handler, which sleeps for milliseconds at a time; other processes still wait on
        busy_timeout. On PostgreSQL, transactions run side by side (READ COMMITTED), and
        each statement that reads then writes takes its own row or advisory locks.
        """
        if self.is_shared:
            with _unusable_as_ledger_error(self.label), self._writer.begin() as conn:
                yield conn
            return
        with self._write_lock:
            # One connection kept for writing: checking one out of the pool for every
            # transaction cost more than the transaction when recording message by message.
            if self._write_conn is None or self._write_conn.invalidated:
                self._write_conn = self._writer.connect()
            with _unusable_as_ledger_error(self.label), self._write_conn.begin():
                yield self._write_conn

    def write(self, work: Callable[[Connection], _T]) -> _T:
        """`work(conn)` in a write transaction, run again if PostgreSQL chose it to break a
        deadlock (or a serialization failure) and rolled it back.

        Workers' transactions touch overlapping rows in orders nobody fixes (a fold updating
        its batch's subscribers while a sync removes some of them); PostgreSQL detects the
        cycle and aborts one side, which then simply has another go. `work` must do nothing
        outside the transaction that it cannot do twice.
        """
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            try:
                with self.writing() as conn:
                    return work(conn)
            except LedgerError as exc:
                if attempt == _WRITE_ATTEMPTS or not _worth_retrying(exc):
                    raise
                _LOG.info("%s; trying the transaction again", exc)
                time.sleep(random.uniform(0.01, 0.05) * attempt)  # noqa: S311 - jitter only
        raise AssertionError("unreachable")

    @contextmanager
    def writing_on_driver(self) -> Iterator[DBAPICursor]:
        """A DB-API cursor for writes, for statements from `driver_sql()`, committed at the end.

        For the one measured hot path: the outcome journal commits once per round of a
        message or two, and SQLAlchemy's statement and transaction bookkeeping cost more
        than the insert and the commit themselves (bench/send.py). The connection is one
        SQLAlchemy hands out raw (Engine.raw_connection) and never manages, kept for these
        writes only. On SQLite they are one transaction (BEGIN IMMEDIATE ... COMMIT) and
        queue on the same lock as `writing()`; on PostgreSQL the connection is in autocommit
        mode, each statement its own transaction in one round trip (a BEGIN and a COMMIT
        more were two thirds of a journal write's time there).
        """
        with self._driver_lock:
            if self._driver_conn is None:
                with _unusable_as_ledger_error(self.label):
                    self._driver_conn = self.engine.raw_connection()
                if self.is_shared:
                    self._prepare_journal_session(self._driver_conn)
            driver = self._driver_conn
            try:
                with _driver_errors_as_ledger_error(self.engine, self.label):
                    cursor = driver.cursor()
                    try:
                        if self.is_shared:
                            yield cursor
                            return
                        cursor.execute("BEGIN IMMEDIATE")  # autocommit: _on_sqlite_connect
                        try:
                            yield cursor
                        except BaseException:
                            driver.rollback()
                            raise
                        driver.commit()
                    finally:
                        cursor.close()
            except LedgerError:
                # The connection may be broken (server gone): the next transaction reconnects.
                self._driver_conn = None
                driver.invalidate()
                raise

    def _prepare_journal_session(self, driver: PoolProxiedConnection) -> None:
        # The journal commits a round of answers before that connection sends again. On
        # PostgreSQL, waiting for each commit's WAL flush would cap a worker at the disk's
        # flush rate; without the wait, an outcome is safe from a worker crash at once and
        # from a database crash a moment later, like SQLite's synchronous=NORMAL. What a
        # database crash loses is the latest commits only, never an earlier one without a
        # later one: their deliveries are still `claimed`, so the crash rule sends them
        # again (a duplicate, never a skip).
        with _driver_errors_as_ledger_error(self.engine, self.label):
            cursor = driver.cursor()
            try:
                cursor.execute("SET synchronous_commit = off")
            finally:
                cursor.close()
            driver.commit()
            driver.dbapi_connection.autocommit = True  # type: ignore[union-attr]

    def driver_sql(self, statement: ClauseElement) -> str:
        """`statement` as this driver's SQL, taking its parameters as a dict by name."""
        if self.dialect == "sqlite":
            # The sqlite3 module takes :name placeholders with a dict; psycopg's %(name)s
            # (the PostgreSQL dialect's own paramstyle) does too.
            return str(statement.compile(dialect=sqlite.dialect(paramstyle="named")))
        return str(statement.compile(dialect=self.engine.dialect))

    def driver_sql_positional(self, statement: ClauseElement) -> tuple[str, tuple[str, ...]]:
        """`statement` as this driver's SQL taking its parameters as a tuple, and the names
        of the parameters in the order the tuple must give them.

        For the largest writes (a list sync inserts a million rows): the drivers bind a tuple
        faster than a dict, and a tuple is cheaper to build.
        """
        dialect: Dialect
        if self.dialect == "sqlite":
            dialect = sqlite.dialect(paramstyle="qmark")
        else:
            # psycopg takes %s with a tuple (SQLAlchemy's dialect class is not annotated).
            dialect = postgresql.psycopg.dialect(paramstyle="format")  # type: ignore[no-untyped-call]
        compiled = statement.compile(dialect=dialect)
        if not isinstance(compiled, SQLCompiler):
            raise TypeError(f"not a SQL statement: {statement!r}")
        return str(compiled), tuple(compiled.positiontup or ())

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read transaction: one consistent snapshot; under WAL it never blocks writers."""
        with _unusable_as_ledger_error(self.label), self.engine.begin() as conn:
            yield conn

    # --- locks -----------------------------------------------------------------------------

    def lock_for_transaction(self, conn: Connection, name: str) -> None:
        """Hold the lock `name` until `conn`'s transaction ends, waiting for it if need be.

        On PostgreSQL, a transaction-level advisory lock, so only one worker at a time runs
        what it guards (migrations, a CSV sync, recovery). On SQLite a write transaction
        holds the whole database already (BEGIN IMMEDIATE).
        """
        if self.is_shared:
            conn.execute(select(func.pg_advisory_xact_lock(advisory_key(name))))

    def try_session_lock(self, name: str) -> Connection | None:
        """A connection of its own holding the PostgreSQL advisory lock `name`, or None.

        The lock lasts as long as the connection: closing it, or the process dying, lets
        another worker take it. Only for PostgreSQL.
        """
        with _unusable_as_ledger_error(self.label):
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            with _unusable_as_ledger_error(self.label):
                # A leader whose host vanishes is noticed by the server within ~1 minute
                # (these are per-session settings), so its lock passes on.
                for setting in ("idle 30", "interval 10", "count 3"):
                    name_, value = setting.split()
                    conn.exec_driver_sql(f"SET tcp_keepalives_{name_} = {value}")
                held = conn.execute(select(func.pg_try_advisory_lock(advisory_key(name))))
                if held.scalar_one():
                    return conn
        except BaseException:
            conn.close()
            raise
        conn.close()
        return None

    # --- dialect differences ---------------------------------------------------------------

    def insert_or_skip(self, table: Table) -> Insert:
        """INSERT ... ON CONFLICT DO NOTHING.

        It reads the same on both databases, but SQLAlchemy builds it only from each
        dialect's own insert().
        """
        if self.dialect == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing()
        return sqlite.insert(table).on_conflict_do_nothing()

    def upsert(
        self,
        table: Table,
        values: dict[str, Any],
        *,
        key: tuple[str, ...],
        changed: dict[str, Any] | None = None,
        where: ColumnElement[bool] | None = None,
    ) -> Insert:
        """INSERT ... ON CONFLICT (key) DO UPDATE SET changed [WHERE where].

        One statement, so no read-then-write race: `changed` defaults to every value but the
        key; `where` limits which existing rows are updated (the row count says whether
        anything was inserted or updated).
        """
        if changed is None:
            changed = {name: value for name, value in values.items() if name not in key}
        if self.dialect == "postgresql":
            pg = postgresql.insert(table).values(values)
            return pg.on_conflict_do_update(index_elements=key, set_=changed, where=where)
        lite = sqlite.insert(table).values(values)
        return lite.on_conflict_do_update(index_elements=key, set_=changed, where=where)


class _RolledBack(Database):
    """One connection and one outer transaction; each ledger transaction is a savepoint in it.

    Reads see the rehearsal's own writes (a tick must see its own claims). Rows it writes
    stay locked until close() rolls everything back, so keep a rehearsal short.
    """

    def __init__(self, engine: Engine, label: str) -> None:
        super().__init__(engine, label)
        self._lock = threading.RLock()  # a read may happen inside a write of the same thread
        with _unusable_as_ledger_error(label):
            self._conn = self._writer.connect()
            self._outer = self._conn.begin()

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        with self._lock, _unusable_as_ledger_error(self.label), self._conn.begin_nested():
            yield self._conn

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        with self.writing() as conn:
            yield conn

    @contextmanager
    def writing_on_driver(self) -> Iterator[DBAPICursor]:
        with self._lock, _driver_errors_as_ledger_error(self.engine, self.label):
            driver = self._conn.connection.dbapi_connection
            assert driver is not None  # a checked-out connection always has its driver's
            cursor = driver.cursor()
            try:
                cursor.execute("SAVEPOINT course_driver")
                try:
                    yield cursor
                except BaseException:
                    cursor.execute("ROLLBACK TO SAVEPOINT course_driver")
                    raise
                cursor.execute("RELEASE SAVEPOINT course_driver")
            finally:
                cursor.close()

    def close(self) -> None:
        with self._lock:
            if self._outer.is_active:
                self._outer.rollback()
            self._conn.close()
        super().close()


# --- opening ----------------------------------------------------------------------------------


def advisory_key(name: str) -> int:
    """The 64-bit PostgreSQL advisory lock key of a lock `name` of this program."""
    digest = hashlib.sha256(f"dripcourse ledger: {name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def parse_backend(url: str) -> str:
    """Which database a ledger URL names: "sqlite" or "postgresql"."""
    return str(_parse_url(url).get_backend_name())


def _engine(url: str, base_dir: Path) -> tuple[Engine, str]:
    parsed = _parse_url(url)
    label = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite":
        parsed, label = _resolve_sqlite(parsed, base_dir)
    return _open_engine(parsed, label), label


def _parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        raise LedgerError(f"invalid ledger URL {url!r}: {exc}") from exc
    if parsed.drivername in ("postgres", "postgresql", "postgresql+psycopg"):
        # psycopg 3 (the `postgres` extra), whatever SQLAlchemy's default driver is.
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return parsed
    shown = parsed.render_as_string(hide_password=True)
    raise LedgerError(
        f"unsupported ledger URL {shown!r}: use sqlite:///path/to/file.db or "
        "postgresql://user:password@host:port/database"
    )


def _resolve_sqlite(parsed: URL, base_dir: Path) -> tuple[URL, str]:
    """The URL with a relative path made absolute against base_dir, and the path as written."""
    database = parsed.database or ""
    path = _sqlite_path(parsed, base_dir)
    if path is None:
        return parsed, database or ":memory:"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LedgerError(f"cannot create the directory for the ledger {database}: {exc}") from exc
    return parsed.set(database=str(path)), database


def _sqlite_path(parsed: URL, base_dir: Path) -> Path | None:
    """The SQLite file the URL names, relative paths against base_dir; None for in-memory."""
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    path = Path(database).expanduser()
    return path if path.is_absolute() else base_dir / path


def _open_engine(parsed: URL, label: str) -> Engine:
    postgres = parsed.get_backend_name() == "postgresql"
    try:
        if postgres:
            engine = create_engine(parsed, connect_args=dict(_PG_CONNECT_ARGS))
        else:
            engine = create_engine(parsed)
    except (NoSuchModuleError, ImportError) as exc:
        if postgres:
            raise LedgerError(
                f"cannot open the ledger {label}: the PostgreSQL driver is not installed; "
                "install the postgres extra: pip install 'dripcourse[postgres]'"
            ) from exc
        raise LedgerError(f"cannot open the ledger {label}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _begin_sqlite)
    return engine


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control away from the sqlite3 module (see _begin_sqlite).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def _begin_sqlite(conn: Connection) -> None:
    # The sqlite3 module would BEGIN only before the first INSERT/UPDATE, so a transaction's
    # reads would not be one snapshot, and a read-then-write transaction could fail with
    # SQLITE_BUSY when upgrading its lock. Writers take the write lock up front instead
    # (waiting up to busy_timeout); readers get a plain BEGIN, which never blocks under WAL.
    immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def _driver_errors_as_ledger_error(engine: Engine, label: str) -> Iterator[None]:
    """As _unusable_as_ledger_error, for errors straight from the DB-API driver."""
    dbapi = engine.dialect.loaded_dbapi
    try:
        yield
    except dbapi.Error as exc:
        if not isinstance(exc, dbapi.OperationalError) and type(exc) is not dbapi.DatabaseError:
            raise
        raise LedgerError(_unusable_message(label, exc)) from exc


@contextmanager
def _unusable_as_ledger_error(label: str) -> Iterator[None]:
    """Server down, wrong password, database missing, locked, read-only, disk full, "file is
    not a database" become LedgerError: the operator can act on these. Constraint and SQL
    errors are bugs and keep their traceback."""
    try:
        yield
    except DBAPIError as exc:
        if not isinstance(exc, OperationalError) and type(exc) is not DatabaseError:
            raise
        raise LedgerError(_unusable_message(label, exc.orig or exc)) from exc


def _worth_retrying(error: LedgerError) -> bool:
    """Whether PostgreSQL rolled the transaction back to break a deadlock or a conflict."""
    cause = error.__cause__
    orig = getattr(cause, "orig", cause)
    return getattr(orig, "sqlstate", None) in ("40P01", "40001")


# What a driver's message says -> what the operator can do about it.
_HINTS: Final = (
    ("connection refused", "is PostgreSQL running and listening there?"),
    ("could not translate host name", "check the host name in the URL"),
    ("timeout expired", "is the host reachable, and the port right?"),
    ("password authentication failed", "check the user and password in the URL"),
    ("no password supplied", "put the password in the URL"),
    ("does not exist", "create it first, or check the name in the URL"),
    ("no pg_hba.conf entry", "the server's pg_hba.conf does not let this host in"),
)


def _unusable_message(label: str, error: BaseException) -> str:
    """One line naming the ledger (its password masked) and what went wrong."""
    text = str(error).strip()
    connecting = text.startswith("connection failed:") or "connection to server" in text
    # psycopg says "connection failed: connection to server at "h", port p failed: FATAL:
    # <what>" and may add a second line of advice; keep <what>, on one line.
    detail = re.sub(r"\s+", " ", text.split("\n", 1)[0])
    detail = re.sub(
        r'^connection failed: (connection to server at "[^"]*", port \d+ failed: )?', "", detail
    )
    detail = re.sub(r"^(FATAL|ERROR): +", "", detail)
    hint = next((h for marker, h in _HINTS if marker in detail.lower()), "")
    suffix = f" ({hint})" if hint else ""
    if connecting:
        return f"cannot connect to the ledger {label}: {detail}{suffix}"
    return f"the ledger {label} cannot be used: {detail}{suffix}"
