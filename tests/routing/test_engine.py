"""Routing rules and the push protocol, on both backends (see conftest.routing)."""

from __future__ import annotations

import pytest

from cti_server.routing.figures import agent_figures
from cti_server.routing.model import (
    Agent,
    NotFound,
    PresenceStatus,
    RoutingConflict,
    RoutingInputError,
    SkillRelaxation,
)
from tests.routing.conftest import Routing


async def test_item_is_offered_to_an_available_agent_and_accepted(routing: Routing) -> None:
    await routing.agent("a1")
    item = await routing.item()
    assert await routing.state(item.id) == ("offered", "a1")
    accepted = await routing.engine.accept(item.id, "a1")
    assert accepted.state == "assigned"
    assert routing.topics()[-3:] == ["work_item.queued", "work_item.offered", "work_item.accepted"]
    offered = next(e for e in routing.events if e.topic == "work_item.offered")
    assert offered.data["agent"] == "a1" and offered.call_center == "cc1"
    assert offered.data["deadline"] == pytest.approx(routing.clock.now() + 30.0)


async def test_item_waits_when_no_agent_status_allows_its_channel(routing: Routing) -> None:
    await routing.agent("a1", status="Available for voice")
    chat = await routing.item("chat")
    assert await routing.state(chat.id) == ("queued", None)
    voice = await routing.item("voice")
    assert await routing.state(voice.id) == ("offered", "a1")


async def test_offline_agent_gets_work_when_they_become_available(routing: Routing) -> None:
    await routing.agent("a1", status="Offline")
    item = await routing.item()
    assert await routing.state(item.id) == ("queued", None)
    await routing.engine.set_agent_status("a1", "Available")
    assert await routing.state(item.id) == ("offered", "a1")


async def test_capacity_and_channel_cap_limit_concurrent_work(routing: Routing) -> None:
    await routing.agent("a1", capacity=3, channel_caps={"voice": 1})
    chats = [await routing.item("chat") for _ in range(4)]
    voice = await routing.item("voice")
    assert [await routing.state(c.id) for c in chats] == [("offered", "a1")] * 3 + [("queued", None)]
    assert await routing.state(voice.id) == ("queued", None)
    await routing.engine.withdraw(chats[0].id, "abandoned")
    # One unit free: the oldest waiting item that fits (the 4th chat) takes it.
    assert await routing.state(chats[3].id) == ("offered", "a1")
    agent = await routing.backend.get_agent("a1")
    assert agent.used == 3 and sorted(agent.items) == sorted(c.id for c in chats[1:])


async def test_channel_cap_keeps_second_call_away(routing: Routing) -> None:
    await routing.agent("a1", capacity=3, channel_caps={"voice": 1})
    first = await routing.item("voice")
    second = await routing.item("voice")
    chat = await routing.item("chat")
    assert await routing.state(first.id) == ("offered", "a1")
    assert await routing.state(second.id) == ("queued", None)
    assert await routing.state(chat.id) == ("offered", "a1")


async def test_item_size_counts_against_capacity(routing: Routing) -> None:
    await routing.agent("a1", capacity=2)
    big = await routing.item("case", size=2)
    small = await routing.item("chat")
    assert await routing.state(big.id) == ("offered", "a1")
    assert await routing.state(small.id) == ("queued", None)


async def test_skills_and_levels_are_required(routing: Routing) -> None:
    await routing.agent("novice", skills={"spanish": 2})
    await routing.agent("expert", skills={"spanish": 5}, capacity=1)
    hard = await routing.item(skills={"spanish": 4})
    assert await routing.state(hard.id) == ("offered", "expert")
    impossible = await routing.item(skills={"french": 1})
    assert await routing.state(impossible.id) == ("queued", None)


async def test_least_active_prefers_agent_with_fewest_items(routing: Routing) -> None:
    await routing.agent("a1", capacity=5)
    await routing.agent("a2", capacity=5)
    offered_to = [(await routing.state((await routing.item()).id))[1] for _ in range(4)]
    assert sorted(str(a) for a in offered_to) == ["a1", "a1", "a2", "a2"]


