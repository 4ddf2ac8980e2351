"""Call logs when calls end: on the matched contact, or unmatched and findable by number; the pop the call
carried is kept; an inbound call.offered gets its pop from CallScreenPops. SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import select

from cti_server.config import config_from_mapping
from cti_server.events import Event, EventBus
from cti_server.screenpop.call_logs import CallLogWriter, call_times
from cti_server.screenpop.component import CallScreenPops
from cti_server.screenpop.directory import StoreContactDirectory
from cti_server.screenpop.lookup import ScreenPopLookup
from cti_server.store import Store
from cti_server.store.models import CallCenter, CallLog
from tests.screenpop.fixtures import make_call_center
from tests.screenpop.test_store_lookup import add_contact


def ended(center: CallCenter | str, call_id: str, caller: str, **extra: object) -> Event:
    data = {
        "call_id": call_id,
        "direction": "inbound",
        "caller": {"number": caller, "name": "", "source": "from", "private": False},
        "called_number": "+14155559999",
        "timestamps": {"offered": 100.0, "answered": 103.0, "ended": 160.0},
        "end_reason": "hangup",
        **extra,
    }
    name = center if isinstance(center, str) else center.id
    return Event("call.ended", data, call_center=name)


async def logs_of(store: Store, center: CallCenter) -> list[CallLog]:
    async with store.session() as db:
        return list((await db.scalars(select(CallLog).where(CallLog.call_center_id == center.id))).all())


async def test_call_logs_land_on_the_contact_or_stay_findable_by_number(
    store: Store, directory: StoreContactDirectory
) -> None:
    center = await make_call_center(store)
    ada = await add_contact(store, center, "Ada", ["+14155550100"])
    writer = CallLogWriter(store, directory, EventBus())

    matched = await writer.write(ended(center, "call-1", "4155550100"))
    assert matched is not None and matched.contact_id == ada and matched.customer_number == "+14155550100"
    assert matched.disposition == "hangup" and matched.direction == "inbound"
    assert matched.answered_at is not None and (matched.ended_at - matched.started_at).total_seconds() == 60

    unmatched = await writer.write(ended(center.name, "call-2", "sip:+14155550777@trunk"))
    assert unmatched is not None and unmatched.contact_id is None
    assert unmatched.customer_number == "+14155550777"

    assert await writer.write(ended(center, "call-1", "4155550100")) is None  # ended twice: logged once
    assert await writer.write(ended("no-such-center", "call-3", "4155550100")) is None
    assert len(await logs_of(store, center)) == 2


async def test_the_pop_the_call_carried_decides_and_is_stored(
    store: Store, directory: StoreContactDirectory
) -> None:
    center = await make_call_center(store)
    ada = await add_contact(store, center, "Ada", ["+14155550100"])
    bob = await add_contact(store, center, "Bob", ["+14155550100"])
    writer = CallLogWriter(store, directory, EventBus())
    lookup = ScreenPopLookup(directory, config_from_mapping({}).screenpop)
    pop = (await lookup.lookup(center.id, "4155550100", call_id="c-9", publish=False)).to_dict()
    assert pop["outcome"] == "multiple"

    several = await writer.write(ended(center, "c-9", "4155550100", screenpop=pop))
    assert several is not None and several.contact_id is None and several.screen_pop["outcome"] == "multiple"
    picked = await writer.write(ended(center, "c-10", "4155550100", screenpop=pop, contact_id=bob))
    assert picked is not None and picked.contact_id == bob
    other_center = await make_call_center(store)
    foreign = await writer.write(ended(other_center, "c-11", "4155550100", contact_id=ada))
    assert (
        foreign is not None and foreign.contact_id is None
    )  # a contact of another call center is not linked


async def test_offered_inbound_calls_are_popped_and_the_pop_reaches_the_log(
    store: Store, directory: StoreContactDirectory
) -> None:
    center = await make_call_center(store)
    ada = await add_contact(store, center, "Ada", ["+14155550100"])
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe("screenpop.*", seen.append)
    lookup = ScreenPopLookup(directory, config_from_mapping({}).screenpop, bus)
    pops = CallScreenPops(lookup, bus)
    writer = CallLogWriter(store, lookup.directory, bus, pop_for_call=pops.take)
    await pops.start()
    await writer.start()
    offered = ended(center.name, "c-20", "+14155550100")
    bus.publish(Event("call.offered", offered.data, call_center=center.name))
    bus.publish(
        Event(
            "call.offered",
            {**offered.data, "call_id": "c-21", "direction": "outbound"},
            call_center=center.name,
        )
    )
    await bus.drain()
    assert [(e.topic, e.data["call_id"], e.data["contact_id"]) for e in seen] == [
        ("screenpop.popped", "c-20", ada)
    ]
    bus.publish(offered)
    await bus.drain()
    (log,) = await logs_of(store, center)
    assert log.contact_id == ada and log.screen_pop["outcome"] == "single" and not pops.pops
    await writer.stop()
    await pops.stop()


async def test_calls_ending_together_are_logged_in_one_batch_each_once(
    store: Store, directory: StoreContactDirectory
) -> None:
    center = await make_call_center(store)
    ada = await add_contact(store, center, "Ada", ["+14155550100"])
    bus = EventBus()
    writer = CallLogWriter(store, directory, bus)
    await writer.start()
    for call_id in ("b-1", "b-2", "b-3", "b-2"):  # b-2 ends twice in the same batch
        bus.publish(ended(center, call_id, "4155550100"))
    bus.publish(ended("no-such-center", "b-4", "4155550100"))
    await bus.drain()
    logs = await logs_of(store, center)
    assert sorted(log.call_id for log in logs) == ["b-1", "b-2", "b-3"]
    assert {log.contact_id for log in logs} == {ada}
    assert (writer.stats["written"], writer.stats["skipped"], writer.stats["failed"]) == (3, 1, 0)
    await writer.stop()


def test_call_times_accept_epoch_and_monotonic_clocks() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    started, answered, end = call_times({"timestamps": {"offered": 5.0, "answered": 7.0, "ended": 65.0}}, now)
    assert end == now and (end - started).total_seconds() == 60 and (end - answered).total_seconds() == 58
    epoch = time.time()
    started, answered, end = call_times({"timestamps": {"offered": epoch - 10, "ended": epoch}}, now)
    assert answered is None and round((end - started).total_seconds()) == 10
    assert call_times({}, now) == (now, None, now)
