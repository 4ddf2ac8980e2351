"""Migrations: the head revision builds exactly the tables the models declare, on both backends."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.engine import Connection

from cti_server.store import Store
from cti_server.store.migrate import alembic_config, current_revision, head_revision, upgrade
from cti_server.store.models import Base, Role


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_head_schema_matches_the_models(store: Store) -> None:
    assert await current_revision(store.engine) == head_revision()
    async with store.engine.connect() as connection:
        differences = await connection.run_sync(_differences)
    assert differences == [], "models changed without a migration: add one with alembic --autogenerate"


async def test_roles_are_seeded(store: Store) -> None:
    async with store.session() as db:
        assert set((await db.scalars(select(Role.name))).all()) == {
            "admin",
            "supervisor",
            "agent",
            "integrator",
        }


async def test_downgrade_to_base_and_upgrade_again(store: Store) -> None:
    from alembic import command

    def downgrade(connection: Connection) -> None:
        command.downgrade(alembic_config(connection), "base")

    async with store.engine.begin() as connection:
        await connection.run_sync(downgrade)
    assert await current_revision(store.engine) is None
    assert await upgrade(store.engine) == head_revision()
    async with store.session() as db:
        assert len((await db.scalars(select(Role.name))).all()) == 4
