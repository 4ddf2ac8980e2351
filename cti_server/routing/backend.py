"""The interface both routing backends (memory, Redis) implement: state plus atomic routing steps.

Every method that changes state is one atomic step (a Python call with no await in between for the
memory backend, one Lua script for Redis), so two engine instances sharing a Redis can never offer
one item to two agents or fill an agent beyond capacity. The routing rules (who fits, in what order)
live in these steps; the engine decides when to take them and turns their results into events.

Routing rules, identical in both backends:

- An agent fits an item when their presence status allows the item's channel, ``used + size`` stays
  within ``capacity`` and within the channel's cap, and every required skill is held at the level.
- Item -> agent: the item's queue keeps its candidate agents (members whose status allows any channel
  and who have free capacity) ordered by the queue's routing model (least active: fewest items held;
  most available: most free units), ties going to the agent whose load changed longest ago. The first
  fitting agent that has not declined this item is offered it; if none, the first fitting one that did.
- Back-off (the routing configuration's ``decline_backoff_s``): the agent who last declined the item
  or let its offer time out is passed over for it until the back-off ends, as long as another agent
  who could take it is present (a queue member whose status allows the channel and who has the
  skills, whatever their load; at most ``scan_depth`` members are looked at). The item then waits for
  that agent; when the back-off ends a timer routes it again.
- Agent -> item: the agent's queues are taken by routing priority (1 first); within one priority the
  fitting item with the highest priority, then the oldest, wins; items the agent declined come last.
- At most ``scan_depth`` entries are examined per queue per step, which bounds one step's cost.

Steps that free an agent or queue an item also make the offers that follow (in the same atomic step,
so one Redis round trip), and return them for the engine to announce.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from cti_server.routing.model import Agent, PresenceStatus, Queue, RoutingConfig, Skill, WorkItem

# Timer kinds: push timeout of an offer, overflow to another queue, skill relaxation, end of wrap-up,
# end of a decliner's back-off.
TIMER_OFFER = "t"
TIMER_OVERFLOW = "o"
TIMER_RELAX = "r"
TIMER_WRAP_UP = "w"
TIMER_BACKOFF = "b"


@dataclass(frozen=True)
class Offer:
    """An item pushed to an agent; ``deadline`` is when the push times out (None: no timeout)."""

    item: WorkItem
    agent: Agent
    deadline: float | None


@dataclass(frozen=True)
class TimerOutcome:
    """What a due timer did: ``kind`` is timed_out, overflowed, skills_relaxed, wrap_up_ended or
    backoff_ended (the item waits and its last decliner may be offered it again).

    ``agent`` is the agent whose capacity changed (timed_out, wrap_up_ended), ``from_queue`` the queue
    an overflowed item left.
    """

    kind: str
    item: WorkItem
    agent: str | None = None
    from_queue: str | None = None


@dataclass(frozen=True)
class QueueSnapshot:
    """Live size of one queue: items waiting (queued, not offered) and the oldest one's created time."""

    queue: str
    waiting: int
    offered: int
    oldest_created: float | None


def item_order_score(priority: int, created: float) -> float:
    """Waiting order inside a queue: higher priority first, then older first (lower score first).

    Exact in a double for priorities 0-99 and created times up to year 2286 in ms, with 1/8 ms left
    over; the Redis backend uses the same number as the sorted-set score.
    """
    return (99 - priority) * 1e13 + created * 1000.0


