"""The in-process bus: glob subscriptions, the per-topic subscriber cache, coroutine handlers."""

from __future__ import annotations

from cti_server.events import Event, EventBus


async def test_subscribers_follow_subscribe_and_unsubscribe_between_events() -> None:
    bus = EventBus()
    seen: list[tuple[str, str]] = []
    every = bus.subscribe("call.*", lambda e: seen.append(("every", e.topic)))
    bus.publish(Event("call.offered"))
    ended = bus.subscribe("call.ended", lambda e: seen.append(("ended", e.topic)))
    bus.publish(Event("call.ended"))
    bus.publish(Event("work_item.offered"))
    bus.unsubscribe(every)
    bus.publish(Event("call.ended"))
    bus.unsubscribe(ended)
    bus.publish(Event("call.ended"))
    assert seen == [("every", "call.offered"), ("every", "call.ended"), ("ended", "call.ended"),
                    ("ended", "call.ended")]


async def test_coroutine_handlers_run_as_tasks_and_a_failing_one_does_not_stop_the_others() -> None:
    bus = EventBus()
    seen: list[str] = []

    async def record(event: Event) -> None:
        seen.append(event.topic)

    def broken(event: Event) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe("*", broken)
    bus.subscribe("call.*", record)
    bus.publish(Event("call.answered"))
    await bus.drain()
    assert seen == ["call.answered"]