async def test_most_available_prefers_agent_with_most_free_capacity(routing: Routing) -> None:
    await routing.config("default", model="most_available")
    await routing.agent("small", capacity=2)
    await routing.agent("big", capacity=6)
    offered_to = [(await routing.state((await routing.item()).id))[1] for _ in range(5)]
    # big (6 free) takes items until its free capacity drops to small's 2; on a tie the agent whose
    # load changed longest ago wins.
    assert offered_to == ["big"] * 4 + ["small"]


async def test_highest_priority_then_oldest_is_offered_first(routing: Routing) -> None:
    await routing.agent("a1", status="Offline")
    old_low = await routing.item(priority=1)
    routing.clock.advance(1)
    new_high = await routing.item(priority=5)
    routing.clock.advance(1)
    older_high = await routing.item(priority=5, created=routing.clock.now() - 10)
    await routing.engine.set_agent_status("a1", "Available")
    assert await routing.state(older_high.id) == ("offered", "a1")
    await routing.engine.accept(older_high.id, "a1")
    await routing.engine.end_conversation(older_high.id)
    assert await routing.state(new_high.id) == ("offered", "a1")
    await routing.engine.accept(new_high.id, "a1")
    await routing.engine.end_conversation(new_high.id)
    assert await routing.state(old_low.id) == ("offered", "a1")


async def test_declined_item_goes_to_next_agent_not_the_same_one(routing: Routing) -> None:
    await routing.agent("a1")
    item = await routing.item()
    await routing.agent("a2")
    await routing.engine.decline(item.id, "a1", "busy with something")
    assert await routing.state(item.id) == ("offered", "a2")
    stored = await routing.backend.get_item(item.id)
    assert [(o.agent, o.outcome, o.reason) for o in stored.offers] == [
        ("a1", "declined", "busy with something"), ("a2", "", "")]
    declined = next(e for e in routing.events if e.topic == "work_item.declined")
    assert declined.data["reason"] == "busy with something"


async def test_declined_item_returns_to_same_agent_when_no_other_fits(routing: Routing) -> None:
    await routing.agent("a1")
    item = await routing.item()
    await routing.engine.decline(item.id, "a1", "not now")
    assert await routing.state(item.id) == ("offered", "a1")
    assert (await routing.backend.get_item(item.id)).offer_no == 2


async def test_push_timeout_moves_item_to_next_agent(routing: Routing) -> None:
    await routing.config("default", push_timeout_s=20)
    await routing.agent("a1")
    item = await routing.item()
    await routing.agent("a2")
    assert await routing.engine.next_deadline() == pytest.approx(routing.clock.now() + 20)
    await routing.advance(19)
    assert await routing.state(item.id) == ("offered", "a1")
    await routing.advance(1)
    assert await routing.state(item.id) == ("offered", "a2")
    assert "work_item.timed_out" in routing.topics()
    stored = await routing.backend.get_item(item.id)
    assert stored.offers[0].outcome == "timeout"


async def test_accept_after_timeout_or_by_another_agent_is_refused(routing: Routing) -> None:
    await routing.config("default", push_timeout_s=5)
    await routing.agent("a1")
    await routing.agent("a2", status="Offline")
    item = await routing.item()
    with pytest.raises(RoutingConflict):
        await routing.engine.accept(item.id, "a2")
    await routing.engine.set_agent_status("a2", "Available")
    await routing.advance(5)
    with pytest.raises(RoutingConflict):
        await routing.engine.accept(item.id, "a1")
    assert (await routing.engine.accept(item.id, "a2")).state == "assigned"


async def test_overflow_to_another_queue_after_wait(routing: Routing) -> None:
    await routing.queue("backup")
    await routing.queue("support", overflow_queue="backup", overflow_after_s=60)
    await routing.agent("b1", queues=("backup",), status="Offline")
    item = await routing.item()
    await routing.advance(59)
    assert (await routing.backend.get_item(item.id)).queue == "support"
    await routing.engine.set_agent_status("b1", "Available")
    assert await routing.state(item.id) == ("queued", None)
    await routing.advance(1)
    assert await routing.state(item.id) == ("offered", "b1")
    overflowed = next(e for e in routing.events if e.topic == "work_item.overflowed")
    assert overflowed.data["from_queue"] == "support" and overflowed.data["item"]["queue"] == "backup"


