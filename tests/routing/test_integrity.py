"""No item lost or doubly offered: random push traffic on both backends, two nodes racing on one Redis."""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest

from cti_server.events import Event
from cti_server.routing.backend import RoutingBackend
from cti_server.routing.clock import SimulatedClock
from cti_server.routing.engine import RoutingEngine
from cti_server.routing.model import Agent, ItemState, Queue, RoutingConfig, RoutingConflict, WorkItem
from tests.routing.conftest import Routing, drop_prefix, make_backend


async def check_invariants(backend: RoutingBackend, enqueued: set[str]) -> None:
    """Every item is somewhere, held by at most one agent, and agents hold exactly what items say."""
    agents = {a.id: a for a in await backend.list_agents()}
    holders: dict[str, str] = {}
    for agent in agents.values():
        sizes = 0
        for item_id in agent.items:
            assert item_id not in holders, f"{item_id} held by {holders[item_id]} and {agent.id}"
            holders[item_id] = agent.id
            sizes += (await backend.get_item(item_id)).size
        assert agent.used == sizes <= agent.capacity
    for item_id in enqueued:
        item = await backend.get_item(item_id)  # never lost
        open_offers = [o for o in item.offers if not o.outcome]
        if item.state is ItemState.OFFERED:
            assert holders.get(item_id) == item.agent and len(open_offers) == 1
            assert item.offers[-1].agent == item.agent
        elif item.state is ItemState.ASSIGNED:
            assert holders.get(item_id) == item.agent and not open_offers
        else:
            assert item_id not in holders and not open_offers


async def test_random_traffic_keeps_every_item_accounted_for(routing: Routing) -> None:
    rng = random.Random(7)
    await routing.config("default", push_timeout_s=5, after_call_work_s=2)
    for n in range(6):
        await routing.agent(f"a{n}", capacity=rng.choice([1, 2, 3]), channel_caps={"voice": 1},
                            skills={"spanish": rng.randint(0, 3)})
    enqueued: set[str] = set()
    for step in range(200):
        action = rng.random()
        items = await routing.backend.list_items()
        offered = [i for i in items if i.state is ItemState.OFFERED]
        assigned = [i for i in items if i.state is ItemState.ASSIGNED and i.ended_at is None]
        if action < 0.3:
            item = await routing.item(rng.choice(["voice", "chat", "email"]), size=rng.choice([1, 1, 2]),
                                      priority=rng.randint(0, 3), skills={"spanish": rng.randint(0, 3)})
            enqueued.add(item.id)
        elif action < 0.45 and offered:
            victim = rng.choice(offered)
            assert victim.agent is not None
            await routing.engine.decline(victim.id, victim.agent, "random")
        elif action < 0.6 and offered:
            victim = rng.choice(offered)
            assert victim.agent is not None
            await routing.engine.accept(victim.id, victim.agent)
        elif action < 0.7 and assigned:
            await routing.engine.end_conversation(rng.choice(assigned).id)
        elif action < 0.75 and items:
            victim = rng.choice(items)
            if victim.state is not ItemState.ASSIGNED:
                await routing.engine.withdraw(victim.id, "abandoned")
        elif action < 0.8:
            await routing.engine.set_agent_status(f"a{rng.randrange(6)}",
                                                  rng.choice(["Available", "Busy", "Available for voice"]))
        else:
            await routing.advance(rng.choice([0.5, 1.0, 3.0]))
        if step % 25 == 0:
            await check_invariants(routing.backend, enqueued)
    await check_invariants(routing.backend, enqueued)
    offered_events = sum(1 for t in routing.topics() if t == "work_item.offered")
    recorded = sum([len((await routing.backend.get_item(i)).offers) for i in enqueued])
    assert offered_events == recorded > 0


@pytest.mark.redis
async def test_two_nodes_on_one_redis_never_offer_an_item_twice() -> None:
    prefix = f"test:routing:{uuid.uuid4().hex[:12]}:"
    clock = SimulatedClock(1000.0)
    nodes: list[tuple[RoutingEngine, list[Event]]] = []
    try:
        for _ in range(2):
            events: list[Event] = []
            nodes.append((RoutingEngine(await make_backend("redis", prefix), clock, events.append), events))
        first = nodes[0][0]
        await first.backend.put_routing_config(RoutingConfig(id="default"))
        await first.backend.put_queue(Queue(id="support", call_center="cc1", routing_config="default"))
        for n in range(10):
            await first.register_agent(Agent(id=f"a{n}", call_center="cc1", capacity=2, queues=["support"]))

        async def node_traffic(index: int) -> None:
            engine = nodes[index][0]
            rng = random.Random(index)
            for k in range(40):
                await engine.enqueue(WorkItem(id=f"n{index}-{k}", channel="chat", queue="support",
                                              call_center="cc1"))
                if rng.random() < 0.3:
                    await engine.set_agent_status(f"a{rng.randrange(10)}", "Available")
                offered = [i for i in await engine.backend.list_items() if i.state is ItemState.OFFERED]
                for item in offered[:2]:
                    try:
                        if rng.random() < 0.5:
                            await engine.decline(item.id, item.agent or "", "race")
                        else:
                            await engine.accept(item.id, item.agent or "")
                    except RoutingConflict:
                        pass  # the other node got there first: that is the point

        await asyncio.gather(*(node_traffic(i) for i in range(2)), *(
            nodes[i % 2][0].set_agent_status(f"a{n}", "Available") for i, n in enumerate(range(10))))
        enqueued = {f"n{i}-{k}" for i in range(2) for k in range(40)}
        await check_invariants(first.backend, enqueued)
        emitted = sum(1 for _e, events in nodes for ev in events if ev.topic == "work_item.offered")
        recorded = sum([len((await first.backend.get_item(i)).offers) for i in enqueued])
        assert emitted == recorded > 0
        assert len(await first.backend.list_items()) >= 20  # capacity 20 taken, the rest waiting
    finally:
        for engine, _events in nodes:
            await engine.backend.aclose()
        await drop_prefix(prefix)


@pytest.mark.redis
async def test_redis_state_and_timers_survive_a_restart_of_the_server_process() -> None:
    prefix = f"test:routing:{uuid.uuid4().hex[:12]}:"
    clock = SimulatedClock(1000.0)
    backend = await make_backend("redis", prefix)
    try:
        engine = RoutingEngine(backend, clock)
        await backend.put_routing_config(RoutingConfig(id="default", push_timeout_s=10))
        await backend.put_queue(Queue(id="support", call_center="cc1", routing_config="default"))
        for agent_id in ("a1", "a2"):
            await engine.register_agent(Agent(id=agent_id, call_center="cc1", queues=["support"]))
        await engine.set_agent_status("a1", "Available")
        await engine.enqueue(WorkItem(id="x", channel="email", queue="support", call_center="cc1",
                                      data={"subject": "refund"}))
        await backend.aclose()

        backend = await make_backend("redis", prefix)
        restarted = RoutingEngine(backend, clock)
        item = await restarted.get_item("x")
        assert (item.state, item.agent, item.data) == ("offered", "a1", {"subject": "refund"})
        await restarted.set_agent_status("a2", "Available")
        clock.advance(10)
        assert await restarted.tick() == 1
        assert (await restarted.get_item("x")).agent == "a2"
    finally:
        await backend.aclose()
        await drop_prefix(prefix)
