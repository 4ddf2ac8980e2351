"""The call-path lookup: rules applied, profile cache, and the deadline that never lets the store hold a call.

The directory here is an in-memory double so the deadline can be driven by events, not by sleeping:
a lookup the store never answers comes back late; when the store answers later, screenpop.resolved follows.
The same lookup against the real stores is in test_store_lookup.py.
"""

from __future__ import annotations

import asyncio

from cti_server.config import config_from_mapping
from cti_server.events import Event, EventBus
from cti_server.screenpop.lookup import CallCenterProfile, ScreenPopLookup, UnknownCallCenter
from cti_server.screenpop.rules import ContactMatch, ScreenPopRules


class MemoryDirectory:
    """Contacts by number; ``gate`` (when set) holds every number lookup until it is opened."""

    def __init__(self) -> None:
        self.numbers: dict[str, list[ContactMatch]] = {}
        self.profiles = {"cc1": CallCenterProfile("cc1", "US", ScreenPopRules())}
        self.profile_reads = 0
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None

    async def profile(self, call_center: str) -> CallCenterProfile:
        self.profile_reads += 1
        for profile in self.profiles.values():
            if call_center in (profile.id, "name-" + profile.id):
                return profile
        raise UnknownCallCenter(call_center)

    async def find_by_number(self, call_center_id: str, number: str, limit: int) -> list[ContactMatch]:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return self.numbers.get(number, [])[:limit]


def _lookup(directory: MemoryDirectory, bus: EventBus | None = None, **screenpop: object) -> ScreenPopLookup:
    config = config_from_mapping({"screenpop": screenpop}).screenpop
    return ScreenPopLookup(directory, config, bus)


def _recorder(bus: EventBus) -> list[Event]:
    seen: list[Event] = []
    bus.subscribe("screenpop.*", seen.append)
    return seen


async def test_single_match_pops_the_record_and_is_published() -> None:
    directory = MemoryDirectory()
    directory.numbers["+14155550100"] = [ContactMatch("c1", "Ada Lovelace", "+14155550100")]
    bus = EventBus()
    seen = _recorder(bus)
    pop = await _lookup(directory, bus).lookup("cc1", "sip:4155550100@pbx", call_id="call-1")
    assert (pop.outcome, pop.action, pop.contact_id, pop.late) == ("single", "record", "c1", False)
    assert [e.topic for e in seen] == ["screenpop.popped"]
    assert seen[0].data["contact_id"] == "c1" and seen[0].data["call_id"] == "call-1"
    assert seen[0].call_center == "cc1"


async def test_call_center_by_name_resolves_to_its_id() -> None:
    pop = await _lookup(MemoryDirectory()).lookup("name-cc1", "4155550199", publish=False)
    assert pop.call_center_id == "cc1" and pop.outcome == "none" and pop.action == "new_contact"


async def test_profile_is_cached() -> None:
    directory = MemoryDirectory()
    lookup = _lookup(directory, profile_cache_seconds=60)
    for _ in range(3):
        await lookup.lookup("cc1", "4155550100", publish=False)
    assert directory.profile_reads == 1
    lookup.forget_profile("cc1")
    await lookup.lookup("cc1", "4155550100", publish=False)
    assert directory.profile_reads == 2


async def test_slow_store_gives_a_late_pop_then_the_resolved_one() -> None:
    directory = MemoryDirectory()
    directory.numbers["+14155550100"] = [ContactMatch("c1", "Ada", "+14155550100")]
    directory.gate = asyncio.Event()
    bus = EventBus()
    seen = _recorder(bus)
    lookup = _lookup(directory, bus, deadline_ms=20, late_result_ms=60000)
    pop = await lookup.lookup("cc1", "+14155550100", call_id="call-2")
    assert pop.late and pop.outcome == "late" and pop.action == "search"
    assert pop.prefill == {"phone": "+14155550100"} and pop.call_id == "call-2"
    assert [e.topic for e in seen] == ["screenpop.popped"]
    directory.gate.set()
    for _ in range(20):
        if len(seen) == 2:
            break
        await asyncio.sleep(0.01)
    assert [e.topic for e in seen] == ["screenpop.popped", "screenpop.resolved"]
    assert seen[1].data["contact_id"] == "c1" and seen[1].data["late"] is False
    assert lookup.stats["late"] == 1 and lookup.stats["resolved_late"] == 1


async def test_late_lookup_is_cancelled_after_its_grace() -> None:
    directory = MemoryDirectory()
    directory.gate = asyncio.Event()
    bus = EventBus()
    seen = _recorder(bus)
    lookup = _lookup(directory, bus, deadline_ms=5, late_result_ms=0)
    pop = await lookup.lookup("cc1", "+14155550100")
    assert pop.late
    await asyncio.sleep(0.05)
    assert not lookup._late
    directory.gate.set()
    await asyncio.sleep(0)
    assert [e.topic for e in seen] == ["screenpop.popped"]


async def test_store_error_and_unknown_call_center_still_answer() -> None:
    directory = MemoryDirectory()
    directory.fail = OSError("connection refused")
    lookup = _lookup(directory)
    pop = await lookup.lookup("cc1", "+14155550100", publish=False)
    assert (pop.outcome, pop.error, pop.late) == ("error", "OSError", False)
    pop = await lookup.lookup("nowhere", "+14155550100", publish=False)
    assert (pop.outcome, pop.error) == ("error", "UnknownCallCenter")
    assert lookup.stats["errors"] == 2


async def test_stop_cancels_late_lookups() -> None:
    directory = MemoryDirectory()
    directory.gate = asyncio.Event()
    lookup = _lookup(directory, deadline_ms=5, late_result_ms=60000)
    await lookup.lookup("cc1", "+14155550100", publish=False)
    assert lookup._late
    await lookup.stop()
    assert not lookup._late