class RoutingBackend(Protocol):
    """Routing state and its atomic steps; see the module docstring for the rules."""

    scan_depth: int

    # --- configuration (admin CRUD) -------------------------------------------------------------
    async def put_routing_config(self, config: RoutingConfig) -> None: ...
    async def get_routing_config(self, config_id: str) -> RoutingConfig: ...
    async def list_routing_configs(self) -> list[RoutingConfig]: ...
    async def delete_routing_config(self, config_id: str) -> None: ...
    async def put_queue(self, queue: Queue) -> None: ...
    async def get_queue(self, queue_id: str) -> Queue: ...
    async def list_queues(self) -> list[Queue]: ...
    async def delete_queue(self, queue_id: str) -> None: ...
    async def put_status(self, status: PresenceStatus) -> None: ...
    async def list_statuses(self) -> list[PresenceStatus]: ...
    async def delete_status(self, name: str) -> None: ...
    async def put_skill(self, skill: Skill) -> None: ...
    async def list_skills(self) -> list[Skill]: ...
    async def delete_skill(self, name: str) -> None: ...

    # --- agents ---------------------------------------------------------------------------------
    async def put_agent(self, agent: Agent, now: float) -> Agent:
        """Create or update an agent's profile (capacity, caps, skills, queues); keeps held work."""
        ...

    async def get_agent(self, agent_id: str) -> Agent: ...
    async def list_agents(self) -> list[Agent]: ...
    async def delete_agent(self, agent_id: str) -> None: ...
    async def set_agent_status(self, agent_id: str, status: str, now: float) -> tuple[Agent, list[Offer]]:
        """Change presence, then offer the agent what fits (one atomic step)."""
        ...

    # --- items ----------------------------------------------------------------------------------
    async def add_item(self, item: WorkItem, now: float) -> tuple[WorkItem, Offer | None]:
        """Store a new queued item and its queue timers, then offer it if an agent fits;
        RoutingConflict if the id exists."""
        ...

    async def get_item(self, item_id: str) -> WorkItem: ...
    async def get_open_items(self, item_ids: list[str]) -> dict[str, WorkItem]:
        """The open items among ``item_ids`` by id, in one read (without their payload ``data``);
        ids of items that are not open are left out."""
        ...

    async def list_items(self, queue_id: str | None = None) -> list[WorkItem]:
        """Open items (queued, offered, assigned), optionally of one queue."""
        ...

    async def movable_items(self, queue_id: str, limit: int) -> list[WorkItem]:
        """The queue's items a supervisor can move: the first ``limit`` waiting ones in the order they
        are served, then those on offer now; reads no other item (NotFound for an unknown queue)."""
        ...

    async def offer_item(self, item_id: str, now: float) -> Offer | None: ...
    async def offer_to_agent(self, agent_id: str, now: float) -> list[Offer]: ...
    async def offer_to(self, item_id: str, agent_id: str, now: float) -> Offer:
        """Supervisor push of an item to one agent (status and capacity must fit; skills ignored)."""
        ...

    async def accept(self, item_id: str, agent_id: str, now: float) -> WorkItem: ...
    async def decline(self, item_id: str, agent_id: str, now: float,
                      reason: str) -> tuple[WorkItem, list[Offer]]:
        """Back to the queue; then offered to the next agent, and the decliner offered other work."""
        ...
    async def set_hold(self, item_id: str, held: bool, now: float) -> WorkItem: ...
    async def end_conversation(self, item_id: str, now: float) -> tuple[WorkItem, list[Offer]]:
        """Conversation over: starts after-call work (item keeps its capacity) or closes at once and
        offers the freed agent new work."""
        ...

    async def close(self, item_id: str, now: float, reason: str) -> tuple[WorkItem, list[Offer]]: ...
    async def withdraw(self, item_id: str, now: float,
                       reason: str) -> tuple[WorkItem, str | None, list[Offer]]:
        """Take a queued or offered item out; returns it, the agent whose offer was cancelled and the
        new offers that agent got."""
        ...

    async def move_to_queue(self, item_id: str, queue_id: str, now: float) -> tuple[WorkItem, str | None]:
        """Put a queued or offered item into another queue; returns it and the agent it was offered to."""
        ...

    # --- timers, figures ------------------------------------------------------------------------
    async def fire_due_timers(self, now: float, limit: int) -> list[TimerOutcome]: ...
    async def next_timer_due(self) -> float | None: ...
    async def queue_snapshot(self, queue_id: str) -> QueueSnapshot: ...
    async def history(self, start: float, end: float) -> list[dict[str, Any]]:
        """Records with time in [start, end): kind answered (wait_s), abandoned (wait_s), handled."""
        ...

    async def aclose(self) -> None: ...
