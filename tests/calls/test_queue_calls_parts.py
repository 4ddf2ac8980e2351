"""The parts of the inbound-call path that need no sockets: the pop riding on the call, queue DID config."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from cti_server.calls.caller_id import CallerId
from cti_server.calls.model import Call, Direction, EndReason
from cti_server.calls.screenpop_hook import CallScreenPopHook
from cti_server.config import ConfigError, config_from_mapping
from cti_server.events import Event, EventBus

POP = {"call_id": "", "outcome": "single", "contact_id": "c-1", "late": False, "error": None,
       "matches": [{"contact_id": "c-1", "display_name": "Ada"}]}


def inbound_call(bus: EventBus) -> Call:
    return Call(caller=CallerId("+15557770000", None, "p-asserted-identity"), called_number="15550300",
                call_center="support", direction=Direction.INBOUND, publish=bus.publish, now=1.0)


async def test_pop_goes_on_the_call_its_own_event_and_the_end_event() -> None:
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe("call.*", seen.append)
    call = inbound_call(bus)
    hook = CallScreenPopHook(bus, {call.call_id: call}.get)
    await hook.start()
    bus.publish(Event("screenpop.popped", {**POP, "call_id": call.call_id}, call_center="support"))
    call.ended(5.0, EndReason.CALLER_HANGUP)
    assert [e.topic for e in seen] == ["call.offered", "call.screenpop", "call.ended"]
    assert "screenpop" not in seen[0].data  # the lookup had not answered yet
    assert seen[1].data["screenpop"]["contact_id"] == "c-1"
    assert seen[2].data["screenpop"]["contact_id"] == "c-1"
    json.dumps(seen[2].data)
    await hook.stop()


async def test_a_late_pop_is_replaced_by_the_resolved_one_and_failed_pops_are_not_news() -> None:
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe("call.screenpop", seen.append)
    call = inbound_call(bus)
    hook = CallScreenPopHook(bus, {call.call_id: call}.get)
    await hook.start()
    bus.publish(Event("screenpop.popped", {**POP, "call_id": call.call_id, "error": "UnknownCallCenter"}))
    assert call.screenpop is None and seen == []
    bus.publish(Event("screenpop.popped", {**POP, "call_id": call.call_id, "late": True, "outcome": "none"}))
    bus.publish(Event("screenpop.resolved", {**POP, "call_id": call.call_id}))
    assert call.screenpop is not None and call.screenpop["late"] is False
    assert [e.data["screenpop"]["outcome"] for e in seen] == ["none", "single"]
    bus.publish(Event("screenpop.popped", {**POP, "call_id": "another call"}))  # not ours: ignored
    assert len(seen) == 2


async def test_waiting_for_a_pop_ends_when_it_comes_or_at_the_limit() -> None:
    bus = EventBus()
    call = inbound_call(bus)
    hook = CallScreenPopHook(bus, {call.call_id: call}.get)
    await hook.start()
    assert await hook.wait_for_pop(call, 0.01) is None
    waiting = asyncio.ensure_future(hook.wait_for_pop(call, 5.0))
    await asyncio.sleep(0)
    bus.publish(Event("screenpop.popped", {**POP, "call_id": call.call_id}))
    pop = await waiting
    assert pop is not None and pop["contact_id"] == "c-1"


def test_queue_did_priority_and_skills_load() -> None:
    config = config_from_mapping({"calls": {"dids": [
        {"number": "+15550300", "call_center": "support", "queue": "support", "priority": 4,
         "skills": {"spanish": 2}}]}})
    did = config.calls.dids[0]
    assert (did.queue, did.priority, did.skills) == ("support", 4, {"spanish": 2})


@pytest.mark.parametrize("did, key", [
    ({"priority": -1}, "calls.dids[0].priority"),
    ({"skills": {"spanish": -3}}, "calls.dids[0].skills"),
    ({"skills": {"spanish": "fluent"}}, "calls.dids[0].skills.spanish"),
])
def test_bad_queue_did_values_name_the_key(did: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({"calls": {"dids": [
            {"number": "+15550300", "call_center": "support", "queue": "support", **did}]}})
    assert caught.value.key == key
