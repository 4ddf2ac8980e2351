"""Two server instances share socket.io through Redis (``[routing] backend = "redis"``): an agent event
published on one instance's bus reaches the agent's browser connected to the other.

Both instances are full apps (``create_app``) in this process on their own loopback ports, with one
store and one Redis prefix (routing state and the socket.io channel ``<prefix>socketio``). Nothing
is mocked: the emit goes through python-socketio's ``AsyncRedisManager`` and the real Redis server.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient

from cti_server.api import create_app
from cti_server.store import Store
from tests.api.conftest import Tenants, api_config, tenants
from tests.realtime.test_socketio import connected, next_topic
from tests.routing.conftest import REDIS_URL, drop_prefix
from tests.routing.test_api import setup_alpha
from tests.store.backends import sqlite_store, sqlite_template

__all__ = ["sqlite_store", "sqlite_template", "tenants"]

pytestmark = pytest.mark.redis

Client = TestClient[Any, Any]
SUBSCRIBE_WAIT_S = 5.0


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A Redis prefix of this test's own, emptied afterwards."""
    name = f"cti:test:{uuid.uuid4().hex[:12]}:"
    yield name
    await drop_prefix(name)


async def node(aiohttp_client: Any, store: Store, prefix: str) -> Client:
    """One server instance on a loopback port, routing and socket.io through Redis under ``prefix``."""
    config = api_config(routing={"backend": "redis", "redis_url": REDIS_URL, "redis_prefix": prefix})
    client: Client = await aiohttp_client(create_app(config, store=store))
    return client


async def subscribed(channel: str, at_least: int) -> None:
    """Return once ``at_least`` socket.io managers listen on ``channel`` (a node starts listening when
    its first client connects; until then a publish would reach nobody there)."""
    client = redis.from_url(REDIS_URL)
    try:
        async with asyncio.timeout(SUBSCRIBE_WAIT_S):
            while True:
                counts = dict(await client.pubsub_numsub(channel))
                if counts.get(channel.encode(), 0) >= at_least:
                    return
                await asyncio.sleep(0.01)
    finally:
        await client.aclose()


async def test_an_agent_event_on_one_node_reaches_the_agent_on_the_other(
        aiohttp_client: Any, sqlite_store: Store, tenants: Tenants, prefix: str) -> None:
    first = await node(aiohttp_client, sqlite_store, prefix)
    second = await node(aiohttp_client, sqlite_store, prefix)
    agent_id = await setup_alpha(first, tenants)
    sio, events = await connected(second, "/agent", tenants.token("agent"))
    try:
        await subscribed(prefix + "socketio", 1)
        # The status change and the offer happen on the first node: its bus, its forwarder, its emit.
        r = await first.put("/api/v1/agents/me/status", json={"status": "Available"},
                            headers=tenants.headers("agent"))
        assert r.status == 200, await r.text()
        status, _ = await next_topic(events, "agent.status_changed")
        assert status["data"]["agent"] == agent_id and status["data"]["profile"]["status"] == "Available"

        r = await first.post("/api/v1/work-items", headers=tenants.headers("api_key"),
                             json={"channel": "chat", "queue": "support"})
        assert r.status == 201, await r.text()
        item_id = (await r.json())["id"]
        offer, _ = await next_topic(events, "work_item.offered")
        assert offer["data"]["item"]["id"] == item_id and offer["data"]["agent"] == agent_id

        # The agent acts on the second node; the routing state is the same Redis.
        r = await second.post(f"/api/v1/work-items/{item_id}/accept", headers=tenants.headers("agent"))
        assert r.status == 200 and (await r.json())["state"] == "assigned", await r.text()
    finally:
        await sio.disconnect()
