"""Routing throughput: assignments per second with 10,000 agents and 100,000 waiting items.

Phase "fill": 100,000 items wait in one queue; 10,000 agents (capacity 1) go Available, each status
change offers the agent the best waiting item (agent-driven routing). Phase "churn": agents accept and
finish their item, which frees them and offers them the next waiting item; each step is accept +
end + offer. Both run through RoutingEngine on the memory backend and on the real Redis (Lua), with
``--workers`` coroutines at once on Redis (round trips overlap; the scripts still run one at a time).

    .venv/bin/python bench/routing_throughput.py --backend memory
    .venv/bin/python bench/routing_throughput.py --backend redis --workers 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from cti_server.events import Event
from cti_server.routing.backend import RoutingBackend
from cti_server.routing.clock import SimulatedClock
from cti_server.routing.engine import RoutingEngine
from cti_server.routing.memory import MemoryRoutingBackend
from cti_server.routing.model import Agent, Queue, RoutingConfig, WorkItem
from cti_server.routing.redis_backend import RedisRoutingBackend

REDIS_URL = "redis://127.0.0.1:6379/0"


async def open_backend(kind: str, prefix: str) -> RoutingBackend:
    if kind == "memory":
        return MemoryRoutingBackend(scan_depth=100)
    return await RedisRoutingBackend.connect(REDIS_URL, prefix=prefix, scan_depth=100)


def cpu_reference() -> float:
    """Seconds a fixed pure-Python loop takes now (about 0.3 s on an idle modern core)."""
    started = time.perf_counter()
    total = 0
    for n in range(5_000_000):
        total += n
    return round(time.perf_counter() - started, 2)


async def redis_server_usec(backend: RoutingBackend) -> int | None:
    """Microseconds Redis has spent in FCALL so far (INFO commandstats), or None for memory."""
    if not isinstance(backend, RedisRoutingBackend):
        return None
    stats = await backend.client.info("commandstats")
    return int(stats.get("cmdstat_fcall", {}).get("usec", 0))


async def in_parallel(workers: int, jobs: list[str], step: Callable[[str], Awaitable[Any]]) -> None:
    """Run ``step(job)`` for every job with ``workers`` coroutines."""
    if workers == 1:
        for job in jobs:
            await step(job)
        return
    queue: asyncio.Queue[str] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker() -> None:
        while not queue.empty():
            await step(queue.get_nowait())

    await asyncio.gather(*(worker() for _ in range(workers)))


async def run(kind: str, agents: int, items: int, churn: int, workers: int) -> dict[str, object]:
    prefix = f"bench:routing:{uuid.uuid4().hex[:8]}:"
    backend = await open_backend(kind, prefix)
    clock = SimulatedClock(1_000_000.0)
    offered: dict[str, str] = {}

    def on_event(event: Event) -> None:
        if event.topic == "work_item.offered":
            offered[event.data["item"]["id"]] = event.data["agent"]

    engine = RoutingEngine(backend, clock, on_event)
    result: dict[str, object] = {"backend": kind, "agents": agents, "items": items, "workers": workers,
                                 "cpu_reference_s": cpu_reference()}
    try:
        await backend.put_routing_config(RoutingConfig(id="bench", push_timeout_s=0.0))
        await backend.put_queue(Queue(id="q", call_center="cc", routing_config="bench"))
        t0 = time.perf_counter()
        await in_parallel(workers, [f"agent{n}" for n in range(agents)], lambda a: engine.register_agent(
            Agent(id=a, call_center="cc", capacity=1, queues=["q"])))

        async def enqueue(n: str) -> None:
            clock.advance(0.001)
            await engine.enqueue(WorkItem(id=n, channel="chat", queue="q", call_center="cc"))

        await in_parallel(workers, [f"i{n}" for n in range(items)], enqueue)
        result["setup_s"] = round(time.perf_counter() - t0, 2)
        result["enqueue_per_s"] = round(items / (time.perf_counter() - t0), 0)

        server_before = await redis_server_usec(backend)
        t0, c0 = time.perf_counter(), time.process_time()
        await in_parallel(workers, [f"agent{n}" for n in range(agents)],
                          lambda a: engine.set_agent_status(a, "Available"))
        fill_s, fill_cpu = time.perf_counter() - t0, time.process_time() - c0
        result["fill_assignments"] = len(offered)
        result["fill_assignments_per_s"] = round(len(offered) / fill_s, 0)
        # Per CPU-second of this process: what one free core would do (the machine may be shared).
        result["fill_assignments_per_cpu_s"] = round(len(offered) / fill_cpu, 0)
        if server_before is not None:
            # What Redis itself spent: the rate one Redis could sustain with clients fast enough.
            usec = await redis_server_usec(backend) - server_before  # type: ignore[operator]
            result["fill_redis_usec_per_assignment"] = round(usec / max(len(offered), 1), 1)

        done = 0
        server_before = await redis_server_usec(backend)
        t0, c0 = time.perf_counter(), time.process_time()
        before = engine.offers_made

        async def churn_step(item_id: str) -> None:
            nonlocal done
            agent = offered.pop(item_id)
            await engine.accept(item_id, agent)
            await engine.end_conversation(item_id)
            done += 1

        while done < churn:
            batch = list(offered)[: churn - done]
            await in_parallel(workers, batch, churn_step)
        churn_s, churn_cpu = time.perf_counter() - t0, time.process_time() - c0
        result["churn_steps_per_cpu_s"] = round(done / churn_cpu, 0)
        result["churn_steps"] = done
        result["churn_assignments_per_s"] = round((engine.offers_made - before) / churn_s, 0)
        result["churn_steps_per_s"] = round(done / churn_s, 0)
        if server_before is not None:
            usec = await redis_server_usec(backend) - server_before  # type: ignore[operator]
            result["churn_redis_usec_per_step"] = round(usec / max(done, 1), 1)
        snapshot = await backend.queue_snapshot("q")
        result["still_waiting"] = snapshot.waiting
        assert snapshot.waiting == items - agents - (engine.offers_made - before), "an item went missing"
    finally:
        if isinstance(backend, RedisRoutingBackend):
            await backend.drop_all()
        await backend.aclose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["memory", "redis"], default="memory")
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--churn", type=int, default=50_000, help="accept+end+offer steps in phase churn")
    parser.add_argument("--workers", type=int, default=1, help="concurrent coroutines (Redis)")
    args = parser.parse_args()
    result = asyncio.run(run(args.backend, args.agents, args.items, args.churn, args.workers))
    print(json.dumps(result, indent=2))  # noqa: T201 - a benchmark reports on stdout


if __name__ == "__main__":
    main()
