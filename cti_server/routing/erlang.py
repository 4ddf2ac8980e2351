"""Erlang C: the M/M/N queue that staffing planners size teams with.

Computed through the Erlang B recursion ``B(0) = 1, B(k) = A*B(k-1) / (k + A*B(k-1))``, which never
forms ``A**N`` or ``N!`` and so stays exact for thousands of agents, then
``C = N*B / (N - A*(1 - B))``. With offered load ``A = arrival_rate * handle_time`` (Erlangs):

- probability an arrival waits: ``C``;
- average speed of answer: ``C * handle_time / (N - A)``;
- service level within ``t``: ``1 - C * exp(-(N - A) * t / handle_time)``;
- occupancy: ``A / N``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ErlangC:
    """Erlang C figures for one load; ``stable`` is False when the load is at or above the agents."""

    agents: int
    load_erlangs: float
    stable: bool
    probability_of_waiting: float
    asa_s: float
    service_level: float
    occupancy: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return asdict(self)


def erlang_b(agents: int, load: float) -> float:
    """Blocking probability of ``agents`` servers under ``load`` Erlangs (the B recursion)."""
    if agents < 0 or load < 0:
        raise ValueError("agents and load must not be negative")
    blocking = 1.0
    for k in range(1, agents + 1):
        blocking = load * blocking / (k + load * blocking)
    return blocking


def erlang_c(arrival_rate: float, handle_time: float, agents: int, threshold: float) -> ErlangC:
    """Erlang C for Poisson arrivals at ``arrival_rate``/s, exponential ``handle_time`` s, ``agents``."""
    if arrival_rate <= 0 or handle_time <= 0 or agents < 1 or threshold < 0:
        raise ValueError("need arrival_rate > 0, handle_time > 0, agents >= 1, threshold >= 0")
    load = arrival_rate * handle_time
    if load >= agents:
        return ErlangC(agents, load, False, 1.0, math.inf, 0.0, 1.0)
    blocking = erlang_b(agents, load)
    waiting = agents * blocking / (agents - load * (1.0 - blocking))
    asa = waiting * handle_time / (agents - load)
    service_level = 1.0 - waiting * math.exp(-(agents - load) * threshold / handle_time)
    return ErlangC(agents, load, True, waiting, asa, service_level, load / agents)
