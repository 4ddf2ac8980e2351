"""Routing fixtures: the same behavioural tests run on the memory backend and on the real Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from cti_server.events import Event
from cti_server.routing.backend import RoutingBackend
from cti_server.routing.clock import SimulatedClock
from cti_server.routing.engine import RoutingEngine
from cti_server.routing.memory import MemoryRoutingBackend
from cti_server.routing.model import Agent, Queue, RoutingConfig, WorkItem

REDIS_URL = "redis://127.0.0.1:6379/0"


async def make_backend(kind: str, prefix: str) -> RoutingBackend:
    """A fresh backend of ``kind``; Redis ones live under ``prefix`` (unique per test)."""
    if kind == "memory":
        return MemoryRoutingBackend(scan_depth=100)
    from cti_server.routing.redis_backend import RedisRoutingBackend

    return await RedisRoutingBackend.connect(REDIS_URL, prefix=prefix, scan_depth=100)


async def drop_prefix(prefix: str) -> None:
    """Delete every Redis key under ``prefix``."""
    import redis.asyncio as redis

    client = redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@dataclass
class Routing:
    """An engine on a simulated clock, with the events it published."""

    engine: RoutingEngine
    clock: SimulatedClock
    events: list[Event] = field(default_factory=list)
    counter: int = 0

    @property
    def backend(self) -> RoutingBackend:
        return self.engine.backend

    def topics(self) -> list[str]:
        return [e.topic for e in self.events]

    async def queue(self, queue_id: str = "support", config: str = "default", **kwargs: Any) -> Queue:
        queue = Queue(id=queue_id, call_center="cc1", routing_config=config, **kwargs)
        queue.validate()
        await self.backend.put_queue(queue)
        return queue

    async def config(self, config_id: str = "default", **kwargs: Any) -> RoutingConfig:
        config = RoutingConfig(id=config_id, **kwargs)
        config.validate()
        await self.backend.put_routing_config(config)
        return config

    async def agent(self, agent_id: str, status: str = "Available", queues: tuple[str, ...] = ("support",),
                    **kwargs: Any) -> Agent:
        await self.engine.register_agent(Agent(id=agent_id, call_center="cc1", queues=list(queues), **kwargs))
        return await self.engine.set_agent_status(agent_id, status)

    async def item(self, channel: str = "chat", queue: str = "support", **kwargs: Any) -> WorkItem:
        self.counter += 1
        item_id = kwargs.pop("id", f"item{self.counter}")
        return await self.engine.enqueue(WorkItem(id=item_id, channel=channel, queue=queue,
                                                  call_center="cc1", **kwargs))

    async def state(self, item_id: str) -> tuple[str, str | None]:
        item = await self.backend.get_item(item_id)
        return str(item.state), item.agent

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await self.engine.tick()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def routing(request: pytest.FixtureRequest) -> AsyncIterator[Routing]:
    prefix = f"test:routing:{uuid.uuid4().hex[:12]}:"
    backend = await make_backend(request.param, prefix)
    clock = SimulatedClock(1000.0)
    events: list[Event] = []
    routing = Routing(RoutingEngine(backend, clock, events.append), clock, events)
    await routing.config()
    await routing.queue()
    try:
        yield routing
    finally:
        await backend.aclose()
        if request.param == "redis":
            await drop_prefix(prefix)
