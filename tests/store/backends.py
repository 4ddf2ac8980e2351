"""Store fixtures on both backends: the same tests run on SQLite and on the real PostgreSQL.

``store`` is parametrized over ``["sqlite", "postgresql"]``. SQLite: one file migrated per test
session, copied for each test. PostgreSQL (marked ``postgres``): a fresh, uniquely named database per
test session, created through asyncpg on the ``postgres`` database, migrated once and dropped at the
end; each test starts from empty tables (truncated after the test). Other test packages import the
fixtures: ``from tests.store.backends import store, sqlite_store, postgres_url, sqlite_template``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from cti_server.config import StoreConfig
from cti_server.store import Store
from cti_server.store.models import Base

PG_SERVER = "postgres@127.0.0.1:5432"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
# Rows the migrations write themselves; kept when a test's tables are emptied.
SEEDED_TABLES = {"roles"}


def sqlite_url(path: Path) -> str:
    """The store URL of the SQLite file at ``path``."""
    return f"sqlite+aiosqlite:///{path}"


async def _migrate(url: str) -> None:
    store = Store(StoreConfig(url=url))
    try:
        await store.open(migrate=True)
    finally:
        await store.close()


def _run(awaitable: Coroutine[Any, Any, None]) -> None:
    """Run ``awaitable`` to completion on a loop of its own (session fixtures may be first requested
    from inside a test's running loop, where asyncio.run is not allowed)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, awaitable).result(timeout=120)


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(f"postgresql://{PG_SERVER}/postgres", timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the head revision, migrated once per session."""
    path = tmp_path_factory.mktemp("store-template") / "template.db"
    _run(_migrate(sqlite_url(path)))
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database at the head revision for this test session; dropped afterwards."""
    name = f"cti_store_test_{os.getpid()}_{secrets.token_hex(4)}"
    _run(_admin(f'CREATE DATABASE "{name}"'))
    url = f"postgresql+asyncpg://{PG_SERVER}/{name}"
    try:
        _run(_migrate(url))
        yield url
    finally:
        _run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _empty_tables(store: Store) -> None:
    # DELETE in reverse dependency order: much faster than TRUNCATE on a handful of tiny tables.
    async with store.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name not in SEEDED_TABLES:
                await connection.execute(table.delete())


@pytest.fixture
async def sqlite_store(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Store]:
    """An opened SQLite store of this test's own, at the head revision."""
    path = tmp_path / "store.db"
    shutil.copyfile(sqlite_template, path)
    store = Store(StoreConfig(url=sqlite_url(path)))
    await store.open()
    yield store
    await store.close()


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An opened, empty store on each backend in turn (SQLite, then PostgreSQL)."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "store.db"
        shutil.copyfile(template, path)
        store = Store(StoreConfig(url=sqlite_url(path)))
        await store.open()
    else:
        url: str = request.getfixturevalue("postgres_url")
        store = Store(StoreConfig(url=url, pool_size=2))
        await store.open()
    try:
        yield store
    finally:
        if not store.is_sqlite:
            await _empty_tables(store)
        await store.close()
