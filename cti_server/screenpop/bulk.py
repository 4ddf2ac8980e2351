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
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

SQLITE_IMPORT_CACHE_KIB = 65536
"""Page cache of a connection that bulk-loads SQLite: random-key index inserts need it (64 MiB)."""


def _processors(
    table: Table, columns: Sequence[str], connection: AsyncConnection
) -> list[Callable[[Any], Any] | None]:
    dialect = connection.dialect
    return [table.c[name].type._cached_bind_processor(dialect) for name in columns]


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
    await bulk_insert_tuples(connection, table, columns, [tuple(row[c] for c in columns) for row in rows])


async def bulk_insert_tuples(
    connection: AsyncConnection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert ``rows`` (values in ``columns`` order) into ``table`` in the connection's transaction."""
    if not rows:
        return
    if not driver_is_fast(connection):
        await insert_driver_rows(connection, table, columns, rows)
        return
    needed = [
        (index, _remembering(processor))
        for index, processor in enumerate(_processors(table, columns, connection))
        if processor is not None
    ]
    records: Sequence[Sequence[Any]] = rows
    if needed:
        converted = []
        for row in rows:
            values = list(row)
            for index, convert in needed:
                if values[index] is not None:
                    values[index] = convert(values[index])
            converted.append(values)
        records = converted
    await insert_driver_rows(connection, table, columns, records)


def driver_is_fast(connection: AsyncConnection | AsyncEngine) -> bool:
    """True where rows go straight to the driver (asyncpg, aiosqlite) in the driver's value forms."""
    dialect = connection.dialect
    return (dialect.name, dialect.driver) in (("postgresql", "asyncpg"), ("sqlite", "aiosqlite"))


def to_driver(connection: AsyncConnection | AsyncEngine, table: Table, column: str, value: Any) -> Any:
    """``value`` of ``table.column`` as ``insert_driver_rows`` wants it (the dialect's bind conversion
    on a fast driver, e.g. a timestamp as text on SQLite or a dict as JSON text; as given elsewhere)."""
    if value is None or not driver_is_fast(connection):
        return value
    processor = table.c[column].type._cached_bind_processor(connection.dialect)
    return value if processor is None else processor(value)


async def insert_driver_rows(
    connection: AsyncConnection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert ``rows`` whose values are already in ``to_driver`` form, in the connection's transaction."""
    if not rows:
        return
    if not driver_is_fast(connection):
        await connection.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])
        return
    raw = await connection.get_raw_connection()
    if connection.dialect.name == "postgresql":
        await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
            table.name, records=rows, columns=list(columns)
        )
    else:
        sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        await raw.driver_connection.executemany(sql, rows)  # type: ignore[union-attr]


async def prepare_for_bulk(connection: AsyncConnection) -> None:
    """Per-connection tuning before a bulk load (a larger SQLite page cache; nothing elsewhere)."""
    if connection.dialect.name == "sqlite":
        raw = await connection.get_raw_connection()
        await raw.driver_connection.execute(f"PRAGMA cache_size=-{SQLITE_IMPORT_CACHE_KIB}")  # type: ignore[union-attr]
