"""alembic environment: runs on the connection the server hands over, or on the configured store URL."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from cti_server.store.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_on_configured_url() -> None:
    from cti_server.config import load_config
    from cti_server.store.engine import normalize_url

    url = os.environ.get("CTI_STORE_URL") or load_config().store.url
    engine = create_async_engine(normalize_url(url))
    async with engine.begin() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


given = context.config.attributes.get("connection")
if given is not None:
    _run(given)
else:
    asyncio.run(_run_on_configured_url())
