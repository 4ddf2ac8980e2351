"""The screen-pop lookup on the real stores (SQLite, PostgreSQL): matches, rules, isolation, slowness."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import event, text

from cti_server.config import config_from_mapping
from cti_server.events import Event, EventBus
from cti_server.screenpop.directory import StoreContactDirectory
from cti_server.screenpop.lookup import ScreenPopLookup
from cti_server.screenpop.rules import ContactMatch
from cti_server.store import Store
from cti_server.store.models import Account, CallCenter, Contact, ContactPhone
from tests.screenpop.fixtures import make_call_center


async def add_contact(
    store: Store, center: CallCenter, first: str, numbers: list[str], account: str | None = None
) -> str:
    async with store.session() as session:
        account_id = None
        if account:
            row = Account(call_center_id=center.id, name=account)
            session.add(row)
            await session.flush()
            account_id = row.id
        contact = Contact(
            call_center_id=center.id, first_name=first, last_name="Tester", account_id=account_id
        )
        session.add(contact)
        await session.flush()
        for kind, number in zip(("mobile", "work", "home"), numbers, strict=False):
            session.add(
                ContactPhone(call_center_id=center.id, contact_id=contact.id, number=number, kind=kind)
            )
        await session.commit()
        return contact.id


def lookup_for(
    directory: StoreContactDirectory, bus: EventBus | None = None, **screenpop: Any
) -> ScreenPopLookup:
    config = config_from_mapping({"screenpop": screenpop}).screenpop
    return ScreenPopLookup(directory, config, bus)


async def test_one_several_and_no_match(
    store: Store, directory: StoreContactDirectory, call_center: CallCenter
) -> None:
    ada = await add_contact(store, call_center, "Ada", ["+14155550100", "+14155550101"], account="Acme")
    await add_contact(store, call_center, "Bob", ["+14155550200"])
    await add_contact(store, call_center, "Cy", ["+14155550200"])
    lookup = lookup_for(directory)

    one = await lookup.lookup(call_center.id, "(415) 555-0101", publish=False)
    assert (one.outcome, one.action, one.contact_id) == ("single", "record", ada)
    assert one.matches[0] == ContactMatch(
        contact_id=ada,
        display_name="Ada Tester",
        matched_number="+14155550101",
        number_label="work",
        email=None,
        account_id=one.matches[0].account_id,
        account_name="Acme",
    )
    several = await lookup.lookup(call_center.id, "sip:+14155550200@trunk", publish=False)
    assert (several.outcome, several.action) == ("multiple", "list")
    assert sorted(m.display_name for m in several.matches) == ["Bob Tester", "Cy Tester"]
    none = await lookup.lookup(call_center.name, "4155550999", publish=False)
    assert (none.outcome, none.action, none.prefill) == ("none", "new_contact", {"phone": "+14155550999"})
    assert none.call_center_id == call_center.id


async def test_a_contact_listing_a_number_twice_matches_once(
    store: Store, directory: StoreContactDirectory, call_center: CallCenter
) -> None:
    await add_contact(store, call_center, "Dup", ["+14155550300", "+14155550300"])
    pop = await lookup_for(directory).lookup(call_center.id, "+14155550300", publish=False)
    assert pop.outcome == "single"


async def test_region_and_rules_come_from_the_call_center(
    store: Store, directory: StoreContactDirectory
) -> None:
    london = await make_call_center(
        store, region="GB", rules={"single_match": "search", "no_match": "nothing"}
    )
    contact = await add_contact(store, london, "Liz", ["+442079460018"])
    lookup = lookup_for(directory)
    pop = await lookup.lookup(london.id, "020 7946 0018", publish=False)
    assert (pop.outcome, pop.action, pop.contact_id) == ("single", "search", contact)
    none = await lookup.lookup(london.id, "020 7946 0019", publish=False)
    assert (none.outcome, none.action) == ("none", "nothing")


async def test_call_centers_never_see_each_others_contacts(
    store: Store, directory: StoreContactDirectory
) -> None:
    first = await make_call_center(store)
    second = await make_call_center(store)
    await add_contact(store, first, "Mine", ["+14155550400"])
    lookup = lookup_for(directory)
    assert (await lookup.lookup(first.id, "+14155550400", publish=False)).outcome == "single"
    assert (await lookup.lookup(second.id, "+14155550400", publish=False)).outcome == "none"


async def test_slow_store_returns_late_by_the_deadline_and_resolves_after(store: Store) -> None:
    """The store sleeps inside the lookup query's connection (pg_sleep / a SQLite function)."""
    center = await make_call_center(store)
    contact = await add_contact(store, center, "Slow", ["+14155550500"])
    if store.is_sqlite:

        def install_sleep(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.create_function("sleep_ms", 1, lambda ms: time.sleep(ms / 1000) or 0)

        event.listen(store.engine.sync_engine, "connect", install_sleep)
        await store.engine.dispose()  # new connections get the function
        sleep_sql = "SELECT sleep_ms(400)"
    else:
        sleep_sql = "SELECT pg_sleep(0.4)"

    class SlowDirectory(StoreContactDirectory):
        async def find_by_number(self, call_center_id: str, number: str, limit: int) -> list[ContactMatch]:
            async with self.store.engine.connect() as connection:
                await connection.execute(text(sleep_sql))
            return await super().find_by_number(call_center_id, number, limit)

    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe("screenpop.*", seen.append)
    config = config_from_mapping({"screenpop": {"deadline_ms": 50, "late_result_ms": 10000}}).screenpop
    slow = SlowDirectory(store)
    lookup = ScreenPopLookup(slow, config, bus)
    await lookup.lookup(center.id, "+14155550000", publish=False)  # warm the profile cache

    pop = await lookup.lookup(center.id, "+14155550500", call_id="slow-call")
    assert pop.late and pop.outcome == "late" and pop.call_id == "slow-call"
    assert pop.call_center_id == center.id and pop.prefill == {"phone": "+14155550500"}
    assert [e.topic for e in seen] == ["screenpop.popped"]
    for _ in range(200):  # bounded wait for the store to finish (pg_sleep 0.4 s)
        if len(seen) == 2:
            break
        await asyncio.sleep(0.02)
    assert [e.topic for e in seen] == ["screenpop.popped", "screenpop.resolved"]
    assert seen[1].data["contact_id"] == contact and seen[1].data["call_id"] == "slow-call"
    await slow.close()


async def test_locked_postgres_table_gives_a_late_pop_then_the_answer(
    store: Store, directory: StoreContactDirectory
) -> None:
    """PostgreSQL blocks the lookup query itself: another session holds an exclusive lock on the table."""
    if store.is_sqlite:
        pytest.skip("SQLite WAL readers are never blocked by a lock; its slow store is the test above")
    import asyncpg

    center = await make_call_center(store)
    contact = await add_contact(store, center, "Locked", ["+14155550600"])
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe("screenpop.*", seen.append)
    lookup = lookup_for(directory, bus, deadline_ms=100, late_result_ms=20000)
    await lookup.lookup(center.id, "+14155550001", publish=False)  # profile cached, reader pool open
    locker = await asyncpg.connect(
        store.url.set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute("LOCK TABLE contact_phones IN ACCESS EXCLUSIVE MODE")
        pop = await lookup.lookup(center.id, "+14155550600", call_id="locked-call")
        assert pop.late and pop.outcome == "late" and [e.topic for e in seen] == ["screenpop.popped"]
        await transaction.commit()
    finally:
        await locker.close()
    for _ in range(200):
        if len(seen) == 2:
            break
        await asyncio.sleep(0.02)
    assert [e.topic for e in seen] == ["screenpop.popped", "screenpop.resolved"]
    assert seen[1].data["contact_id"] == contact
