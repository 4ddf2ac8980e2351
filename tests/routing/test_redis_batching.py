"""Redis backend: the steps of one event-loop turn go in one ``FCALL ... batch``, each atomic on its own,
each caller getting its own reply or error; stored items leave out fields without a value."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.exceptions import ResponseError

from cti_server.routing.model import (
    Agent,
    ItemState,
    NotFound,
    PresenceStatus,
    Queue,
    RoutingConfig,
    WorkItem,
)
from cti_server.routing.redis_backend import _LUA, FUNCTION, RedisRoutingBackend
from tests.routing.conftest import REDIS_URL

pytestmark = pytest.mark.redis


@pytest.fixture
async def backend() -> AsyncIterator[RedisRoutingBackend]:
    backend = await RedisRoutingBackend.connect(REDIS_URL, prefix=f"test:batch:{uuid.uuid4().hex[:8]}:")
    try:
        await backend.put_routing_config(RoutingConfig(id="cfg", push_timeout_s=0.0))
        await backend.put_queue(Queue(id="q", call_center="cc", routing_config="cfg"))
        yield backend
    finally:
        await backend.drop_all()
        await backend.aclose()


def test_the_library_is_named_after_the_version_of_its_calls() -> None:
    # A server of the previous version keeps its own library (cti_routing) during a rolling upgrade.
    assert FUNCTION != "cti_routing"
    assert _LUA.startswith(f"#!lua name={FUNCTION}\n")
    assert f"redis.register_function('{FUNCTION}', dispatch)" in _LUA


def record_commands(backend: RedisRoutingBackend) -> list[tuple[Any, ...]]:
    """Every command the backend's pipelined connection sends from now on."""
    assert backend._fast is not None
    sent: list[tuple[Any, ...]] = []
    submit = backend._fast.submit

    def spy(args: tuple[Any, ...]) -> asyncio.Future[Any]:
        sent.append(args)
        return submit(args)

    backend._fast.submit = spy  # type: ignore[method-assign]
    return sent


async def test_steps_of_one_turn_share_one_fcall_and_each_caller_gets_its_own_reply(
        backend: RedisRoutingBackend) -> None:
    for n in range(3):
        await backend.put_agent(Agent(id=f"a{n}", call_center="cc", queues=["q"]), 1.0)
        item = WorkItem(id=f"i{n}", channel="chat", queue="q", call_center="cc", created=n)
        await backend.add_item(item, 2.0)
    sent = record_commands(backend)

    results: list[Any] = await asyncio.gather(
        *(backend.set_agent_status(f"a{n}", "Available", 3.0) for n in range(3)),
        backend.accept("no-such-item", "a0", 3.0),
        return_exceptions=True)

    assert [args[:4] for args in sent] == [("FCALL", "cti_routing_v2", 0, "batch")]
    offered = {}
    for agent, offers in results[:3]:
        assert agent.status == "Available" and len(offers) == 1 and offers[0].agent.id == agent.id
        offered[offers[0].item.id] = agent.id
    assert sorted(offered) == ["i0", "i1", "i2"] and len(set(offered.values())) == 3
    assert isinstance(results[3], NotFound)
    for item_id, agent_id in offered.items():  # every step was stored, not only replied
        stored = await backend.get_item(item_id)
        assert stored.state is ItemState.OFFERED and stored.agent == agent_id


async def test_a_step_that_fails_inside_a_batch_leaves_the_other_steps_whole(
        backend: RedisRoutingBackend) -> None:
    await backend.put_agent(Agent(id="a0", call_center="cc", queues=["q"]), 1.0)
    await backend.add_item(WorkItem(id="i0", channel="chat", queue="q", call_center="cc"), 2.0)
    sent = record_commands(backend)

    async def broken_step() -> Any:
        # "fire" with a limit that is not a number makes the Lua step raise (a script error, not a reply).
        assert backend._steps is not None
        return await backend._steps.call("fire", backend.prefix, "5.0", "not-a-number")

    replies: Any = await asyncio.gather(
        broken_step(), backend.set_agent_status("a0", "Available", 3.0), return_exceptions=True)
    broken, (agent, offers) = replies

    assert len(sent) == 1 and sent[0][3] == "batch"
    assert isinstance(broken, ResponseError)
    assert agent.used == 1 and [o.item.id for o in offers] == ["i0"]


