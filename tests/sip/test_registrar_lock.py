"""The registrar's per-AOR critical section (RFC 3261 section 10.3 steps 6-7) across server processes:
two ``Registrar`` instances on one Redis prefix stand for two processes; the memory store's lock stays
within its process."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from cti_server.sip.bindings import Binding, BindingsBusy, InMemoryBindings, RegistrarBindings
from cti_server.sip.message import SipRequest
from cti_server.sip.redis_bindings import RedisBindings
from cti_server.sip.registrar import STORE_RETRY_AFTER, Registrar
from tests.sip.conftest import RedisBindingsFactory
from tests.sip.test_registrar import NOW, SOURCE, Phone, make_registrar, register, send

AOR = "sip:1001@cti.local"


async def authorized(registrar: Registrar, call_id: str, cseq: int, contact: str) -> SipRequest:
    """A REGISTER of 1001 with CSeq ``cseq`` and credentials on a nonce of its own (nc=1), so requests
    can arrive in any order without the digest replay check refusing them."""
    phone = Phone(call_id=call_id)
    challenge = await send(registrar, phone.request(cseq=cseq))
    phone.learn(challenge)
    return phone.request(contacts=[f"<{contact}>"], expires=300, cseq=cseq)


async def second_store(
    bindings: RegistrarBindings, redis_bindings: RedisBindingsFactory,
) -> RegistrarBindings:
    """What another process sees: the same dict in memory, a second connection on the same Redis prefix."""
    return await redis_bindings() if isinstance(bindings, RedisBindings) else bindings


def binding(cseq: int) -> Binding:
    return Binding(aor=AOR, key="k", contact="sip:1001@10.0.0.1", expires_at=NOW + 300, call_id="c",
                   cseq=cseq, source=SOURCE, transport="udp")


class ReplacementLog:
    """A store that notes, for every ``add``, the CSeq it wrote and the CSeq of the binding it replaced
    (Redis tells in the same atomic step), and otherwise is the store it wraps."""

    def __init__(self, store: RegistrarBindings) -> None:
        self.store = store
        self.replaced: list[tuple[int, int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def add(self, binding: Binding) -> Binding | None:
        previous = await self.store.add(binding)
        if previous is not None:
            self.replaced.append((previous.cseq, binding.cseq))
        return previous


async def test_interleaved_registers_at_two_registrars_end_at_the_highest_cseq_without_regressing(
    bindings: RegistrarBindings, redis_bindings: RedisBindingsFactory,
) -> None:
    """One Call-ID, CSeq 1..N delivered at once in mixed order to two registrars: every REGISTER is
    accepted or refused as out of order, no write replaces a higher CSeq, and the last is N."""
    stores = [ReplacementLog(bindings), ReplacementLog(await second_store(bindings, redis_bindings))]
    a, b = (make_registrar(bindings=cast(RegistrarBindings, store)) for store in stores)
    count = 30
    requests = [await authorized(a, "race@phone", cseq, "sip:1001@10.0.0.1") for cseq in range(1, count + 1)]
    # Pairs (2k, 2k-1), the higher CSeq to A or B in turn: without one lock for both, each registrar
    # takes one of a pair at the same moment, both pass the check, and the lower may be written last.
    sends: list[tuple[Registrar, SipRequest]] = []
    for k in range(count // 2):
        higher, lower = requests[2 * k + 1], requests[2 * k]
        sends += [(a, higher), (b, lower)] if k % 2 else [(b, higher), (a, lower)]
    responses = await asyncio.gather(*(send(registrar, r) for registrar, r in sends))
    by_cseq = {r.cseq.number: response.status for (_, r), response in zip(sends, responses, strict=True)}
    assert set(by_cseq.values()) <= {200, 500}
    assert by_cseq[count] == 200
    replaced = stores[0].replaced + stores[1].replaced
    assert replaced
    assert [(old, new) for old, new in replaced if old >= new] == []
    (final,) = await bindings.lookup(AOR)
    assert final.cseq == count


async def test_concurrent_new_contacts_at_two_registrars_never_exceed_the_limit(
    bindings: RegistrarBindings, redis_bindings: RedisBindingsFactory,
) -> None:
    a = make_registrar(bindings=bindings)  # max_contacts_per_user = 3
    b = make_registrar(bindings=await second_store(bindings, redis_bindings))
    requests = [await authorized(a, f"device-{i}@phone", 1, f"sip:1001@10.0.1.{i}") for i in range(8)]
    responses = await asyncio.gather(*(send(a if i % 2 else b, r) for i, r in enumerate(requests)))
    assert sorted(r.status for r in responses) == [200] * 3 + [503] * 5
    assert len(await bindings.lookup(AOR)) == 3


@pytest.mark.redis
async def test_a_lock_left_by_a_dead_holder_expires(redis_bindings: RedisBindingsFactory) -> None:
    dead = await redis_bindings(lock_lease=0.3)
    await dead._lock(AOR)  # the process takes the AOR's lock and dies
    await dead.aclose()
    registrar = make_registrar(bindings=await redis_bindings(lock_wait=0.05))
    phone = Phone()
    blocked = await register(registrar, phone, expires=300)
    assert (blocked.status, blocked.headers.get("Retry-After")) == (503, str(STORE_RETRY_AFTER))
    assert await registrar.bindings.lookup(AOR) == []
    await asyncio.sleep(0.4)
    response = await send(registrar, phone.request(expires=300))
    assert response.status == 200
    assert len(await registrar.bindings.lookup(AOR)) == 1


@pytest.mark.redis
async def test_a_holder_past_its_lease_writes_nothing(redis_bindings: RedisBindingsFactory) -> None:
    """Fencing: a process stalled past its lease cannot overwrite what the next holder wrote."""
    slow = await redis_bindings(lock_lease=0.2)
    fast = await redis_bindings()
    async with slow.locked(AOR):
        await asyncio.sleep(0.3)  # a pause longer than the lease
        async with fast.locked(AOR):
            assert await fast.add(binding(5)) is None
        with pytest.raises(BindingsBusy):
            await slow.add(binding(4))
        with pytest.raises(BindingsBusy):
            await slow.remove_all(AOR)
    assert [x.cseq for x in await fast.lookup(AOR)] == [5]
    async with slow.locked(AOR):  # released by its holder: taken at once, writes go through
        assert (await slow.remove(AOR, "k")) == binding(5)


@pytest.mark.redis
async def test_redis_lock_is_released_after_the_critical_section_and_on_errors(
    redis_bindings: RedisBindingsFactory,
) -> None:
    store = await redis_bindings()
    with pytest.raises(RuntimeError):
        async with store.locked(AOR):
            raise RuntimeError("boom")
    assert await store.client.exists(f"{store.prefix}lock:{AOR}") == 0
    async with store.locked(AOR):
        assert await store.client.pttl(f"{store.prefix}lock:{AOR}") > 0


async def test_locked_hands_over_the_aors_bindings(bindings: RegistrarBindings) -> None:
    await bindings.add(binding(3))
    async with bindings.locked(AOR) as bound:
        assert bound == [binding(3)]
    async with bindings.locked("sip:1002@cti.local") as bound:
        assert bound == []


async def test_memory_lock_serialises_one_aor_and_forgets_it_when_idle() -> None:
    store = InMemoryBindings()
    order: list[str] = []

    async def hold(name: str) -> None:
        async with store.locked(AOR):
            order.append(f"{name}+")
            await asyncio.sleep(0)
            order.append(f"{name}-")

    await asyncio.gather(hold("x"), hold("y"), hold("z"))
    assert order == ["x+", "x-", "y+", "y-", "z+", "z-"]
    assert len(store.locks) == 0
    async with store.locked(AOR):
        waiter = asyncio.create_task(store.locks.acquire(AOR))
        await asyncio.sleep(0)
        assert not waiter.done()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    assert len(store.locks) == 0


async def test_memory_lock_passes_on_when_its_next_holder_is_cancelled() -> None:
    """A waiter cancelled after it was handed the lock, or dropped while waiting, does not keep it."""
    store = InMemoryBindings()
    await store.locks.acquire(AOR)
    handed = asyncio.create_task(store.locks.acquire(AOR))
    dropped = asyncio.create_task(store.locks.acquire(AOR))
    last = asyncio.create_task(store.locks.acquire(AOR))
    await asyncio.sleep(0)
    dropped.cancel()
    store.locks.release(AOR)  # handed to the first waiter...
    handed.cancel()  # ...which is cancelled before it runs
    for task in (handed, dropped):
        with pytest.raises(asyncio.CancelledError):
            await task
    await last
    assert len(store.locks) == 1
    store.locks.release(AOR)
    assert len(store.locks) == 0