async def test_skill_requirement_relaxes_after_wait(routing: Routing) -> None:
    await routing.queue("support", skill_relaxation={"spanish": SkillRelaxation(after_s=30, level=2)})
    await routing.agent("a1", skills={"spanish": 2})
    item = await routing.item(skills={"spanish": 4, "billing": 1})
    await routing.agent("a2", skills={"spanish": 2, "billing": 1})
    await routing.advance(29)
    assert await routing.state(item.id) == ("queued", None)
    await routing.advance(1)
    assert await routing.state(item.id) == ("offered", "a2")
    assert (await routing.backend.get_item(item.id)).skills == {"spanish": 2, "billing": 1}


async def test_queue_routing_priority_decides_between_queues(routing: Routing) -> None:
    await routing.config("vip", routing_priority=1)
    await routing.config("default", routing_priority=2)
    await routing.queue("vip", config="vip")
    await routing.agent("a1", queues=("support", "vip"), status="Offline")
    normal = await routing.item()
    routing.clock.advance(5)
    vip = await routing.item(queue="vip")
    await routing.engine.set_agent_status("a1", "Available")
    assert await routing.state(vip.id) == ("offered", "a1")
    assert await routing.state(normal.id) == ("queued", None)


async def test_after_call_work_holds_capacity_until_timer(routing: Routing) -> None:
    await routing.config("default", after_call_work_s=15)
    await routing.agent("a1")
    first = await routing.item("voice")
    await routing.engine.accept(first.id, "a1")
    second = await routing.item("voice")
    routing.clock.advance(100)
    await routing.engine.set_hold(first.id, True)
    routing.clock.advance(20)
    await routing.engine.set_hold(first.id, False)
    routing.clock.advance(10)
    wrapped = await routing.engine.end_conversation(first.id)
    assert wrapped.state == "assigned" and wrapped.ended_at is not None
    assert await routing.state(second.id) == ("queued", None)
    await routing.advance(15)
    assert await routing.state(first.id) == ("closed", "a1")
    assert await routing.state(second.id) == ("offered", "a1")
    history = await routing.backend.history(0, routing.clock.now() + 1)
    handled = next(r for r in history if r["kind"] == "handled")
    assert handled["talk_s"] == pytest.approx(110) and handled["hold_s"] == pytest.approx(20)
    assert handled["acw_s"] == pytest.approx(15)


async def test_close_during_wrap_up_frees_the_agent_early(routing: Routing) -> None:
    await routing.config("default", after_call_work_s=60)
    await routing.agent("a1")
    first = await routing.item()
    await routing.engine.accept(first.id, "a1")
    second = await routing.item()
    await routing.engine.end_conversation(first.id)
    await routing.engine.close(first.id, "wrap-up done")
    assert await routing.state(second.id) == ("offered", "a1")
    assert await routing.engine.next_deadline() is not None  # only the push timeout of the second offer
    await routing.advance(60)
    assert await routing.state(first.id) == ("closed", "a1")


async def test_withdraw_offered_item_frees_agent_and_records_abandon(routing: Routing) -> None:
    await routing.agent("a1")
    item = await routing.item()
    waiting = await routing.item()
    routing.clock.advance(4)
    withdrawn = await routing.engine.withdraw(item.id, "abandoned")
    assert withdrawn.state == "withdrawn" and withdrawn.offers[0].outcome == "withdrawn"
    assert await routing.state(waiting.id) == ("offered", "a1")
    with pytest.raises(RoutingConflict):
        await routing.engine.withdraw(item.id)
    with pytest.raises(NotFound):
        await routing.engine.withdraw("nope")


async def test_assigned_item_cannot_be_withdrawn_or_moved(routing: Routing) -> None:
    await routing.queue("other")
    await routing.agent("a1")
    item = await routing.item()
    await routing.engine.accept(item.id, "a1")
    with pytest.raises(RoutingConflict):
        await routing.engine.withdraw(item.id)
    with pytest.raises(RoutingConflict):
        await routing.engine.move_item(item.id, queue="other")


