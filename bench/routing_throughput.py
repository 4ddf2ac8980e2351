"""Routing throughput: assignments per second with 10,000 agents and 100,000 waiting items.

Phase "fill": 100,000 items wait in one queue; 10,000 agents (capacity 1) go Available, each status
change offers the agent the best waiting item (agent-driven routing). Phase "churn": agents accept and
finish their item, which frees them and offers them the next waiting item; each step is accept +
end + offer. Both run through RoutingEngine on the memory backend and on the real Redis (Lua), with
``--workers`` coroutines at once on Redis (round trips overlap; the scripts still run one at a time).
``--processes P`` runs fill and churn in P client processes on the same Redis prefix, each with a
share of the agents (as several server processes would); setup stays in the parent. Figures per
phase: wall rate, client CPU (all processes) and Redis time (inside FCALL, and the server's CPU).
``--perf-stat`` adds instructions and cycles per step of the client process(es) and of the Redis server
(``perf stat``; Redis on this machine): instruction counts hardly move with the load of a shared machine
(with ``--processes``, fill's client figures include the start-up of the client processes).

    .venv/bin/python bench/routing_throughput.py --backend memory
    .venv/bin/python bench/routing_throughput.py --backend redis --workers 16
    .venv/bin/python bench/routing_throughput.py --backend redis --workers 16 --processes 2
    .venv/bin/python bench/routing_throughput.py --backend redis --workers 16 --churn 20000 --perf-stat
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import subprocess
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


async def open_backend(kind: str, prefix: str, url: str) -> RoutingBackend:
    if kind == "memory":
        return MemoryRoutingBackend(scan_depth=100)
    return await RedisRoutingBackend.connect(url, prefix=prefix, scan_depth=100)


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


async def redis_cpu_usec(backend: RoutingBackend) -> int | None:
    """Microseconds of CPU the Redis server has used so far (INFO cpu, all its clients), or None."""
    if not isinstance(backend, RedisRoutingBackend):
        return None
    info = await backend.client.info("cpu")
    return int((float(info["used_cpu_user"]) + float(info["used_cpu_sys"])) * 1e6)


class PerfStat:
    """``perf stat`` instructions and cycles of some processes, from the constructor to :meth:`stop`."""

    def __init__(self, pids: list[int]) -> None:
        self.proc = subprocess.Popen(
            ["perf", "stat", "-x,", "-e", "instructions,cycles", "-p", ",".join(map(str, pids))],
            stderr=subprocess.PIPE, text=True)

    def stop(self) -> dict[str, int]:
        self.proc.send_signal(signal.SIGINT)
        counts: dict[str, int] = {}
        for line in self.proc.communicate()[1].splitlines():
            fields = line.split(",")
            if len(fields) > 2 and fields[2] in ("instructions", "cycles") and fields[0].isdigit():
                counts[fields[2]] = int(fields[0])
        return counts


async def redis_pid(backend: RoutingBackend) -> int:
    assert isinstance(backend, RedisRoutingBackend)
    return int((await backend.client.info("server"))["process_id"])


class Phases:
    """Fill and churn over a slice of the agents; ``sync`` is called before each phase starts."""

    def __init__(self, engine: RoutingEngine, offered: dict[str, str], workers: int,
                 sync: Callable[[], None]) -> None:
        self.engine, self.offered, self.workers, self.sync = engine, offered, workers, sync

    async def fill(self, agent_ids: list[str]) -> dict[str, float]:
        self.sync()
        t0, c0 = time.perf_counter(), time.process_time()
        await in_parallel(self.workers, agent_ids, lambda a: self.engine.set_agent_status(a, "Available"))
        return {"count": len(self.offered), "wall": time.perf_counter() - t0, "cpu": time.process_time() - c0,
                "start": time.time() - (time.perf_counter() - t0), "end": time.time()}

    async def churn(self, steps: int) -> dict[str, float]:
        self.sync()
        done = 0
        t0, c0 = time.perf_counter(), time.process_time()
        before = self.engine.offers_made

        async def churn_step(item_id: str) -> None:
            nonlocal done
            agent = self.offered.pop(item_id)
            await self.engine.accept(item_id, agent)
            await self.engine.end_conversation(item_id)
            done += 1

        while done < steps and self.offered:
            batch = list(self.offered)[: steps - done]
            await in_parallel(self.workers, batch, churn_step)
        return {"count": done, "offers": self.engine.offers_made - before, "wall": time.perf_counter() - t0,
                "cpu": time.process_time() - c0, "start": time.time() - (time.perf_counter() - t0),
                "end": time.time()}


def offer_tracker(offered: dict[str, str]) -> Callable[[Event], None]:
    def on_event(event: Event) -> None:
        if event.topic == "work_item.offered":
            offered[event.data["item"]["id"]] = event.data["agent"]
    return on_event


def child(url: str, prefix: str, agent_ids: list[str], churn: int, workers: int, barrier: Any,
          results: Any) -> None:
    """One of ``--processes``: its share of the agents' fill and churn on the shared prefix."""
    async def main() -> None:
        backend = await RedisRoutingBackend.connect(url, prefix=prefix, scan_depth=100)
        offered: dict[str, str] = {}
        engine = RoutingEngine(backend, SimulatedClock(2_000_000.0), offer_tracker(offered))
        phases = Phases(engine, offered, workers, barrier.wait)
        try:
            results.put(("fill", await phases.fill(agent_ids)))
            results.put(("churn", await phases.churn(churn)))
        finally:
            await backend.aclose()
    asyncio.run(main())


