"""Store fixtures for the screen-pop tests: the same test runs on SQLite and on the real PostgreSQL.

SQLite: one migrated template file per session, copied for each test. PostgreSQL: one database per
session (``cti_screenpop_tests`` on 127.0.0.1:5432), migrated once; tests make their own call centers
with fresh names, so they never see each other's rows. Import the fixtures into a test module with
``from tests.screenpop.fixtures import store, call_center  # noqa: F401``.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from cti_server.config import Config, config_from_mapping
from cti_server.store import Store
from cti_server.store.models import CallCenter

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_DATABASE = "cti_screenpop_tests"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def store_config(url: str, **screenpop: Any) -> Config:
    """A config whose store is ``url`` (tests pass their own screenpop overrides)."""
    return config_from_mapping({"store": {"url": url}, "screenpop": screenpop, "log": {"format": "json"}})


async def _migrate(url: str) -> None:
    store = Store(store_config(url).store)
    try:
        await store.open(migrate=True)
    finally:
        await store.close()


async def _fresh_postgres_database() -> None:
    connection = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await connection.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
        await connection.execute(f"CREATE DATABASE {PG_DATABASE}")
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "template.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_url() -> str:
    asyncio.run(_fresh_postgres_database())
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{PG_DATABASE}"
    asyncio.run(_migrate(url))
    return url


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a migrated store: a copy of the SQLite template, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "store.db"
        shutil.copyfile(template, path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """An open, migrated store on each backend."""
    opened = Store(store_config(store_url).store)
    await opened.open(migrate=False)
    try:
        yield opened
    finally:
        await opened.close()


async def make_call_center(
    store: Store, region: str = "US", rules: dict[str, str] | None = None
) -> CallCenter:
    """A call center with a fresh name (tests on the shared PostgreSQL database never collide)."""
    async with store.session() as session:
        center = CallCenter(
            name=f"cc-{uuid.uuid4().hex[:12]}", phone_region=region, screen_pop_rules=rules or {}
        )
        session.add(center)
        await session.commit()
    return center


@pytest.fixture
async def call_center(store: Store) -> CallCenter:
    return await make_call_center(store)
