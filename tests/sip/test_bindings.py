"""InMemoryBindings: the registrar's storage interface (RFC 3261 section 10.3)."""

from __future__ import annotations

from dataclasses import replace

from cti_server.sip.bindings import Binding, InMemoryBindings, RegistrarBindings

AOR = "sip:1001@cti.local"


def make_binding(key: str = "sip:1001@10.0.0.5:5060", expires_at: float = 100.0, aor: str = AOR,
                 **kwargs: object) -> Binding:
    return Binding(aor=aor, key=key, contact=f"<{key}>", expires_at=expires_at, call_id="c1", cseq=1,
                   source=("203.0.113.7", 40000), transport="udp", **kwargs)  # type: ignore[arg-type]


async def test_add_lookup_refresh_and_remove() -> None:
    store: RegistrarBindings = InMemoryBindings()
    first = make_binding()
    assert await store.add(first) is None
    assert await store.lookup(AOR) == [first]
    refreshed = replace(first, expires_at=200.0, cseq=2)
    assert await store.add(refreshed) == first
    assert await store.lookup(AOR) == [refreshed]
    assert await store.remove(AOR, first.key) == refreshed
    assert await store.lookup(AOR) == []
    assert await store.remove(AOR, first.key) is None


async def test_several_contacts_and_remove_all() -> None:
    store = InMemoryBindings()
    a, b = make_binding("sip:a@h"), make_binding("sip:b@h")
    other = make_binding("sip:c@h", aor="sip:1002@cti.local")
    for binding in (a, b, other):
        await store.add(binding)
    assert {x.key for x in await store.lookup(AOR)} == {"sip:a@h", "sip:b@h"}
    assert set(await store.remove_all(AOR)) == {a, b}
    assert await store.lookup(AOR) == []
    assert await store.all() == [other]


async def test_expire_removes_only_due_bindings_and_ignores_refreshed_ones() -> None:
    store = InMemoryBindings()
    due = make_binding("sip:a@h", expires_at=50.0)
    later = make_binding("sip:b@h", expires_at=150.0)
    await store.add(due)
    await store.add(later)
    # Refreshing ``later`` earlier would leave its first heap entry behind; it must not expire it.
    await store.add(replace(due, key="sip:c@h", expires_at=60.0))
    await store.add(replace(due, key="sip:c@h", expires_at=300.0))
    assert await store.expire(49.0) == []
    assert await store.expire(100.0) == [due]
    assert {b.key for b in await store.all()} == {"sip:b@h", "sip:c@h"}
    assert await store.expire(150.0) == [later]
    assert [b.key for b in await store.expire(1000.0)] == ["sip:c@h"]
    assert store.count() == 0


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
