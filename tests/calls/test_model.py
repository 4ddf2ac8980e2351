"""The call model: the state table, timestamps and the events every change publishes."""

from __future__ import annotations

import json

import pytest

from cti_server.calls.caller_id import CallerId
from cti_server.calls.model import (
    Call,
    CallState,
    CallStateError,
    Direction,
    EndReason,
    Leg,
    LegRole,
    call_id_of_item,
    queue_item_id,
)
from cti_server.events import Event


def new_call(events: list[Event]) -> Call:
    call = Call(caller=CallerId("+15551234", "Alice", "p-asserted-identity"), called_number="+15550100",
                call_center="support", direction=Direction.INBOUND, publish=events.append, now=10.0,
                target={"users": ["1001"]})
    call.legs.append(Leg(LegRole.A, peer="udp:192.0.2.1:5060"))
    return call


def test_lifecycle_publishes_each_change_with_json_safe_data() -> None:
    events: list[Event] = []
    call = new_call(events)
    call.ringing(11.0)
    call.ringing(11.5)  # a second 180 is not news
    call.answered(12.0, answered_by="1001")
    call.held(20.0, by=LegRole.B)
    call.resumed(25.0, by=LegRole.B)
    call.transferred(30.0, to="1002", kind="blind", by=LegRole.B)
    call.ended(42.5, EndReason.CALLER_HANGUP)
    call.ended(43.0, EndReason.CALLEE_HANGUP)  # the other side's BYE crossing ours changes nothing
    assert [e.topic for e in events] == ["call.offered", "call.ringing", "call.answered", "call.held",
                                         "call.resumed", "call.transferred", "call.ended"]
    for event in events:
        assert event.data["call_id"] == call.call_id
        assert event.call_center == "support"
        json.dumps(event.data)
    assert events[2].data["answered_by"] == "1001"
    assert events[5].data["to"] == "1002" and events[5].data["kind"] == "blind"
    ended = events[-1].data
    assert ended["reason"] == "caller_hangup"
    assert ended["duration"] == 30.5
    assert ended["caller"]["number"] == "+15551234"
    assert call.timestamps == {"offered": 10.0, "ringing": 11.0, "answered": 12.0, "held": 20.0,
                               "resumed": 25.0, "transferred": 30.0, "ended": 42.5}
    assert events[-1].timestamp == 42.5
    assert call.state is CallState.ENDED


def test_unanswered_call_ends_with_reason_and_status() -> None:
    events: list[Event] = []
    call = new_call(events)
    call.ended(15.0, EndReason.BUSY, status=486)
    assert call.talk_time is None
    assert events[-1].data["reason"] == "busy" and events[-1].data["status"] == 486


@pytest.mark.parametrize("step", [
    lambda c: c.held(1.0, by=LegRole.A),
    lambda c: c.resumed(1.0, by=LegRole.A),
    lambda c: c.transferred(1.0, to="x", kind="blind", by=LegRole.A),
])
def test_changes_the_state_does_not_allow(step: object) -> None:
    call = new_call([])
    with pytest.raises(CallStateError):
        step(call)  # type: ignore[operator]


def test_nothing_after_the_end() -> None:
    call = new_call([])
    call.ended(11.0, EndReason.CANCELLED)
    with pytest.raises(CallStateError):
        call.answered(12.0, answered_by="1001")
    with pytest.raises(CallStateError):
        call.ringing(12.0)


def test_call_and_leg_ids_are_unique_lower_hex_of_the_old_lengths() -> None:
    events: list[Event] = []
    calls = [new_call(events) for _ in range(200)]
    call_ids = {call.call_id for call in calls}
    leg_ids = {call.legs[0].leg_id for call in calls}
    assert len(call_ids) == 200 and len(leg_ids) == 200
    hexdigits = set("0123456789abcdef")
    assert all(len(i) == 32 and set(i) <= hexdigits for i in call_ids)
    assert all(len(i) == 12 and set(i) <= hexdigits for i in leg_ids)


def test_a_requeued_calls_item_id_names_its_call() -> None:
    call_id = Call(caller=CallerId("+15551234", None, "from"), called_number="100", call_center=None,
                   direction=Direction.INBOUND, publish=lambda event: None, now=0.0).call_id
    assert queue_item_id(call_id, 0) == call_id and call_id_of_item(call_id) == call_id
    assert queue_item_id(call_id, 2) == f"{call_id}.2" and call_id_of_item(f"{call_id}.2") == call_id
    assert call_id_of_item("chat.item") == "chat.item"  # not a requeue count: the id as it is
