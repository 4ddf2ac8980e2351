"""Schema migrations with alembic: upgrade to head, or check the database is at head.

The scripts live in ``cti_server/store/migrations``; ``cti_server/store/alembic.ini`` lets developers run
``alembic -c cti_server/store/alembic.ini revision --autogenerate -m "..."`` for a new revision.
"""

from __future__ import annotations

from pathlib import Path

import structlog
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

log = structlog.get_logger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class SchemaOutOfDate(RuntimeError):
    """The database is not at the revision this code expects; ``cti-server admin migrate`` fixes it."""


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    """An alembic configuration for our scripts, bound to ``connection`` when given."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision id of the migration scripts."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise SchemaOutOfDate("no migration scripts found")
    return head


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(engine: AsyncEngine) -> str:
    """Apply every pending migration; returns the revision the database is now at."""
    async with engine.begin() as connection:
        before = await connection.run_sync(_current)
        await connection.run_sync(_upgrade)
        after = await connection.run_sync(_current)
    if before != after:
        log.info("store_migrated", from_revision=before, to_revision=after)
    return after or ""


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    async with engine.connect() as connection:
        return await connection.run_sync(_current)


async def check_revision(engine: AsyncEngine) -> None:
    """Raise SchemaOutOfDate unless the database is at the head revision."""
    current = await current_revision(engine)
    head = head_revision()
    if current != head:
        raise SchemaOutOfDate(
            f"store schema is at revision {current or 'none'}, this server needs {head}: "
            "run `cti-server admin migrate`"
        )
