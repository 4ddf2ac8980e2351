"""The declarative base every store table derives from, and the column types they share.

Constraint names follow one naming convention so alembic migrations can name, alter and drop them on
both SQLite and PostgreSQL. Times are stored as UTC and always come back timezone-aware, even from
SQLite (which keeps no zone).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, ForeignKey, Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# An auto-incrementing 64-bit key on PostgreSQL; SQLite only auto-increments "INTEGER PRIMARY KEY".
BigIntKey = BigInteger().with_variant(Integer(), "sqlite")


def new_id() -> str:
    """A fresh random primary key (UUID4 text), made client-side so bulk inserts need no RETURNING."""
    return str(uuid.uuid4())


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and returned timezone-aware on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UtcDateTime column; use an aware UTC time")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every store table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON(), list[str]: JSON()}


class CallCenterScoped:
    """Mixin for rows that belong to one call center.

    A session opened for a call center (``Store.tenant_session``) only ever reads, updates or deletes
    rows whose ``call_center_id`` is that call center, and refuses to insert rows for another one: the
    scoping lives in the queries, not in the handlers that issue them.
    """

    @declared_attr
    def call_center_id(cls) -> Mapped[str]:
        return mapped_column(
            String(36), ForeignKey("call_centers.id", ondelete="CASCADE"), index=True, nullable=False
        )
