"""CPU cost of the registrar's bindings store: InMemoryBindings against RedisBindings on the real Redis at
127.0.0.1:6379 (``[sip.registrar] bindings = "redis"``).

1. Store operations, one in flight at a time: ``add`` (a new binding), ``lookup`` (an INVITE to a user),
   ``expire`` (the sweep, per binding removed).
2. Whole registrations through the SIP stack without sockets, as ``bench/sip_register_path.py`` (whose
   messages it reuses): REGISTER -> 401, REGISTER with MD5 credentials -> 200 handled by the real
   registrar, batches of 250 in flight (as a loaded server has them), waiting for all 250 answers.

Client CPU is this process's ``time.process_time`` (redis-py and asyncio's socket work included). For
Redis, "Redis exec" is the time Redis spent executing our commands (``INFO commandstats``: EVALSHA,
HVALS, ZRANGE), without its socket reads and writes; ``INFO cpu`` is not used because other processes
share this Redis. Keys go under a fresh prefix that is deleted at the end.

    .venv/bin/python bench/registrar_bindings_bench.py --bindings 5000 --registrations 3000
    .venv/bin/python bench/registrar_bindings_bench.py --bindings 5000 --registrations 3000 --redis-py-only
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import redis.asyncio as redis
from sip_register_path import BATCH, authorization, bench_config, register

from cti_server.event_loop import tune_garbage_collector
from cti_server.events import EventBus
from cti_server.logs import configure_logging
from cti_server.sip.bindings import Binding, InMemoryBindings, RegistrarBindings
from cti_server.sip.memory_transport import MemoryFlow, MemoryTransports
from cti_server.sip.redis_bindings import RedisBindings
from cti_server.sip.registrar import RegistrarComponent
from cti_server.sip.stack import SipComponent

REDIS_URL = "redis://127.0.0.1:6379/0"
OUR_COMMANDS = ("cmdstat_evalsha", "cmdstat_hvals", "cmdstat_zrange")


def binding(i: int, expires_at: float) -> Binding:
    user = f"u{2000 + i}"
    contact = f"sip:{user}@127.0.0.1:5061"
    return Binding(aor=f"sip:{user}@cti", key=contact, contact=contact, expires_at=expires_at,
                   call_id=f"{i}-bench@127.0.0.1", cseq=2, source=("127.0.0.1", 5061), transport="udp",
                   user_agent="bench", registered_at=expires_at - 3600)


async def redis_exec_us(client: redis.Redis | None) -> float:
    """Microseconds Redis spent executing our commands so far."""
    if client is None:
        return 0.0
    stats = await client.info("commandstats")
    return float(sum(stats[name]["usec"] for name in OUR_COMMANDS if name in stats))


class Meter:
    """Client CPU and Redis execution time over a block of work, per operation."""

    def __init__(self, client: redis.Redis | None) -> None:
        self.client = client

    async def run(self, count: int, work: Callable[[], Awaitable[object]]) -> tuple[float, float]:
        server_before = await redis_exec_us(self.client)
        began = time.process_time()
        await work()
        client_us = (time.process_time() - began) * 1e6
        return client_us / count, (await redis_exec_us(self.client) - server_before) / count


async def store_ops(store: RegistrarBindings, meter: Meter, count: int) -> dict[str, tuple[float, float]]:
    now = 1_700_000_000.0
    bindings = [binding(i, now + 3600) for i in range(count)]

    async def each(step: Callable[[Binding], Awaitable[object]]) -> None:
        for b in bindings:
            await step(b)

    rows = {"add": await meter.run(count, lambda: each(store.add)),
            "lookup": await meter.run(count, lambda: each(lambda b: store.lookup(b.aor)))}
    expired: list[Binding] = []

    async def sweep() -> None:
        expired.extend(await store.expire(now + 7200))

    rows["expire (per binding)"] = await meter.run(count, sweep)
    assert len(expired) == count, len(expired)
    return rows


class CountingFlow(MemoryFlow):
    """A MemoryFlow that wakes a waiter once ``target`` datagrams were sent."""

    def __init__(self) -> None:
        super().__init__()
        self.target = 0
        self.reached = asyncio.Event()

    def send(self, data: bytes) -> None:
        super().send(data)
        if len(self.sent) >= self.target:
            self.reached.set()

    async def feed(self, stack: SipComponent, messages: list[bytes]) -> None:
        for start in range(0, len(messages), BATCH):
            chunk = messages[start:start + BATCH]
            self.target = len(self.sent) + len(chunk)
            self.reached.clear()
            for data in chunk:
                stack._on_message(data, self)
                await asyncio.sleep(0)
            if len(self.sent) < self.target:
                await self.reached.wait()


async def registrations(bindings: RegistrarBindings, meter: Meter, count: int) -> tuple[float, float]:
    config = bench_config()
    configure_logging(config.log, cache_loggers=True)
    bus = EventBus()
    stack = SipComponent(config, bus)
    stack._loop = asyncio.get_running_loop()
    flow = CountingFlow()
    stack._transports = MemoryTransports(flow)  # type: ignore[assignment]
    RegistrarComponent.attach(stack, config.sip, bus, bindings)
    tune_garbage_collector()
    first = await meter.run(count, lambda: flow.feed(stack, [register(i, 1) for i in range(count)]))
    challenges = [data.decode() for data in flow.sent]
    flow.sent.clear()
    second_requests = [register(i, 2, authorization(i, c)) for i, c in enumerate(challenges)]
    second = await meter.run(count, lambda: flow.feed(stack, second_requests))
    accepted = sum(1 for data in flow.sent if data.startswith(b"SIP/2.0 200"))
    assert accepted == count, f"{accepted}/{count} accepted"
    await stack.stop()
    return first[0] + second[0], first[1] + second[1]


def show(name: str, op: str, figures: tuple[float, float], redis_used: bool) -> None:
    client_us, server_us = figures
    server = f"   Redis exec {server_us:6.1f} us" if redis_used else ""
    sys.stdout.write(f"{name:6} {op:40} client CPU {client_us:7.1f} us{server}\n")


async def run(count: int, register_count: int, redis_py_only: bool) -> None:
    for name, op in (await store_ops(InMemoryBindings(), Meter(None), count)).items():
        show("memory", name, op, False)
    show("memory", "registration (401 + 200, whole stack)",
         await registrations(InMemoryBindings(), Meter(None), register_count), False)
    prefix = f"bench:bindings:{uuid.uuid4().hex[:12]}:"
    store = RedisBindings.from_url(REDIS_URL, prefix)
    if redis_py_only:
        store._fast = None  # every command through redis-py's client, as TLS connections go
    await store.start()
    probe = redis.from_url(REDIS_URL, decode_responses=True)
    try:
        meter = Meter(probe)
        for name, op in (await store_ops(store, meter, count)).items():
            show("redis", name, op, True)
        whole = await registrations(store, meter, register_count)
        show("redis", "registration (401 + 200, whole stack)", whole, True)
    finally:
        keys = [k async for k in probe.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await probe.delete(*keys)
        await probe.aclose()
        await store.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bindings", type=int, default=5000, help="bindings (one per AOR) per store run")
    parser.add_argument("--registrations", type=int, default=3000, help="registrations through the stack")
    parser.add_argument("--redis-py-only", action="store_true",
                        help="leave out the pipelined connection (compare: what it saves)")
    args = parser.parse_args()
    asyncio.run(run(args.bindings, args.registrations, args.redis_py_only))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
