"""Screen-pop test helpers over the store's two-backend fixtures (tests/store/backends.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from cti_server.screenpop.directory import StoreContactDirectory
from cti_server.store import Store
from cti_server.store.models import CallCenter


async def make_call_center(
    store: Store, region: str = "US", rules: dict[str, str] | None = None
) -> CallCenter:
    """A call center with a fresh name."""
    async with store.session() as session:
        center = CallCenter(
            name=f"cc-{uuid.uuid4().hex[:12]}", phone_region=region, screen_pop_rules=rules or {}
        )
        session.add(center)
        await session.commit()
    return center


@pytest.fixture
async def call_center(store: Store) -> CallCenter:
    """A call center (region US, default rules) in ``store``."""
    return await make_call_center(store)


@pytest.fixture
async def directory(store: Store) -> AsyncIterator[StoreContactDirectory]:
    """The store-backed contact directory, its own connections closed after the test."""
    found = StoreContactDirectory(store)
    yield found
    await found.close()
