"""The /agent namespace carries the ``call.*`` events of the agent's own voice items (the page shows the
desk phone ringing, the call connected, ended) and nobody else's; the supervisor namespace gets none."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from cti_server.api.keys import BUS_KEY
from cti_server.api.work_items import ROUTING_KEY
from cti_server.events import Event
from cti_server.routing.model import WorkItem
from tests.api.conftest import Tenants, api_app, api_client, tenants
from tests.realtime.test_socketio import connected, next_topic
from tests.routing.test_api import setup_alpha
from tests.store.backends import sqlite_store, sqlite_template

__all__ = ["api_app", "api_client", "sqlite_store", "sqlite_template", "tenants"]

Client = TestClient[Any, Any]


def call_event(topic: str, call_id: str, call_center: str, **data: Any) -> Event:
    """A ``call.*`` event shaped as cti_server/calls/model.py publishes it (the call's snapshot)."""
    snapshot = {"call_id": call_id, "state": topic.split(".")[1], "target": {}, "caller": {"number": "+1"},
                **data}
    return Event(topic, snapshot, call_center=call_center)


async def available_agent(api_client: Client, tenants: Tenants) -> tuple[str, Any, Any]:
    """Call center alpha set up, its agent connected to ``/agent`` and Available: (agent id, socket.io
    client, its event queue)."""
    agent_id = await setup_alpha(api_client, tenants)
    agent_sio, agent_events = await connected(api_client, "/agent", tenants.token("agent"))
    await api_client.put("/api/v1/agents/me/status", json={"status": "Available"},
                         headers=tenants.headers("agent"))
    return agent_id, agent_sio, agent_events


async def test_call_events_of_a_voice_offer_reach_that_agent_only(
        api_app: web.Application, api_client: Client, tenants: Tenants) -> None:
    agent_id = await setup_alpha(api_client, tenants)
    bus = api_app[BUS_KEY]
    alpha = tenants.alpha.id
    agent_sio, agent_events = await connected(api_client, "/agent", tenants.token("agent"))
    sup_sio, sup_events = await connected(api_client, "/supervisor", tenants.token("supervisor"))
    try:
        await api_client.put("/api/v1/agents/me/status", json={"status": "Available"},
                             headers=tenants.headers("agent"))
        await next_topic(agent_events, "agent.status_changed")
        # The calls layer queues a voice item whose id is the call's id (cti_server/calls/queue_calls.py).
        engine = api_app[ROUTING_KEY].engine
        await engine.enqueue(WorkItem(id="call-1", channel="voice", queue="support", call_center=alpha,
                                      data={"call_id": "call-1", "caller": "+14155550101"}))
        await next_topic(agent_events, "work_item.offered")

        pop = {"outcome": "single", "action": "record", "contact_id": "c-1", "matches": []}
        bus.publish(call_event("call.ringing", "call-1", alpha, screenpop=pop))
        ringing, before = await next_topic(agent_events, "call.ringing")
        assert before == []
        assert ringing["data"]["call_id"] == "call-1" and ringing["data"]["screenpop"] == pop
        bus.publish(call_event("call.ringing", "someone-elses-call", alpha))
        bus.publish(call_event("call.answered", "call-1", alpha, target={"agent": agent_id}))
        _, before = await next_topic(agent_events, "call.answered")
        assert before == []  # the other call's event did not come
        bus.publish(call_event("call.ended", "call-1", alpha))
        await next_topic(agent_events, "call.ended")
        # After the end the call is nobody's: a late event without target goes nowhere.
        bus.publish(call_event("call.held", "call-1", alpha))
        await api_client.put("/api/v1/agents/me/status", json={"status": "Busy"},
                             headers=tenants.headers("agent"))
        _, before = await next_topic(agent_events, "agent.status_changed")
        assert before == []

        _, before = await next_topic(sup_events, "agent.status_changed")
        assert not [topic for topic in before if topic.startswith("call.")]
    finally:
        for sio in (agent_sio, sup_sio):
            await sio.disconnect()


async def test_a_withdrawn_voice_offer_stops_forwarding_its_call(
        api_app: web.Application, api_client: Client, tenants: Tenants) -> None:
    _agent_id, agent_sio, agent_events = await available_agent(api_client, tenants)
    alpha = tenants.alpha.id
    try:
        engine = api_app[ROUTING_KEY].engine
        await engine.enqueue(WorkItem(id="call-2", channel="voice", queue="support", call_center=alpha))
        await next_topic(agent_events, "work_item.offered")
        await engine.withdraw("call-2", "abandoned")  # the caller hung up while the phone rang
        await next_topic(agent_events, "work_item.withdrawn")
        api_app[BUS_KEY].publish(call_event("call.ringing", "call-2", alpha))
        await api_client.put("/api/v1/agents/me/status", json={"status": "Busy"},
                             headers=tenants.headers("agent"))
        _, before = await next_topic(agent_events, "agent.status_changed")
        assert "call.ringing" not in before
    finally:
        await agent_sio.disconnect()


async def test_a_requeued_call_rings_the_next_agents_page(
        api_app: web.Application, api_client: Client, tenants: Tenants) -> None:
    """A call queued again after an accepting agent's phone did not answer is item ``<call>.<n>``; its
    ``call.*`` events (named by call id) still reach the agent the new item is offered to."""
    agent_id, agent_sio, agent_events = await available_agent(api_client, tenants)
    alpha = tenants.alpha.id
    try:
        engine = api_app[ROUTING_KEY].engine
        await engine.enqueue(WorkItem(id="call-3.1", channel="voice", queue="support", call_center=alpha,
                                      data={"call_id": "call-3", "caller": "+14155550101"}))
        offered, _ = await next_topic(agent_events, "work_item.offered")
        assert offered["data"]["agent"] == agent_id
        api_app[BUS_KEY].publish(call_event("call.ringing", "call-3", alpha))
        ringing, before = await next_topic(agent_events, "call.ringing")
        assert before == [] and ringing["data"]["call_id"] == "call-3"
    finally:
        await agent_sio.disconnect()
