"""The asyncio driver: it fires the engine's timers and publishes queue figures on the bus."""

from __future__ import annotations

import asyncio

from cti_server.config import config_from_mapping
from cti_server.events import Event, EventBus
from cti_server.routing.clock import SimulatedClock
from cti_server.routing.model import Agent, Queue, WorkItem
from cti_server.routing.service import RoutingService


async def published(bus: EventBus, topic: str) -> Event:
    """The next event of ``topic`` on ``bus`` (bounded wait: fails the test after 10 s)."""
    arrived: asyncio.Future[Event] = asyncio.get_running_loop().create_future()

    def take(event: Event) -> None:
        if not arrived.done():
            arrived.set_result(event)

    sub = bus.subscribe(topic, take)
    try:
        async with asyncio.timeout(10):
            return await arrived
    finally:
        bus.unsubscribe(sub)


async def test_driver_fires_push_timeout_and_publishes_figures() -> None:
    config = config_from_mapping({"routing": {"default_push_timeout_s": 15, "timer_poll_s": 0.01,
                                              "figures_interval_s": 0.01}}).routing
    bus = EventBus()
    clock = SimulatedClock(100.0)
    service = RoutingService(config, bus, clock)
    await service.start()
    try:
        engine = service.engine
        assert (await engine.backend.get_routing_config("default")).push_timeout_s == 15
        await engine.backend.put_queue(Queue(id="q", call_center="cc", routing_config="default"))
        for agent_id in ("a1", "a2"):
            await engine.register_agent(Agent(id=agent_id, call_center="cc", queues=["q"]))
        await engine.set_agent_status("a1", "Available")
        await engine.enqueue(WorkItem(id="w", channel="chat", queue="q", call_center="cc"))
        await engine.set_agent_status("a2", "Available")
        timed_out = asyncio.ensure_future(published(bus, "work_item.timed_out"))
        await asyncio.sleep(0)
        clock.advance(15)
        assert (await timed_out).data["agent"] == "a1"
        assert (await engine.get_item("w")).agent == "a2"
        figures = await published(bus, "queue.figures")
        assert figures.call_center == "cc" and figures.data["queue"] == "q"
    finally:
        await service.stop()
