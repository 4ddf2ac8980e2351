"""Bulk row inserts at driver speed: PostgreSQL COPY, SQLite executemany, Core executemany elsewhere.

SQLAlchemy's per-row statement machinery costs more than the database itself when a contact import
writes tens of thousands of rows a second. Here the column values are converted once per row with the
dialect's own bind processors (so timestamps and JSON are stored exactly as the ORM would store them)
and handed to the driver in one call: ``copy_records_to_table`` (the PostgreSQL COPY protocol, binary)
on asyncpg, ``executemany`` on SQLite. It runs inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncConnection

SQLITE_IMPORT_CACHE_KIB = 65536
"""Page cache of a connection that bulk-loads SQLite: random-key index inserts need it (64 MiB)."""


def _processors(
    table: Table, columns: Sequence[str], connection: AsyncConnection
) -> list[Callable[[Any], Any] | None]:
    dialect = connection.dialect
    return [table.c[name].type._cached_bind_processor(dialect) for name in columns]


def _records(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    processors: Sequence[Callable[[Any], Any] | None],
) -> list[tuple[Any, ...]]:
    converted: list[Callable[[Any], Any]] = [_remembering(p) if p is not None else _same for p in processors]
    pairs = list(zip(columns, converted, strict=True))
    return [
        tuple(None if (value := row[name]) is None else convert(value) for name, convert in pairs)
        for row in rows
    ]


def _same(value: Any) -> Any:
    return value


def _remembering(processor: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``processor`` that converts a value it just converted only once (one ``now`` for a whole batch)."""
    last: list[Any] = [object(), None]

    def convert(value: Any) -> Any:
        if value is not last[0]:
            last[0], last[1] = value, processor(value)
        return last[1]

    return convert


async def bulk_insert(connection: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table`` in the connection's transaction."""
    if not rows:
        return
    columns = list(rows[0])
    backend = connection.dialect.name
    driver = connection.dialect.driver
    if backend == "postgresql" and driver == "asyncpg":
        raw = await connection.get_raw_connection()
        records = _records(rows, columns, _processors(table, columns, connection))
        await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
            table.name, records=records, columns=columns
        )
        return
    if backend == "sqlite" and driver == "aiosqlite":
        raw = await connection.get_raw_connection()
        records = _records(rows, columns, _processors(table, columns, connection))
        sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        await raw.driver_connection.executemany(sql, records)  # type: ignore[union-attr]
        return
    await connection.execute(insert(table), list(rows))


async def prepare_for_bulk(connection: AsyncConnection) -> None:
    """Per-connection tuning before a bulk load (a larger SQLite page cache; nothing elsewhere)."""
    if connection.dialect.name == "sqlite":
        raw = await connection.get_raw_connection()
        await raw.driver_connection.execute(f"PRAGMA cache_size=-{SQLITE_IMPORT_CACHE_KIB}")  # type: ignore[union-attr]