async def test_supervisor_moves_item_to_queue_and_to_agent(routing: Routing) -> None:
    await routing.queue("other")
    await routing.agent("a1")
    await routing.agent("o1", queues=("other",), status="Offline")
    await routing.agent("x1", queues=(), capacity=1)
    item = await routing.item()
    assert await routing.state(item.id) == ("offered", "a1")
    moved = await routing.engine.move_item(item.id, queue="other")
    assert moved.queue == "other" and await routing.state(item.id) == ("queued", None)
    await routing.engine.move_item(item.id, agent="x1")
    assert await routing.state(item.id) == ("offered", "x1")
    with pytest.raises(RoutingConflict):
        await routing.engine.move_item(item.id, agent="o1")  # Offline: no room
    with pytest.raises(RoutingInputError) as bad:
        await routing.engine.move_item(item.id, queue="nowhere")
    assert bad.value.field == "queue"


async def test_admin_defined_status_controls_channels(routing: Routing) -> None:
    await routing.backend.put_status(PresenceStatus("Chat only", ["chat"]))
    await routing.agent("a1", status="Chat only")
    email = await routing.item("email")
    chat = await routing.item("chat")
    custom = await routing.item("sms-ticket")
    assert await routing.state(email.id) == ("queued", None)
    assert await routing.state(chat.id) == ("offered", "a1")
    assert await routing.state(custom.id) == ("queued", None)
    with pytest.raises(RoutingInputError):
        await routing.engine.set_agent_status("a1", "Dancing")


async def test_bad_items_are_refused_naming_the_field(routing: Routing) -> None:
    with pytest.raises(RoutingInputError) as bad_priority:
        await routing.item(priority=500)
    assert bad_priority.value.field == "priority"
    with pytest.raises(RoutingInputError) as bad_queue:
        await routing.item(queue="missing")
    assert bad_queue.value.field == "queue"
    with pytest.raises(RoutingInputError) as bad_channel:
        await routing.item(channel="Not A Channel")
    assert bad_channel.value.field == "channel"
    await routing.item(id="dup")
    with pytest.raises(RoutingConflict):
        await routing.item(id="dup")


async def test_profile_update_keeps_held_work(routing: Routing) -> None:
    await routing.agent("a1", capacity=1)
    item = await routing.item()
    waiting = await routing.item()
    await routing.engine.register_agent(
        (await routing.backend.get_agent("a1")).__class__(id="a1", call_center="cc1", capacity=2,
                                                           queues=["support"]))
    agent = await routing.backend.get_agent("a1")
    assert agent.items == [item.id, waiting.id] and agent.used == 2 and agent.status == "Available"


async def test_window_figures_count_answers_abandons_and_handle_time() -> None:
    from cti_server.routing.clock import SimulatedClock
    from cti_server.routing.engine import RoutingEngine
    from cti_server.routing.figures import window_figures
    from cti_server.routing.memory import MemoryRoutingBackend
    from cti_server.routing.model import Agent, Queue, RoutingConfig, WorkItem

    backend = MemoryRoutingBackend(history_retention_s=100.0)
    clock = SimulatedClock(0.0)
    engine = RoutingEngine(backend, clock)
    await backend.put_routing_config(RoutingConfig(id="r", service_level_threshold_s=10.0))
    await backend.put_queue(Queue(id="q", call_center="cc", routing_config="r"))
    await engine.register_agent(Agent(id="a", call_center="cc", queues=["q"]))
    for n, wait in enumerate([5.0, 30.0]):
        await engine.enqueue(WorkItem(id=f"i{n}", channel="chat", queue="q", call_center="cc"))
        clock.advance(wait)
        await engine.set_agent_status("a", "Available")
        await engine.accept(f"i{n}", "a")
        clock.advance(60.0)
        await engine.end_conversation(f"i{n}")
        await engine.set_agent_status("a", "Offline")
    await engine.enqueue(WorkItem(id="gone", channel="chat", queue="q", call_center="cc"))
    clock.advance(3.0)
    await engine.withdraw("gone", "abandoned")
    [figures] = await window_figures(backend, 0.0, clock.now() + 1)
    # Answers at t=5 and 95, ends at 65 and 155, abandon at 158: the 100 s retention has dropped t=5.
    assert (figures.answered, figures.abandoned, figures.handled) == (1, 1, 2)
    assert figures.asa_s == 30.0 and figures.service_level == 0.0 and figures.abandon_rate == 0.5
    assert figures.aht_s == 60.0 and figures.talk_s == 60.0 and figures.acw_s == 0.0


