"""Integrity run: many items with random declines, push timeouts and abandonment; none lost, none
offered to two agents at once, no agent over capacity.

Drives RoutingEngine on a simulated clock (arrivals Poisson, handle times exponential). Every event
the engine publishes is checked by a ledger that mirrors who holds what; at the end every item must
have ended exactly once (closed or withdrawn) and the backend must hold no open item.

``--shards N`` runs N such simulations at once in this process (items split between them, seeds
seed..seed+N-1), each with its own engine, clock, ledger and Redis prefix: one simulation waits for
each step's reply before the next, so on Redis N of them keep the connection busy. ``--processes P``
runs P such processes.

    .venv/bin/python bench/routing_integrity.py --backend memory --items 1000000
    .venv/bin/python bench/routing_integrity.py --backend redis --items 1000000 --agents 50 --shards 8
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import multiprocessing
import random
import resource
import time
import uuid
from dataclasses import dataclass, field

from cti_server.events import Event
from cti_server.routing.backend import RoutingBackend
from cti_server.routing.clock import SimulatedClock
from cti_server.routing.engine import RoutingEngine
from cti_server.routing.memory import MemoryRoutingBackend
from cti_server.routing.model import Agent, Queue, RoutingConfig, RoutingConflict, WorkItem
from cti_server.routing.redis_backend import RedisRoutingBackend

REDIS_URL = "redis://127.0.0.1:6379/0"
_ARRIVE, _REACT, _END, _ABANDON = 0, 1, 2, 3


@dataclass
class Ledger:
    """Who holds which item, rebuilt from the event stream alone; raises on any impossible event."""

    capacity: int
    holder: dict[str, tuple[str, int]] = field(default_factory=dict)  # item -> (agent, offer_no)
    load: dict[str, int] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)

    def on_event(self, event: Event) -> None:
        topic = event.topic
        self.counts[topic] = self.counts.get(topic, 0) + 1
        if not topic.startswith("work_item."):
            return
        item = event.data["item"]
        item_id, agent = item["id"], str(event.data.get("agent") or "")
        if topic == "work_item.offered":
            if item_id in self.holder:
                raise AssertionError(f"{item_id} offered to {agent} while held by {self.holder[item_id]}")
            if item_id in self.ended:
                raise AssertionError(f"{item_id} offered after it ended")
            self.holder[item_id] = (agent, item["offer_no"])
            self.load[agent] = self.load.get(agent, 0) + item["size"]
            if self.load[agent] > self.capacity:
                raise AssertionError(f"{agent} over capacity: {self.load[agent]}")
        elif topic in ("work_item.declined", "work_item.timed_out", "work_item.closed") or (
                topic in ("work_item.withdrawn", "work_item.moved") and agent):
            held = self.holder.pop(item_id, None)
            if held is None or held[0] != agent:
                raise AssertionError(f"{topic} of {item_id} by {agent}, held by {held}")
            self.load[agent] -= item["size"]
        elif topic == "work_item.accepted" and self.holder.get(item_id, ("",))[0] != agent:
            raise AssertionError(f"{item_id} accepted by {agent}, held by {self.holder.get(item_id)}")
        if topic in ("work_item.closed", "work_item.withdrawn"):
            if item_id in self.ended:
                raise AssertionError(f"{item_id} ended twice")
            self.ended.add(item_id)


async def open_backend(kind: str, prefix: str,
                       share_with: RedisRoutingBackend | None = None) -> RoutingBackend:
    if kind == "memory":
        return MemoryRoutingBackend(scan_depth=100, history_retention_s=600.0, finished_items_kept=1000)
    return await RedisRoutingBackend.connect(REDIS_URL, prefix=prefix, scan_depth=100,
                                             history_retention_s=600.0, finished_items_kept=1000,
                                             share_with=share_with)


async def run(kind: str, items: int, agents: int, capacity: int, seed: int,
              decline_p: float, ignore_p: float, abandon_p: float, backoff_s: float = 0.0,
              share_with: RedisRoutingBackend | None = None) -> dict[str, object]:
    prefix = f"bench:integrity:{uuid.uuid4().hex[:8]}:"
    backend = await open_backend(kind, prefix, share_with)
    clock = SimulatedClock(0.0)
    ledger = Ledger(capacity)
    reactions: list[tuple[str, str, int]] = []

    def on_event(event: Event) -> None:
        ledger.on_event(event)
        if event.topic == "work_item.offered":
            reactions.append((event.data["item"]["id"], event.data["agent"], event.data["item"]["offer_no"]))

    engine = RoutingEngine(backend, clock, on_event)
    rng = random.Random(seed)
    handle_time = 60.0
    arrival_rate = 0.8 * agents * capacity / handle_time
    heap: list[tuple[float, int, int, str, str, int]] = [(0.0, 0, _ARRIVE, "0", "", 0)]
    seq = 1

    def push(when: float, what: int, item_id: str, agent: str = "", offer_no: int = 0) -> None:
        nonlocal seq
        heapq.heappush(heap, (when, seq, what, item_id, agent, offer_no))
        seq += 1
    started = time.perf_counter()
    try:
        push_timeout = 10.0
        await backend.put_routing_config(RoutingConfig(id="r", push_timeout_s=push_timeout,
                                                        decline_backoff_s=backoff_s))
        await backend.put_queue(Queue(id="q", call_center="cc", routing_config="r"))
        for n in range(agents):
            await engine.register_agent(Agent(id=f"a{n}", call_center="cc", capacity=capacity, queues=["q"]))
            await engine.set_agent_status(f"a{n}", "Available")
        # Every timer here is set at least this far ahead (push timeout, back-off), so after reading
        # the next deadline at time r no timer is due before it or r + first_due: events before both
        # are run without asking Redis again (a cancelled timer only makes the read value early).
        first_due = min(push_timeout, backoff_s) if backoff_s > 0 else push_timeout
        deadline, read_at = None, -first_due
        while True:
            if not heap or heap[0][0] >= read_at + first_due or (deadline is not None
                                                                 and deadline <= heap[0][0]):
                deadline, read_at = await engine.next_deadline(), clock.now()
            if not heap and deadline is None:
                break
            if deadline is not None and (not heap or deadline < heap[0][0]):
                clock.set(max(deadline, clock.now()))
                await engine.tick()
                read_at = -first_due
            else:
                t, _s, kind_of, item_id, agent, offer_no = heapq.heappop(heap)
                clock.set(max(t, clock.now()))
                try:
                    if kind_of == _ARRIVE:
                        index = int(item_id)
                        await engine.enqueue(WorkItem(id=item_id, channel="chat", queue="q",
                                                      call_center="cc"))
                        if index + 1 < items:
                            push(t + rng.expovariate(arrival_rate), _ARRIVE, str(index + 1))
                        if rng.random() < abandon_p:
                            push(t + rng.expovariate(1 / 20.0), _ABANDON, item_id)
                    elif kind_of == _REACT and ledger.holder.get(item_id) == (agent, offer_no):
                        roll = rng.random()
                        if roll < decline_p:
                            await engine.decline(item_id, agent, "bench")
                        elif roll >= decline_p + ignore_p:
                            await engine.accept(item_id, agent)
                            push(t + rng.expovariate(1 / handle_time), _END, item_id)
                    elif kind_of == _END:
                        await engine.end_conversation(item_id)
                    elif kind_of == _ABANDON and item_id not in ledger.ended:
                        holder = ledger.holder.get(item_id)
                        if holder is None or (await backend.get_item(item_id)).state != "assigned":
                            await engine.withdraw(item_id, "abandoned")
                except RoutingConflict:
                    pass  # e.g. abandoning an item that was just accepted
            while reactions:
                item_id, agent, offer_no = reactions.pop()
                push(clock.now() + rng.expovariate(1 / 2.0), _REACT, item_id, agent, offer_no)
        elapsed = time.perf_counter() - started
        left_open = await backend.list_items()
        lost = items - len(ledger.ended)
        assert not left_open, f"{len(left_open)} items still open"
        assert lost == 0 and not ledger.holder, f"{lost} items never ended"
        return {"backend": kind, "items": items, "agents": agents, "capacity": capacity, "seed": seed,
                "lost": lost, "doubly_offered": 0, "over_capacity": 0, "wall_s": round(elapsed, 1),
                "items_per_s": round(items / elapsed, 0), "simulated_s": round(clock.now(), 0),
                "events": ledger.counts}
    finally:
        if isinstance(backend, RedisRoutingBackend):
            await backend.drop_all()
        await backend.aclose()


async def run_shards(kind: str, items: int, shards: int, seed: int,
                     **kwargs: float) -> list[dict[str, object]]:
    """``shards`` independent simulations at once, ``items`` split between them.

    On Redis they share one connection (each on its own prefix), so the steps they take in one
    event-loop turn travel in one write.
    """
    sizes = [items // shards + (1 if n < items % shards else 0) for n in range(shards)]
    shared = None
    if kind == "redis":
        shared = await RedisRoutingBackend.connect(REDIS_URL, prefix=f"bench:shared:{uuid.uuid4().hex[:8]}:")
    try:
        return await asyncio.gather(*(run(kind, size, seed=seed + n, share_with=shared,
                                          **kwargs) for n, size in enumerate(sizes) if size))  # type: ignore[arg-type]
    finally:
        if shared is not None:
            await shared.drop_all()
            await shared.aclose()


def _process(args: tuple[str, int, int, int, dict[str, float]]) -> list[dict[str, object]]:
    kind, items, shards, seed, kwargs = args
    return asyncio.run(run_shards(kind, items, shards, seed, **kwargs))


def redis_cpu_s() -> float:
    """CPU seconds the Redis server has used (INFO cpu, all its clients)."""
    import redis

    info = redis.Redis.from_url(REDIS_URL).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["memory", "redis"], default="memory")
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--capacity", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--decline", type=float, default=0.15, help="share of offers declined")
    parser.add_argument("--ignore", type=float, default=0.10, help="share of offers left to time out")
    parser.add_argument("--abandon", type=float, default=0.05, help="share of items that may abandon")
    parser.add_argument("--backoff", type=float, default=0.0, help="decline_backoff_s of the queue")
    parser.add_argument("--shards", type=int, default=1, help="simulations at once per process")
    parser.add_argument("--processes", type=int, default=1, help="processes, each running --shards")
    args = parser.parse_args()
    kwargs = {"agents": args.agents, "capacity": args.capacity, "decline_p": args.decline,
              "ignore_p": args.ignore, "abandon_p": args.abandon, "backoff_s": args.backoff}
    procs = args.processes
    jobs = [(args.backend, args.items // procs + (1 if n < args.items % procs else 0), args.shards,
             args.seed + n * args.shards, kwargs) for n in range(procs)]
    redis_cpu = redis_cpu_s() if args.backend == "redis" else None
    started = time.perf_counter()
    if procs == 1:
        shards = _process(jobs[0])
    else:
        with multiprocessing.get_context("spawn").Pool(procs) as pool:
            shards = [r for rs in pool.map(_process, jobs) for r in rs]
    wall = time.perf_counter() - started
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(u.ru_utime + u.ru_stime for u in usage)
    events: dict[str, int] = {}
    for shard in shards:
        for topic, count in shard["events"].items():  # type: ignore[attr-defined]
            events[topic] = events.get(topic, 0) + count
    total = sum(int(str(s["items"])) for s in shards)
    result = {"backend": args.backend, "items": total, "agents_per_shard": args.agents,
              "backoff_s": args.backoff, "capacity": args.capacity, "shards": len(shards), "processes": procs,
              "lost": sum(int(str(s["lost"])) for s in shards), "doubly_offered": 0, "over_capacity": 0,
              "wall_s": round(wall, 1), "items_per_s": round(total / wall, 0),
              "client_cpu_us_per_item": round(cpu / total * 1e6, 1)}
    if redis_cpu is not None:
        result["redis_cpu_us_per_item"] = round((redis_cpu_s() - redis_cpu) / total * 1e6, 1)
    result["events"] = dict(sorted(events.items()))
    print(json.dumps(result, indent=2))  # noqa: T201 - a benchmark reports on stdout


if __name__ == "__main__":
    main()
