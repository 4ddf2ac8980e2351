"""Contact-centre simulation through the real routing engine on a simulated clock.

Poisson arrivals, exponential handle times, agents who accept every offer at once and, optionally,
callers who give up after an exponential patience. Every item goes through
:class:`~cti_server.routing.engine.RoutingEngine` (enqueue, offer, accept, end, withdraw) exactly as
in the server; only the clock is simulated. The result sits beside Erlang C for the same load, with
95% confidence half-widths from batch means (20 batches) after a 10% warm-up.
"""

from __future__ import annotations

import heapq
import math
import random
import statistics
from dataclasses import asdict, dataclass
from typing import Any

from cti_server.events import Event
from cti_server.routing.backend import RoutingBackend
from cti_server.routing.clock import SimulatedClock
from cti_server.routing.engine import RoutingEngine
from cti_server.routing.erlang import ErlangC, erlang_c
from cti_server.routing.memory import MemoryRoutingBackend
from cti_server.routing.model import Agent, Queue, RoutingConfig, WorkItem

_ARRIVAL, _END, _ABANDON = 0, 1, 2
_BATCHES = 20
_T_975_19 = 2.093  # Student t, 19 degrees of freedom, two-sided 95%


@dataclass(frozen=True)
class SimulationParams:
    """One planning question: this many agents, this load, this service-level threshold."""

    arrival_rate: float
    handle_time: float
    agents: int
    threshold: float
    items: int = 100_000
    seed: int = 1
    patience: float | None = None

    def validate(self) -> None:
        """Raise ValueError naming the bad parameter."""
        for name in ("arrival_rate", "handle_time"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        if self.agents < 1:
            raise ValueError("agents must be >= 1")
        if self.threshold < 0:
            raise ValueError("threshold must be >= 0")
        if self.items < 100:
            raise ValueError("items must be >= 100")
        if self.patience is not None and not self.patience > 0:
            raise ValueError("patience must be > 0")


@dataclass(frozen=True)
class SimulatedFigures:
    """What the simulation measured over the items after the warm-up."""

    items_measured: int
    answered: int
    abandoned: int
    probability_of_waiting: float
    asa_s: float
    asa_ci95_s: float
    service_level: float
    service_level_ci95: float
    abandon_rate: float
    occupancy: float


@dataclass(frozen=True)
class SimulationResult:
    """Simulated figures beside Erlang C (which assumes no abandonment)."""

    params: SimulationParams
    simulated: SimulatedFigures
    erlang_c: ErlangC
    offers: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (``--json``)."""
        out = asdict(self)
        out["erlang_c"] = self.erlang_c.to_dict()
        return out

    def relative_error(self, name: str) -> float:
        """|simulated - Erlang C| / Erlang C of ``asa_s``, ``service_level``, ``probability_of_waiting``."""
        expected = float(getattr(self.erlang_c, name))
        measured = float(getattr(self.simulated, name))
        return abs(measured - expected) / expected if expected else abs(measured)


async def simulate(params: SimulationParams, backend: RoutingBackend | None = None) -> SimulationResult:
    """Run ``params.items`` arrivals through a routing engine (memory backend unless given one)."""
    params.validate()
    clock = SimulatedClock(0.0)
    offered: list[tuple[str, str]] = []

    def collect(event: Event) -> None:
        if event.topic == "work_item.offered":
            offered.append((event.data["item"]["id"], event.data["agent"]))

    backend = backend or MemoryRoutingBackend(scan_depth=100, history_retention_s=3600.0)
    engine = RoutingEngine(backend, clock, collect)
    await backend.put_routing_config(RoutingConfig(id="sim", push_timeout_s=0.0,
                                                   service_level_threshold_s=params.threshold))
    await backend.put_queue(Queue(id="sim", call_center="sim", routing_config="sim"))
    for n in range(params.agents):
        await engine.register_agent(Agent(id=f"agent{n}", call_center="sim", queues=["sim"]))
        await engine.set_agent_status(f"agent{n}", "Available")

    rng = random.Random(params.seed)
    warmup = params.items // 10
    arrival_time: list[float] = []
    wait: list[float | None] = []  # None: abandoned
    unanswered: set[int] = set()
    events: list[tuple[float, int, int, int]] = [(rng.expovariate(params.arrival_rate), 0, _ARRIVAL, 0)]
    seq = 1
    busy, busy_time, last_t = 0, 0.0, 0.0
    measuring, window_start, window_end = False, 0.0, 0.0

    while events:
        t, _s, kind, index = heapq.heappop(events)
        if measuring:
            busy_time += busy * (t - last_t)
        last_t = t
        clock.set(t)
        if kind == _ARRIVAL:
            if index == warmup:
                measuring, window_start = True, t
            if index == params.items - 1:
                measuring, window_end = False, t
            arrival_time.append(t)
            wait.append(None)
            unanswered.add(index)
            await engine.enqueue(WorkItem(id=str(index), channel="voice", queue="sim", call_center="sim"))
            if index + 1 < params.items:
                heapq.heappush(events, (t + rng.expovariate(params.arrival_rate), seq, _ARRIVAL, index + 1))
                seq += 1
            if params.patience is not None:
                heapq.heappush(events, (t + rng.expovariate(1.0 / params.patience), seq, _ABANDON, index))
                seq += 1
        elif kind == _END:
            busy -= 1
            await engine.end_conversation(str(index))
        elif kind == _ABANDON and index in unanswered:
            unanswered.discard(index)
            await engine.withdraw(str(index), "abandoned")
        while offered:
            item_id, agent_id = offered.pop(0)
            await engine.accept(item_id, agent_id)
            k = int(item_id)
            unanswered.discard(k)
            wait[k] = t - arrival_time[k]
            busy += 1
            heapq.heappush(events, (t + rng.expovariate(1.0 / params.handle_time), seq, _END, k))
            seq += 1

    measured = wait[warmup:]
    span = max(window_end - window_start, 1e-9)
    simulated = _figures(measured, params.threshold, busy_time / (params.agents * span))
    reference = erlang_c(params.arrival_rate, params.handle_time, params.agents, params.threshold)
    return SimulationResult(params, simulated, reference, engine.offers_made)


def _figures(waits: list[float | None], threshold: float, occupancy: float) -> SimulatedFigures:
    answered = [w for w in waits if w is not None]
    n = len(waits)
    size = n // _BATCHES
    batch_asa, batch_sl = [], []
    for b in range(_BATCHES):
        chunk = waits[b * size:(b + 1) * size]
        got = [w for w in chunk if w is not None]
        batch_asa.append(sum(got) / len(got) if got else 0.0)
        batch_sl.append(sum(1 for w in got if w <= threshold) / len(chunk))
    return SimulatedFigures(
        items_measured=n,
        answered=len(answered),
        abandoned=n - len(answered),
        probability_of_waiting=sum(1 for w in waits if w is None or w > 1e-9) / n,
        asa_s=sum(answered) / len(answered) if answered else math.nan,
        asa_ci95_s=_T_975_19 * statistics.stdev(batch_asa) / math.sqrt(_BATCHES),
        service_level=sum(1 for w in answered if w <= threshold) / n,
        service_level_ci95=_T_975_19 * statistics.stdev(batch_sl) / math.sqrt(_BATCHES),
        abandon_rate=(n - len(answered)) / n,
        occupancy=occupancy,
    )
