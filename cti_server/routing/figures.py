"""Supervisor figures: live queue and agent pictures, and statistics over a time window.

Definitions (the usual contact-centre ones):

- average speed of answer (ASA): mean of (accepted - created) over items answered in the window;
- service level: answered within the queue's threshold / (answered + abandoned) in the window;
- abandon rate: abandoned (withdrawn before an agent accepted) / (answered + abandoned);
- average handle time: talk + hold + after-call work, per item closed in the window, with its parts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cti_server.routing.backend import RoutingBackend


@dataclass
class WindowFigures:
    """Statistics of one queue over a time window."""

    queue: str
    call_center: str
    answered: int = 0
    abandoned: int = 0
    handled: int = 0
    asa_s: float | None = None
    service_level: float | None = None
    abandon_rate: float | None = None
    aht_s: float | None = None
    talk_s: float | None = None
    hold_s: float | None = None
    acw_s: float | None = None
    threshold_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return asdict(self)


@dataclass
class QueueFigures:
    """The live picture of one queue plus its statistics over the recent window."""

    queue: str
    call_center: str
    waiting: int
    offered: int
    longest_wait_s: float
    window: WindowFigures

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return asdict(self)


@dataclass
class AgentFigures:
    """One agent now: status and time in it, current work, capacity used."""

    agent: str
    call_center: str
    name: str
    status: str
    time_in_status_s: float
    capacity: int
    used: int
    used_by_channel: dict[str, int] = field(default_factory=dict)
    work: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return asdict(self)


async def window_figures(backend: RoutingBackend, start: float, end: float,
                         call_center: str | None = None) -> list[WindowFigures]:
    """Per-queue statistics for records in [start, end), optionally of one call center."""
    thresholds: dict[str, float] = {}
    result: dict[str, WindowFigures] = {}
    configs = {c.id: c for c in await backend.list_routing_configs()}
    for queue in await backend.list_queues():
        if call_center is None or queue.call_center == call_center:
            config = configs.get(queue.routing_config)
            thresholds[queue.id] = config.service_level_threshold_s if config else 0.0
            result[queue.id] = WindowFigures(queue.id, queue.call_center, threshold_s=thresholds[queue.id])
    waits: dict[str, list[float]] = {}
    handled: dict[str, list[tuple[float, float, float]]] = {}
    for record in await backend.history(start, end):
        figures = result.get(record["queue"])
        if figures is None:
            continue
        if record["kind"] == "answered":
            waits.setdefault(figures.queue, []).append(record["wait_s"])
        elif record["kind"] == "abandoned":
            figures.abandoned += 1
        elif record["kind"] == "handled":
            split = (record["talk_s"], record["hold_s"], record["acw_s"])
            handled.setdefault(figures.queue, []).append(split)
    for queue_id, figures in result.items():
        queue_waits = waits.get(queue_id, [])
        figures.answered = len(queue_waits)
        offered = figures.answered + figures.abandoned
        if queue_waits:
            figures.asa_s = sum(queue_waits) / len(queue_waits)
        if offered:
            within = sum(1 for w in queue_waits if w <= figures.threshold_s)
            figures.service_level = within / offered
            figures.abandon_rate = figures.abandoned / offered
        parts = handled.get(queue_id, [])
        figures.handled = len(parts)
        if parts:
            n = len(parts)
            figures.talk_s = sum(p[0] for p in parts) / n
            figures.hold_s = sum(p[1] for p in parts) / n
            figures.acw_s = sum(p[2] for p in parts) / n
            figures.aht_s = figures.talk_s + figures.hold_s + figures.acw_s
    return list(result.values())


async def queue_figures(backend: RoutingBackend, now: float, window_s: float,
                        call_center: str | None = None) -> list[QueueFigures]:
    """Every queue (of ``call_center``) now, with statistics over the last ``window_s`` seconds."""
    out: list[QueueFigures] = []
    for window in await window_figures(backend, now - window_s, now + 1e-9, call_center):
        snapshot = await backend.queue_snapshot(window.queue)
        longest = now - snapshot.oldest_created if snapshot.oldest_created is not None else 0.0
        out.append(QueueFigures(window.queue, window.call_center, snapshot.waiting, snapshot.offered,
                                max(longest, 0.0), window))
    return out


async def agent_figures(backend: RoutingBackend, now: float,
                        call_center: str | None = None) -> list[AgentFigures]:
    """Every agent (of ``call_center``) now; their items come in one read."""
    out: list[AgentFigures] = []
    agents = [a for a in await backend.list_agents() if call_center is None or a.call_center == call_center]
    items = await backend.get_open_items([item_id for agent in agents for item_id in agent.items])
    for agent in agents:
        work = []
        for item_id in agent.items:
            item = items.get(item_id)
            if item is None:
                continue  # closed since the agent was read
            work.append({"id": item.id, "channel": item.channel, "state": str(item.state),
                         "queue": item.queue, "size": item.size, "wrap_up": item.ended_at is not None})
        out.append(AgentFigures(agent.id, agent.call_center, agent.name, agent.status,
                                max(now - agent.status_since, 0.0), agent.capacity, agent.used,
                                dict(agent.used_by_channel), work))
    return out
