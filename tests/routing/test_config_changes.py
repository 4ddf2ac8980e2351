"""Changes of statuses and routing configurations take effect on the next routing step.

The Redis backend keeps decoded statuses, queues and configurations between Lua calls (per prefix,
while its version key holds); these tests change them after routing has used them and check the
next step sees the new values, on both backends and across two Redis connections.
"""

from __future__ import annotations

import uuid

import pytest

from cti_server.events import Event
from cti_server.routing.clock import SimulatedClock
from cti_server.routing.engine import RoutingEngine
from cti_server.routing.model import PresenceStatus, RoutingConfig

from .conftest import REDIS_URL, Routing, drop_prefix


async def test_status_channels_changed_after_use_apply_to_next_offer(routing: Routing) -> None:
    await routing.backend.put_status(PresenceStatus("Busy chat", ["chat"]))
    await routing.agent("a1", status="Busy chat")
    first = await routing.item(channel="chat")
    assert first.agent == "a1"
    await routing.engine.accept(first.id, "a1")
    await routing.engine.end_conversation(first.id)
    await routing.backend.put_status(PresenceStatus("Busy chat", ["email"]))
    second = await routing.item(channel="chat")
    assert str(second.state) == "queued" and second.agent is None
    third = await routing.item(channel="email")
    assert third.agent == "a1"


async def test_push_timeout_changed_after_use_applies_to_next_offer(routing: Routing) -> None:
    await routing.config(push_timeout_s=30.0)
    await routing.agent("a1")
    first = await routing.item()
    await routing.engine.decline(first.id, "a1")
    await routing.config(push_timeout_s=0.0)
    await routing.engine.withdraw(first.id)
    await routing.item()
    offered = [e for e in routing.events if e.topic == "work_item.offered"]
    assert offered[0].data["deadline"] == pytest.approx(routing.clock.now() + 30.0)
    assert offered[-1].data["deadline"] is None


@pytest.mark.redis
async def test_change_through_one_connection_is_seen_by_another() -> None:
    from cti_server.routing.redis_backend import RedisRoutingBackend

    prefix = f"test:routing:{uuid.uuid4().hex[:12]}:"
    first = await RedisRoutingBackend.connect(REDIS_URL, prefix=prefix, scan_depth=100)
    second = await RedisRoutingBackend.connect(REDIS_URL, prefix=prefix, scan_depth=100)
    clock = SimulatedClock(1000.0)
    events: list[Event] = []
    node = Routing(RoutingEngine(first, clock, events.append), clock, events)
    try:
        await node.config("c", push_timeout_s=10.0)
        await node.queue(config="c")
        await node.agent("a1")
        item = await node.item()
        await second.put_routing_config(RoutingConfig(id="c", push_timeout_s=0.0))
        await node.engine.withdraw(item.id)
        await node.item()
        deadlines = [e.data["deadline"] for e in events if e.topic == "work_item.offered"]
        assert deadlines == [pytest.approx(1010.0), None]
    finally:
        await first.aclose()
        await second.aclose()
        await drop_prefix(prefix)
