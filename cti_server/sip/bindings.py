"""Registrar bindings (RFC 3261 section 10.3): address-of-record -> contacts, behind one interface.

``RegistrarBindings`` is what the registrar and the call layer use; ``InMemoryBindings`` serves the
embedded default, ``cti_server.sip.redis_bindings.RedisBindings`` the bindings several processes share.
A binding is keyed within its AOR by ``key``: the ``+sip.instance`` and ``reg-id`` of RFC 5626 when the
phone sends them, else the normalized contact URI (RFC 3261 section 19.1.4 comparison). The store also
offers the registrar its per-AOR critical section (``locked``), as wide as the store is shared, which
hands over the AOR's bindings as they are when it is entered.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections import deque
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Binding:
    """One contact bound to an address-of-record until ``expires_at`` (seconds, the registrar's clock).

    ``source`` and ``transport`` are where the REGISTER really came from: a phone behind NAT is
    reached there, not at the private address in its Contact (RFC 3581, RFC 5626 section 5.3).
    """

    aor: str
    key: str
    contact: str
    expires_at: float
    call_id: str
    cseq: int
    source: tuple[str, int]
    transport: str
    q: float | None = None
    instance_id: str | None = None
    reg_id: int | None = None
    user_agent: str | None = None
    registered_at: float = 0.0
    path: tuple[str, ...] = ()  # RFC 3327 Path of the REGISTER: the route back to the phone

    def expires_in(self, now: float) -> int:
        """Whole seconds left, never negative (the ``expires`` param of a 200 to REGISTER)."""
        return max(0, math.ceil(self.expires_at - now))

    def to_json(self, now: float) -> dict[str, Any]:
        """A JSON-safe description for the API and bus events."""
        data = asdict(self)
        data["source"] = list(self.source)
        data["path"] = list(self.path)
        data["expires_in"] = self.expires_in(now)
        return data


class BindingsUnavailable(Exception):
    """The bindings store cannot be reached now (Redis down or restarting): a REGISTER gets 503 with
    Retry-After (RFC 3261 section 21.5.4) instead of a 500, and the phone tries again later."""


class BindingsBusy(BindingsUnavailable):
    """An AOR's lock could not be had in time (another process holds it), or its lease ran out before
    the holder wrote: the REGISTER is answered like an unreachable store (503, Retry-After)."""


class RegistrarBindings(Protocol):
    """Storage of registrar bindings: add/refresh, remove, remove_all, lookup, expire, and the per-AOR
    lock the registrar holds around its read-check-write of one REGISTER (RFC 3261 section 10.3 steps
    6-7: Call-ID/CSeq order, the contact limit, ``Contact: *``)."""

    def locked(self, aor: str) -> AbstractAsyncContextManager[list[Binding]]:
        """``async with store.locked(aor) as bound:`` one holder per AOR among everyone sharing the
        store; ``bound`` is what ``lookup(aor)`` returns at that moment (on Redis read in the same step
        that takes the lock). Raises ``BindingsBusy`` when the lock cannot be had in time."""
        ...

    async def add(self, binding: Binding) -> Binding | None:
        """Store ``binding`` (replacing the one with the same aor and key); return the replaced one."""
        ...

    async def remove(self, aor: str, key: str) -> Binding | None:
        """Remove one binding; return it, or None if there was none."""
        ...

    async def remove_all(self, aor: str) -> list[Binding]:
        """Remove every binding of ``aor`` (REGISTER with ``Contact: *``); return them."""
        ...

    async def lookup(self, aor: str) -> list[Binding]:
        """The bindings of ``aor`` (including any whose expiry has passed but was not swept yet)."""
        ...

    async def expire(self, now: float) -> list[Binding]:
        """Remove and return every binding with ``expires_at <= now``."""
        ...

    async def all(self) -> list[Binding]:
        """Every binding, for listings."""
        ...


class AorLocks:
    """One lock per AOR for the tasks of this process, first come first served, kept only while held.

    An AOR nobody waits for costs one dict entry and no lock object (most REGISTERs); waiters queue
    futures and ``release`` hands the lock to the first of them directly.
    """

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held: dict[str, deque[asyncio.Future[None]] | None] = {}

    def try_acquire(self, aor: str) -> bool:
        """Take ``aor``'s lock if it is free; False if someone holds it."""
        if aor in self._held:
            return False
        self._held[aor] = None
        return True

    async def acquire(self, aor: str) -> None:
        """Wait for ``aor``'s lock."""
        if self.try_acquire(aor):
            return
        waiters = self._held[aor]
        if waiters is None:
            waiters = self._held[aor] = deque()
        waiter = asyncio.get_running_loop().create_future()
        waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release(aor)  # handed the lock, then cancelled before running: pass it on
            elif waiter in waiters:  # a release may have dropped it already
                waiters.remove(waiter)
            raise

    def release(self, aor: str) -> None:
        """Hand ``aor``'s lock to its first waiter, or free it."""
        waiters = self._held[aor]
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        del self._held[aor]

    def __len__(self) -> int:
        return len(self._held)


class _LockedAor:
    __slots__ = ("_aor", "_store")

    def __init__(self, store: InMemoryBindings, aor: str) -> None:
        self._store = store
        self._aor = aor

    async def __aenter__(self) -> list[Binding]:
        store = self._store
        if not store.locks.try_acquire(self._aor):
            await store.locks.acquire(self._aor)
        return list(store._by_aor.get(self._aor, {}).values())

    async def __aexit__(self, *exc_info: object) -> None:
        self._store.locks.release(self._aor)


class InMemoryBindings:
    """``RegistrarBindings`` in a dict, with an expiry heap so ``expire`` costs only what it removes;
    ``locked`` serialises the tasks of this process (the only ones that see these bindings)."""

    def __init__(self) -> None:
        self._by_aor: dict[str, dict[str, Binding]] = {}
        self._deadlines: list[tuple[float, str, str]] = []
        self.locks = AorLocks()

    def locked(self, aor: str) -> AbstractAsyncContextManager[list[Binding]]:
        return _LockedAor(self, aor)

    async def add(self, binding: Binding) -> Binding | None:
        contacts = self._by_aor.setdefault(binding.aor, {})
        previous = contacts.get(binding.key)
        contacts[binding.key] = binding
        heapq.heappush(self._deadlines, (binding.expires_at, binding.aor, binding.key))
        return previous

    async def remove(self, aor: str, key: str) -> Binding | None:
        contacts = self._by_aor.get(aor)
        if contacts is None:
            return None
        removed = contacts.pop(key, None)
        if not contacts:
            del self._by_aor[aor]
        return removed

    async def remove_all(self, aor: str) -> list[Binding]:
        return list(self._by_aor.pop(aor, {}).values())

    async def lookup(self, aor: str) -> list[Binding]:
        return list(self._by_aor.get(aor, {}).values())

    async def expire(self, now: float) -> list[Binding]:
        expired: list[Binding] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, aor, key = heapq.heappop(self._deadlines)
            current = self._by_aor.get(aor, {}).get(key)
            # A refreshed or removed binding left a stale heap entry behind: skip it.
            if current is not None and current.expires_at == deadline:
                await self.remove(aor, key)
                expired.append(current)
        if len(self._deadlines) > 4 * (self.count() + 64):
            self._compact()
        return expired

    async def all(self) -> list[Binding]:
        return [b for contacts in self._by_aor.values() for b in contacts.values()]

    def count(self) -> int:
        """Number of bindings held."""
        return sum(len(c) for c in self._by_aor.values())

    def _compact(self) -> None:
        self._deadlines = [(b.expires_at, b.aor, b.key) for c in self._by_aor.values() for b in c.values()]
        heapq.heapify(self._deadlines)
