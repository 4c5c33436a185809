"""Opening the database: its URL, the engine, SQLite's pragmas and BEGIN, transactions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    DBAPIError,
    NoSuchModuleError,
    OperationalError,
)

from course.errors import LedgerError
from course.ledger.fastpath import driver_execute

DEFAULT_URL: Final = "sqlite:///state/course.db"
BUSY_TIMEOUT_MS: Final = 30_000
# Execution option that makes the SQLite `begin` hook emit BEGIN IMMEDIATE (see _begin_sqlite).
WRITE_OPTION: Final = "ledger_write"
_SQLITE_PRAGMAS: Final = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
)


# --- opening ----------------------------------------------------------------------------------


def parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise LedgerError(f"invalid ledger URL {url!r}: {exc}") from exc
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise LedgerError(
            f"unsupported ledger URL {parsed.render_as_string()!r}: "
            "use sqlite:///path/to/file.db or postgresql://..."
        )
    return parsed


def resolve_sqlite(parsed: URL, base_dir: Path) -> tuple[URL, str]:
    """The URL with a relative path made absolute against base_dir, and the path as written."""
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return parsed, database or ":memory:"
    path = Path(database).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LedgerError(f"cannot create the directory for the ledger {database}: {exc}") from exc
    return parsed.set(database=str(path)), database


def open_engine(parsed: URL, label: str) -> Engine:
    try:
        engine = create_engine(parsed)
    except (NoSuchModuleError, ImportError) as exc:
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
    immediate = conn.get_execution_options().get(WRITE_OPTION, False)
    # Straight to the driver (this hook is SQLite's only): exec_driver_sql's bookkeeping
    # cost more than the BEGIN itself, once per recorded round of messages.
    driver_execute(conn, "BEGIN IMMEDIATE" if immediate else "BEGIN", ())


# --- transactions -----------------------------------------------------------------------------


@contextmanager
def driver_transaction(conn: Connection, label: str) -> Iterator[None]:
    """BEGIN IMMEDIATE and COMMIT straight on SQLite's driver, around execute_prepared() statements.

    The journal commits once per round of messages; SQLAlchemy's transaction bookkeeping
    cost half as much again as the insert and the commit themselves (bench/send.py).
    """
    driver = conn.connection.dbapi_connection
    assert driver is not None
    with _unusable_as_ledger_error(label):
        driver_execute(conn, "BEGIN IMMEDIATE", ())
        try:
            yield
        except BaseException:
            driver.rollback()
            raise
        driver.commit()


@contextmanager
def ledger_transaction(source: Engine | Connection, label: str) -> Iterator[Connection]:
    """A transaction, with the database being unusable (locked, unreadable) as LedgerError."""
    with _unusable_as_ledger_error(label):
        if isinstance(source, Engine):
            with source.begin() as conn:
                yield conn
        else:
            with source.begin():
                yield source


@contextmanager
def _unusable_as_ledger_error(label: str) -> Iterator[None]:
    """Locked, read-only, disk full, "file is not a database" become LedgerError: the
    operator can act on these. Constraint and SQL errors are bugs and keep their traceback."""
    try:
        yield
    except DBAPIError as exc:
        if not isinstance(exc, OperationalError) and type(exc) is not DatabaseError:
            raise
        raise LedgerError(f"the ledger {label} cannot be used: {exc.orig}") from exc
    except sqlite3.OperationalError as exc:  # straight from the driver's COMMIT
        raise LedgerError(f"the ledger {label} cannot be used: {exc}") from exc