async def test_items_stored_with_null_fields_still_route(backend: RedisRoutingBackend) -> None:
    await backend.put_agent(Agent(id="a0", call_center="cc", queues=["q"]), 1.0)
    item, offer = await backend.add_item(WorkItem(id="i0", channel="chat", queue="q", call_center="cc"), 2.0)
    assert offer is None and item.accepted_at is None
    raw = await backend.client.hget(backend.prefix + "item", "i0")
    assert isinstance(raw, str)
    stored = json.loads(raw)
    assert "accepted_at" not in stored and "record" not in stored  # no value, no field

    # An item as an earlier version stored it: every field, null where unset.
    stored.update({name: None for name in ("record", "agent", "accepted_at", "hold_since", "ended_at",
                                          "closed_at", "backoff_agent", "backoff_until")})
    await backend.client.hset(backend.prefix + "item", "i0", json.dumps(stored))

    _agent, offers = await backend.set_agent_status("a0", "Available", 3.0)
    assert [o.item.id for o in offers] == ["i0"]
    await backend.accept("i0", "a0", 4.0)
    await backend.set_hold("i0", True, 5.0)
    await backend.set_hold("i0", False, 6.0)
    closed, _offers = await backend.end_conversation("i0", 7.0)
    assert closed.state is ItemState.CLOSED and closed.hold_s == 1.0 and closed.ended_at == 7.0
    assert closed.offers[0].outcome == "accepted" and closed.offers[0].ended_at == 4.0
    assert (await backend.get_agent("a0")).used == 0


async def test_offers_to_one_agent_in_one_reply_all_name_that_agent(backend: RedisRoutingBackend) -> None:
    # The reply writes the agent out once and then refers to them by id (routing.lua, offers_json).
    await backend.put_agent(Agent(id="a0", call_center="cc", queues=["q"], capacity=3), 1.0)
    for n in range(5):
        await backend.add_item(WorkItem(id=f"i{n}", channel="chat", queue="q", call_center="cc", created=n),
                               2.0)
    agent, offers = await backend.set_agent_status("a0", "Available", 3.0)
    assert [o.item.id for o in offers] == ["i0", "i1", "i2"]
    assert all(o.agent.id == "a0" and o.agent.used == 3 for o in offers) and agent.used == 3

    await backend.put_agent(Agent(id="a1", call_center="cc", queues=["q"], capacity=2), 4.0)
    await backend.set_agent_status("a1", "Break", 4.0)
    await backend.put_status(PresenceStatus("Break", ["*"]))  # a1 may now take work, not offered yet
    offers = await backend.offer_to_agent("a1", 5.0)
    assert [(o.item.id, o.agent.id, o.agent.items) for o in offers] == [
        ("i3", "a1", ["i3", "i4"]), ("i4", "a1", ["i3", "i4"])]


async def test_a_step_after_a_configuration_change_in_the_same_batch_sees_the_change(
        backend: RedisRoutingBackend) -> None:
    # The Lua library reads the configuration version once per FCALL; a change inside a batch drops it.
    await backend.put_agent(Agent(id="a0", call_center="cc", queues=["q"]), 1.0)
    await backend.add_item(WorkItem(id="i0", channel="chat", queue="q", call_center="cc"), 2.0)
    sent = record_commands(backend)
    _none, (_agent, offers) = await asyncio.gather(
        backend.put_routing_config(RoutingConfig(id="cfg", push_timeout_s=30.0)),
        backend.set_agent_status("a0", "Available", 3.0))
    assert len(sent) == 1 and sent[0][3] == "batch"
    assert [(o.item.id, o.deadline) for o in offers] == [("i0", 33.0)]
