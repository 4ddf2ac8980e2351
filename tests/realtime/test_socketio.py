"""socket.io namespaces over a real loopback connection: authentication at connect, events by room."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import socketio
from aiohttp.test_utils import TestClient

from tests.api.conftest import Tenants, api_app, api_client, tenants
from tests.routing.test_api import setup_alpha
from tests.store.backends import sqlite_store, sqlite_template

__all__ = ["api_app", "api_client", "sqlite_store", "sqlite_template", "tenants"]

Client = TestClient[Any, Any]


def url_of(client: Client) -> str:
    return f"http://127.0.0.1:{client.server.port}"


async def connected(client: Client, namespace: str,
                    token: str) -> tuple[socketio.AsyncClient, asyncio.Queue[Any]]:
    sio = socketio.AsyncClient(reconnection=False)
    received: asyncio.Queue[Any] = asyncio.Queue()

    @sio.on("*", namespace=namespace)  # type: ignore[untyped-decorator]
    async def any_event(topic: str, payload: Any) -> None:
        await received.put((topic, payload))

    await sio.connect(url_of(client), namespaces=[namespace], auth={"token": token}, wait_timeout=5,
                      transports=["websocket"])
    return sio, received


async def next_topic(received: asyncio.Queue[Any], topic: str) -> tuple[Any, list[str]]:
    """The payload of the next ``topic`` event and the topics that came before it."""
    before: list[str] = []
    while True:
        got_topic, payload = await asyncio.wait_for(received.get(), timeout=5)
        if got_topic == topic:
            return payload, before
        before.append(got_topic)


async def test_agent_gets_own_offer_and_supervisor_sees_call_center(api_client: Client,
                                                                    tenants: Tenants) -> None:
    agent_id = await setup_alpha(api_client, tenants)
    agent_sio, agent_events = await connected(api_client, "/agent", tenants.token("agent"))
    sup_sio, sup_events = await connected(api_client, "/supervisor", tenants.token("supervisor"))
    beta_sio, beta_events = await connected(api_client, "/supervisor", tenants.token("supervisor", "beta"))
    try:
        await api_client.put("/api/v1/agents/me/status", json={"status": "Available"},
                             headers=tenants.headers("agent"))
        r = await api_client.post("/api/v1/work-items", headers=tenants.headers("api_key"),
                                  json={"channel": "chat", "queue": "support"})
        item_id = (await r.json())["id"]
        offer, before = await next_topic(agent_events, "work_item.offered")
        assert offer["data"]["item"]["id"] == item_id and offer["data"]["agent"] == agent_id
        assert before == ["agent.status_changed"]  # the agent's own status change, not the queued event
        seen, before = await next_topic(sup_events, "work_item.offered")
        assert seen["call_center"] == tenants.alpha.id
        assert before == ["agent.status_changed", "work_item.queued"]
        assert beta_events.empty()
    finally:
        for sio in (agent_sio, sup_sio, beta_sio):
            await sio.disconnect()


@pytest.mark.parametrize(("namespace", "principal"), [("/agent", None), ("/supervisor", "agent"),
                                                      ("/agent", "integrator")])
async def test_connect_is_refused_without_the_right_principal(api_client: Client, tenants: Tenants,
                                                              namespace: str, principal: str | None) -> None:
    sio = socketio.AsyncClient(reconnection=False)
    token = tenants.token(principal) if principal else "not-a-token"
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(url_of(api_client), namespaces=[namespace], auth={"token": token}, wait_timeout=5,
                          transports=["websocket"])
    await sio.disconnect()