async def test_decline_backoff_waits_for_a_busy_colleague_instead_of_the_decliner(routing: Routing) -> None:
    await routing.config("default", push_timeout_s=0, decline_backoff_s=5)
    await routing.agent("a1")
    await routing.agent("a2")
    busy = await routing.item(id="busy")
    assert await routing.state(busy.id) == ("offered", "a1")
    await routing.engine.accept(busy.id, "a1")  # a1 is full; a2 is free
    item = await routing.item(id="voice1", channel="voice")
    assert await routing.state(item.id) == ("offered", "a2")
    await routing.engine.decline(item.id, "a2", "not now")
    # a1 is busy but present and could take it: a2 is not offered it again during the back-off.
    assert await routing.state(item.id) == ("queued", None)
    await routing.engine.set_agent_status("a2", "Available")
    assert await routing.state(item.id) == ("queued", None)
    await routing.advance(4.9)
    assert await routing.state(item.id) == ("queued", None)
    await routing.advance(0.1)
    assert await routing.state(item.id) == ("offered", "a2")
    assert "work_item.backoff_ended" in routing.topics()
    stored = await routing.backend.get_item(item.id)
    assert stored.backoff_agent == "a2" and stored.backoff_until == pytest.approx(routing.clock.now())


async def test_decline_backoff_ends_early_when_a_colleague_frees_up(routing: Routing) -> None:
    await routing.config("default", push_timeout_s=0, decline_backoff_s=5)
    await routing.agent("a1")
    await routing.agent("a2")
    busy = await routing.item(id="busy")
    await routing.engine.accept(busy.id, "a1")
    item = await routing.item(id="chat1")
    await routing.engine.decline(item.id, "a2")
    await routing.engine.end_conversation(busy.id)  # a1 free again: the waiting item goes to them
    assert await routing.state(item.id) == ("offered", "a1")
    await routing.advance(5)
    assert await routing.state(item.id) == ("offered", "a1")


async def test_decline_backoff_applies_to_push_timeouts_too(routing: Routing) -> None:
    await routing.config("default", push_timeout_s=10, decline_backoff_s=5)
    await routing.agent("a1")
    await routing.agent("a2")
    busy = await routing.item(id="busy")
    await routing.engine.accept(busy.id, "a1")
    item = await routing.item(id="chat1")
    assert await routing.state(item.id) == ("offered", "a2")
    await routing.advance(10)
    assert "work_item.timed_out" in routing.topics()
    assert await routing.state(item.id) == ("queued", None)
    await routing.advance(5)
    assert await routing.state(item.id) == ("offered", "a2")


async def test_decline_backoff_offers_the_decliner_again_when_nobody_else_could_take_it(
        routing: Routing) -> None:
    await routing.config("default", push_timeout_s=0, decline_backoff_s=5)
    await routing.agent("a1")
    await routing.agent("a2", status="Offline")             # not present
    await routing.agent("a3", skills={"spanish": 1})       # present, lacks the skill level
    busy = await routing.item(id="busy", skills={"spanish": 2})
    assert await routing.state(busy.id) == ("queued", None)
    await routing.engine.register_agent(Agent(id="a1", call_center="cc1", queues=["support"],
                                              skills={"spanish": 3}))
    assert await routing.state(busy.id) == ("offered", "a1")
    await routing.engine.decline(busy.id, "a1")
    assert await routing.state(busy.id) == ("offered", "a1")


