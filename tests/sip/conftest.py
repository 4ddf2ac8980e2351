"""SIP fixtures: the registrar's bindings store, in memory and on the real Redis (one prefix per test)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from cti_server.sip.bindings import InMemoryBindings, RegistrarBindings
from cti_server.sip.redis_bindings import RedisBindings
from tests.routing.conftest import REDIS_URL, drop_prefix

RedisBindingsFactory = Callable[[], Awaitable[RedisBindings]]


@pytest.fixture
async def redis_bindings() -> AsyncIterator[RedisBindingsFactory]:
    """``await redis_bindings()``: a RedisBindings on the real Redis; every one made in a test shares
    that test's prefix (as server processes do), which is deleted afterwards."""
    prefix = f"test:bindings:{uuid.uuid4().hex[:12]}:"
    made: list[RedisBindings] = []

    async def make() -> RedisBindings:
        store = RedisBindings.from_url(REDIS_URL, prefix)
        await store.start()
        made.append(store)
        return store

    yield make
    for store in made:
        await store.stop()
    await drop_prefix(prefix)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def bindings(request: pytest.FixtureRequest, redis_bindings: RedisBindingsFactory) -> RegistrarBindings:
    """Each ``RegistrarBindings`` implementation in turn: the tests of the interface run on both."""
    if request.param == "memory":
        return InMemoryBindings()
    return await redis_bindings()
