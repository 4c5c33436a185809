"""Statements run straight through the DB-API driver, skipping SQLAlchemy's per-row work."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect, Table, insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.types import TypeEngine


@dataclass(frozen=True)
class _Prepared:
    """A Core statement compiled for one dialect, with what its driver parameters need."""

    sql: str
    order: tuple[str, ...] | None
    defaults: dict[str, Any]
    processors: dict[str, Callable[[Any], Any]]


_PREPARED: dict[tuple[int, str], _Prepared] = {}


def execute_prepared(conn: Connection, statement: UpdateBase, rows: list[dict[str, Any]]) -> None:
    """Run a prepared statement for each row through the driver's executemany().

    A remote backend journals a message or two per commit: SQLAlchemy's per-execution work
    was most of the cost of that (about 60 us a statement, against 10 us through the driver).
    """
    if rows:
        prepared = _prepare(conn, statement)
        args = [_driver_args(prepared, row) for row in rows]
        # The journal's usual single answer: execute() commits it ~2 us sooner than executemany().
        driver_execute(conn, prepared.sql, args[0] if len(args) == 1 else args)


def driver_execute(conn: Connection, sql: str, args: Any) -> int:
    """Execute on the DB-API cursor inside the connection's transaction; the row count.

    SQLAlchemy's execution context cost several times the statement on the per-message
    path. Driver errors are wrapped the way SQLAlchemy would, so callers see one kind.
    """
    dbapi = conn.dialect.loaded_dbapi
    cursor = conn.connection.cursor()
    try:
        if isinstance(args, list):
            cursor.executemany(sql, args)
        else:
            cursor.execute(sql, args)
        return int(cursor.rowcount)
    except dbapi.Error as exc:
        raise DBAPIError.instance(sql, args, exc, dbapi.Error) from exc
    finally:
        cursor.close()


def _driver_args(prepared: _Prepared, row: dict[str, Any]) -> Any:
    values = {**prepared.defaults, **row}
    for name, process in prepared.processors.items():
        values[name] = process(values[name])
    return values if prepared.order is None else tuple(values[n] for n in prepared.order)


def _prepare(conn: Connection, statement: UpdateBase) -> _Prepared:
    key = (id(statement), conn.dialect.name)
    prepared = _PREPARED.get(key)
    if prepared is None:
        compiled = statement.compile(dialect=conn.dialect)
        # binds holds each anonymous parameter twice: under a raw '%(id name)s' key and
        # under the name the SQL uses; only the latter are wanted.
        binds = {name: bind for name, bind in compiled.binds.items() if not name.startswith("%(")}
        processors: dict[str, Callable[[Any], Any]] = {}
        for name, bind in binds.items():
            process = bind.type.bind_processor(conn.dialect)
            if process is not None:
                processors[name] = process
        defaults = {name: bind.value for name, bind in binds.items() if not bind.required}
        order = tuple(compiled.positiontup or ()) if compiled.positional else None
        prepared = _Prepared(str(compiled), order, defaults, processors)
        _PREPARED[key] = prepared
    return prepared


def bind_processor(type_: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any]:
    """What `type_` turns a Python value into for this dialect's driver."""
    process = type_.bind_processor(dialect)
    return process if process is not None else _unchanged


def _unchanged(value: Any) -> Any:
    return value


def insert_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """INSERT `rows` (driver-ready values, in `columns` order) with the driver's executemany().

    The statement is still compiled by SQLAlchemy for the connection's dialect; the rows skip
    SQLAlchemy's per-row parameter processing, which was a third of a 1,000,000-row import.
    So each value must already be what its column's bind processor would make of it.
    """
    compiled = insert(table).compile(dialect=conn.dialect, column_keys=list(columns))
    params: Sequence[tuple[Any, ...]] | list[dict[str, Any]]
    if not compiled.positional:
        params = [dict(zip(columns, row, strict=True)) for row in rows]
    elif tuple(compiled.positiontup or ()) == tuple(columns):
        params = rows
    else:
        order = [columns.index(name) for name in compiled.positiontup or ()]
        params = [tuple(row[i] for i in order) for row in rows]
    conn.exec_driver_sql(str(compiled), params)
