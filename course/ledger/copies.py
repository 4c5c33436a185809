"""A copy of a ledger in a SQLite file, for a sandbox (`course simulate`)."""

from __future__ import annotations

from typing import Final

from sqlalchemy import delete, insert, select

from course.ledger.database import Database
from course.ledger.schema import METADATA, SCHEMA_VERSION

_ROWS_PER_INSERT: Final = 5_000


def copy_rows(source: Database, target: Database) -> None:
    """Every row of every ledger table from `source` into `target` (same schema version).

    One read transaction on the source, so the copy is one consistent moment of it; one
    write transaction on the target, so a failed copy leaves nothing half-filled.
    """
    with source.reading() as reading, target.writing() as writing:
        for table in METADATA.sorted_tables:
            if table is SCHEMA_VERSION:
                continue  # the target's own migrations wrote it
            writing.execute(delete(table))
            rows = reading.execute(select(table)).mappings()
            for chunk in rows.partitions(_ROWS_PER_INSERT):
                writing.execute(insert(table), [dict(row) for row in chunk])