async def run(kind: str, agents: int, items: int, churn: int, workers: int,
              processes: int = 1, url: str = REDIS_URL, perf_stat: bool = False) -> dict[str, object]:
    prefix = f"bench:routing:{uuid.uuid4().hex[:8]}:"
    backend = await open_backend(kind, prefix, url)
    clock = SimulatedClock(1_000_000.0)
    offered: dict[str, str] = {}
    engine = RoutingEngine(backend, clock, offer_tracker(offered))
    result: dict[str, object] = {"backend": kind, "agents": agents, "items": items, "workers": workers,
                                 "processes": processes, "cpu_reference_s": cpu_reference()}
    agent_ids = [f"agent{n}" for n in range(agents)]
    try:
        await backend.put_routing_config(RoutingConfig(id="bench", push_timeout_s=0.0))
        await backend.put_queue(Queue(id="q", call_center="cc", routing_config="bench"))
        t0 = time.perf_counter()
        await in_parallel(workers, agent_ids, lambda a: engine.register_agent(
            Agent(id=a, call_center="cc", capacity=1, queues=["q"])))

        async def enqueue(n: str) -> None:
            clock.advance(0.001)
            await engine.enqueue(WorkItem(id=n, channel="chat", queue="q", call_center="cc"))

        await in_parallel(workers, [f"i{n}" for n in range(items)], enqueue)
        result["setup_s"] = round(time.perf_counter() - t0, 2)
        result["enqueue_per_s"] = round(items / (time.perf_counter() - t0), 0)

        phases = Phases(engine, offered, workers, lambda: None)
        procs: list[Any] = []
        if processes > 1:
            ctx = multiprocessing.get_context("spawn")
            barrier, results = ctx.Barrier(processes + 1), ctx.Queue()
            procs = [ctx.Process(target=child, args=(url, prefix, agent_ids[n::processes], churn // processes,
                                                     workers, barrier, results)) for n in range(processes)]
            for proc in procs:
                proc.start()

        async def run_phase(phase: str) -> list[dict[str, float]]:
            if not procs:
                return [await (phases.fill(agent_ids) if phase == "fill" else phases.churn(churn))]
            await asyncio.to_thread(barrier.wait)
            out = [await asyncio.to_thread(results.get) for _ in procs]
            assert all(name == phase for name, _r in out)
            return [r for _name, r in out]

        churn_offers = 0
        for phase in ("fill", "churn"):
            counters: dict[str, PerfStat] = {}
            if perf_stat:
                counters["client"] = PerfStat([p.pid for p in procs] if procs else [os.getpid()])
                if kind == "redis":
                    counters["redis"] = PerfStat([await redis_pid(backend)])
                await asyncio.sleep(0.5)  # perf attaches
            server_before, cpu_before = await redis_server_usec(backend), await redis_cpu_usec(backend)
            try:
                parts = await run_phase(phase)
            finally:  # a failed phase leaves no perf attached to Redis
                stats = {side: counter.stop() for side, counter in counters.items()}
            wall = max(p["end"] for p in parts) - min(p["start"] for p in parts)
            client_cpu = sum(p["cpu"] for p in parts)
            count = sum(p["count"] for p in parts)
            if phase == "fill":
                result["fill_assignments"] = count
                result["fill_assignments_per_s"] = round(count / wall, 0)
                result["fill_client_cpu_us_per_assignment"] = round(client_cpu / count * 1e6, 1)
                unit = "assignment"
            else:
                result["churn_steps"] = count
                result["churn_steps_per_s"] = round(count / wall, 0)
                churn_offers = int(sum(p["offers"] for p in parts))
                result["churn_assignments_per_s"] = round(churn_offers / wall, 0)
                result["churn_client_cpu_us_per_step"] = round(client_cpu / count * 1e6, 1)
                unit = "step"
            if server_before is not None and cpu_before is not None:
                # What Redis itself spent: the time inside FCALL (wall, so it grows when Redis waits
                # for a core) and the server's CPU time (all its clients, network included).
                usec = await redis_server_usec(backend) - server_before  # type: ignore[operator]
                cpu = await redis_cpu_usec(backend) - cpu_before  # type: ignore[operator]
                result[f"{phase}_redis_fcall_us_per_{unit}"] = round(usec / max(count, 1), 1)
                result[f"{phase}_redis_cpu_us_per_{unit}"] = round(cpu / max(count, 1), 1)
            for side, counts in stats.items():
                for event, value in counts.items():
                    result[f"{phase}_{side}_k{event}_per_{unit}"] = round(value / max(count, 1) / 1000, 1)
        for proc in procs:
            await asyncio.to_thread(proc.join)
        snapshot = await backend.queue_snapshot("q")
        result["still_waiting"] = snapshot.waiting
        assert snapshot.waiting == items - agents - churn_offers, "an item went missing"
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
    parser.add_argument("--processes", type=int, default=1,
                        help="client processes sharing the agents in fill and churn (Redis)")
    parser.add_argument("--redis-url", default=REDIS_URL,
                        help="e.g. a Redis of its own, whose INFO commandstats and CPU count this run alone")
    parser.add_argument("--perf-stat", action="store_true",
                        help="instructions and cycles per step of client and Redis (perf stat, local Redis)")
    args = parser.parse_args()
    result = asyncio.run(run(args.backend, args.agents, args.items, args.churn, args.workers, args.processes,
                             args.redis_url, args.perf_stat))
    print(json.dumps(result, indent=2))  # noqa: T201 - a benchmark reports on stdout


if __name__ == "__main__":
    main()