async def test_without_decline_backoff_the_decliner_gets_the_item_back_at_once(routing: Routing) -> None:
    await routing.agent("a1")
    await routing.agent("a2")
    busy = await routing.item(id="busy")
    await routing.engine.accept(busy.id, "a1")
    item = await routing.item(id="chat1")
    await routing.engine.decline(item.id, "a2")
    assert await routing.state(item.id) == ("offered", "a2")


async def test_offers_timing_out_together_are_announced_before_the_agent_is_offered_more(
        routing: Routing) -> None:
    await routing.config("default", push_timeout_s=10, decline_backoff_s=5)
    await routing.agent("a1", status="Offline", capacity=2)
    first, second = await routing.item(id="x1"), await routing.item(id="x2")
    await routing.engine.set_agent_status("a1", "Available")  # both offered at once: same deadline
    await routing.item(id="y1")
    await routing.item(id="y2")
    await routing.advance(10)
    # An event consumer counting the agent's load from the events never sees more than capacity.
    load, peak = 0, 0
    for event in routing.events:
        if event.data.get("agent") != "a1":
            continue
        if event.topic == "work_item.offered":
            load += 1
        elif event.topic in ("work_item.timed_out", "work_item.declined", "work_item.closed"):
            load -= 1
        peak = max(peak, load)
    assert peak == 2
    assert sorted(e.data["item"]["id"] for e in routing.events if e.topic == "work_item.timed_out") == [
        first.id, second.id]
    assert (await routing.backend.get_agent("a1")).used == 2


async def test_movable_items_reads_the_first_waiting_in_serving_order_and_those_on_offer(
        routing: Routing) -> None:
    """What the supervisor page lists per queue: the first N waiting (priority, then oldest), then the
    items on offer; not the assigned ones, not other queues'."""
    await routing.queue("sales")
    await routing.agent("a1", capacity=1)
    offered = await routing.item(data={"subject": "first"})  # offered to a1 at once
    assert await routing.state(offered.id) == ("offered", "a1")
    routing.clock.advance(1)
    old = await routing.item()
    routing.clock.advance(1)
    urgent = await routing.item(priority=5)
    routing.clock.advance(1)
    newest = await routing.item()
    await routing.item(queue="sales")
    listed = await routing.backend.movable_items("support", 2)
    assert [i.id for i in listed] == [urgent.id, old.id, offered.id]
    assert [str(i.state) for i in listed] == ["queued", "queued", "offered"]
    assert listed[2].data == {"subject": "first"}  # the payload comes along (the page labels items)
    assert newest.id in [i.id for i in await routing.backend.movable_items("support", 10)]
    await routing.engine.accept(offered.id, "a1")
    assert offered.id not in [i.id for i in await routing.backend.movable_items("support", 10)]
    with pytest.raises(NotFound):
        await routing.backend.movable_items("no-such-queue", 10)


async def test_agent_figures_read_every_agents_work_at_once(routing: Routing) -> None:
    """The supervisor's per-agent picture: each agent's items (offered, assigned, in wrap-up) from one
    read of the open items; a closed item is not open any more."""
    await routing.config(after_call_work_s=30)
    await routing.agent("a1", capacity=2)
    await routing.agent("a2", capacity=1)
    first, second, third = [await routing.item() for _ in range(3)]
    assert {i: (await routing.state(i))[0] for i in (first.id, second.id, third.id)} == {
        first.id: "offered", second.id: "offered", third.id: "offered"}
    await routing.engine.accept(first.id, (await routing.state(first.id))[1] or "")
    await routing.engine.end_conversation(first.id)  # wrap-up: still open
    open_items = await routing.backend.get_open_items([first.id, second.id, "no-such-item"])
    assert set(open_items) == {first.id, second.id} and open_items[first.id].ended_at is not None
    figures = {f.agent: f for f in await agent_figures(routing.backend, routing.clock.now())}
    held = {a: sorted(w["id"] for w in f.work) for a, f in figures.items()}
    assert sorted(held["a1"] + held["a2"]) == sorted([first.id, second.id, third.id])
    assert any(w["wrap_up"] for f in figures.values() for w in f.work if w["id"] == first.id)
    await routing.engine.close(first.id)
    assert first.id not in await routing.backend.get_open_items([first.id])
