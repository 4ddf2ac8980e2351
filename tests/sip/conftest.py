"""SIP fixtures: the registrar's bindings store, in memory and on the real Redis (one prefix per test)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Protocol

import pytest

from cti_server.sip.bindings import InMemoryBindings, RegistrarBindings
from cti_server.sip.redis_bindings import LOCK_LEASE, LOCK_WAIT, RedisBindings
from tests.routing.conftest import REDIS_URL, drop_prefix


class RedisBindingsFactory(Protocol):
    """``await redis_bindings(lock_lease=..., lock_wait=...)``."""

    async def __call__(self, *, lock_lease: float = ..., lock_wait: float = ...) -> RedisBindings: ...


@pytest.fixture
async def redis_bindings() -> AsyncIterator[RedisBindingsFactory]:
    """``await redis_bindings()``: a RedisBindings on the real Redis; every one made in a test shares
    that test's prefix (as server processes do), which is deleted afterwards."""
    prefix = f"test:bindings:{uuid.uuid4().hex[:12]}:"
    made: list[RedisBindings] = []

    async def make(*, lock_lease: float = LOCK_LEASE, lock_wait: float = LOCK_WAIT) -> RedisBindings:
        store = RedisBindings.from_url(REDIS_URL, prefix, lock_lease=lock_lease, lock_wait=lock_wait)
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
