"""The registrar's storage interface (RFC 3261 section 10.3), on both stores: InMemoryBindings and
RedisBindings on the real Redis (shared by several server processes)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from cti_server.sip.bindings import Binding, InMemoryBindings, RegistrarBindings
from cti_server.sip.redis_bindings import binding_from_record, binding_to_record
from tests.sip.conftest import RedisBindingsFactory

AOR = "sip:1001@cti.local"


def make_binding(key: str = "sip:1001@10.0.0.5:5060", expires_at: float = 100.0, aor: str = AOR,
                 **kwargs: object) -> Binding:
    return Binding(aor=aor, key=key, contact=f"<{key}>", expires_at=expires_at, call_id="c1", cseq=1,
                   source=("203.0.113.7", 40000), transport="udp", **kwargs)  # type: ignore[arg-type]


async def test_add_lookup_refresh_and_remove(bindings: RegistrarBindings) -> None:
    store = bindings
    first = make_binding(path=("<sip:edge.example;lr;ob>",), instance_id="<urn:uuid:1>", reg_id=1, q=0.7,
                         user_agent="phone/1", registered_at=1_700_000_000.25)
    assert await store.add(first) is None
    assert await store.lookup(AOR) == [first]
    refreshed = replace(first, expires_at=200.0, cseq=2)
    assert await store.add(refreshed) == first
    assert await store.lookup(AOR) == [refreshed]
    assert await store.remove(AOR, first.key) == refreshed
    assert await store.lookup(AOR) == []
    assert await store.remove(AOR, first.key) is None
    assert await store.all() == []


async def test_several_contacts_and_remove_all(bindings: RegistrarBindings) -> None:
    store = bindings
    a, b = make_binding("sip:a@h"), make_binding("sip:b@h")
    other = make_binding("sip:c@h", aor="sip:1002@cti.local")
    for binding in (a, b, other):
        await store.add(binding)
    assert {x.key for x in await store.lookup(AOR)} == {"sip:a@h", "sip:b@h"}
    assert set(await store.remove_all(AOR)) == {a, b}
    assert await store.lookup(AOR) == []
    assert await store.remove_all(AOR) == []
    assert await store.all() == [other]
    # Removed bindings are gone from the expiry order too: they never expire later.
    assert await store.expire(1000.0) == [other]


async def test_expire_removes_only_due_bindings_and_ignores_refreshed_ones(
    bindings: RegistrarBindings,
) -> None:
    store = bindings
    due = make_binding("sip:a@h", expires_at=50.0)
    later = make_binding("sip:b@h", expires_at=150.0)
    await store.add(due)
    await store.add(later)
    # Refreshing ``c`` to a later time must move its expiry: it must not expire at its first time.
    await store.add(replace(due, key="sip:c@h", expires_at=60.0))
    await store.add(replace(due, key="sip:c@h", expires_at=300.0))
    assert await store.expire(49.0) == []
    assert await store.expire(100.0) == [due]
    assert {b.key for b in await store.all()} == {"sip:b@h", "sip:c@h"}
    assert await store.expire(150.0) == [later]
    assert [b.key for b in await store.expire(1000.0)] == ["sip:c@h"]
    assert await store.all() == []


async def test_heap_is_compacted_after_many_refreshes() -> None:
    store = InMemoryBindings()
    for i in range(2000):
        await store.add(make_binding(expires_at=1000.0 + i))
    await store.expire(0.0)
    assert store.count() == 1
    assert len(store._deadlines) < 2000
    assert [b.expires_at for b in await store.expire(5000.0)] == [2999.0]


def test_binding_json_and_expires_in() -> None:
    binding = make_binding(expires_at=100.4, instance_id="<urn:uuid:1>", reg_id=1, q=0.5, user_agent="ua")
    data = binding.to_json(now=40.0)
    assert data["expires_in"] == 61
    assert data["source"] == ["203.0.113.7", 40000]
    assert data["instance_id"] == "<urn:uuid:1>"
    assert binding.expires_in(500.0) == 0


def test_redis_record_keeps_every_field_exactly() -> None:
    binding = make_binding(expires_at=1_700_000_123.456789, path=("<sip:a;lr>", "<sip:b;lr>"), q=0.5)
    assert binding_from_record(binding_to_record(binding)) == binding


@pytest.mark.redis
async def test_two_processes_see_the_same_bindings(redis_bindings: RedisBindingsFactory) -> None:
    a, b = await redis_bindings(), await redis_bindings()
    first = make_binding()
    await a.add(first)
    assert await b.lookup(AOR) == [first]
    assert await b.add(replace(first, cseq=2)) == first
    assert await a.remove(AOR, first.key) == replace(first, cseq=2)
    assert await b.all() == []


@pytest.mark.redis
async def test_racing_expiry_gives_each_binding_to_exactly_one_store(
    redis_bindings: RedisBindingsFactory,
) -> None:
    a, b = await redis_bindings(), await redis_bindings()
    count = 2400  # several expiry batches each, so the two sweeps interleave in Redis
    for i in range(count):
        await a.add(make_binding(f"sip:{i}@h", expires_at=10.0 + i % 7, aor=f"sip:{i % 50}@cti.local"))
    await a.add(make_binding("sip:late@h", expires_at=500.0))
    got_a, got_b = await asyncio.gather(a.expire(100.0), b.expire(100.0))
    keys_a, keys_b = [x.key for x in got_a], [x.key for x in got_b]
    assert got_a and got_b  # both swept at once
    assert not set(keys_a) & set(keys_b)
    assert len(keys_a) + len(keys_b) == count
    assert set(keys_a) | set(keys_b) == {f"sip:{i}@h" for i in range(count)}
    assert [x.key for x in await b.all()] == ["sip:late@h"]


@pytest.mark.redis
async def test_scripts_are_loaded_again_after_redis_forgot_them(redis_bindings: RedisBindingsFactory) -> None:
    store = await redis_bindings()
    first = make_binding("sip:a@h")
    await store.add(first)
    await store.client.script_flush()  # as after a Redis restart: EVALSHA answers NOSCRIPT
    assert await store.add(replace(first, cseq=2)) == first
    assert await store.expire(1000.0) == [replace(first, cseq=2)]
