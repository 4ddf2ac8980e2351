"""In-memory routing backend for the embedded default (one process).

Each method runs to completion without awaiting, so it is atomic on the event loop. Sorted lists play
the part of the Redis sorted sets used by :mod:`cti_server.routing.redis_backend`; the two implement
the same rules (see :mod:`cti_server.routing.backend`) and run the same test suite.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from itertools import islice
from typing import Any, TypeVar

from sortedcontainers import SortedList

from cti_server.routing.backend import (
    TIMER_BACKOFF,
    TIMER_OFFER,
    TIMER_OVERFLOW,
    TIMER_RELAX,
    TIMER_WRAP_UP,
    Offer,
    QueueSnapshot,
    TimerOutcome,
    item_order_score,
)
from cti_server.routing.model import (
    DEFAULT_STATUSES,
    Agent,
    ItemState,
    NotFound,
    OfferRecord,
    PresenceStatus,
    Queue,
    RoutingConfig,
    RoutingConflict,
    RoutingInputError,
    RoutingModelName,
    Skill,
    WorkItem,
)

_SEQ_SCALE = float(2**32)


class MemoryRoutingBackend:
    """Routing state in this process; lost when it stops (use Redis to keep it)."""

    def __init__(self, scan_depth: int = 1000, history_retention_s: float = 86400.0,
                 finished_items_kept: int = 10_000) -> None:
        self.scan_depth = scan_depth
        self.history_retention_s = history_retention_s
        self.finished_items_kept = finished_items_kept
        self._configs: dict[str, RoutingConfig] = {}
        self._queues: dict[str, Queue] = {}
        self._statuses: dict[str, PresenceStatus] = {s.name: s for s in DEFAULT_STATUSES}
        self._skills: dict[str, Skill] = {}
        self._agents: dict[str, Agent] = {}
        self._items: dict[str, WorkItem] = {}
        self._finished: OrderedDict[str, WorkItem] = OrderedDict()
        self._waiting: dict[str, SortedList] = {}
        self._candidates: dict[str, SortedList] = {}
        self._candidate_key: dict[tuple[str, str], tuple[float, str]] = {}
        # Per queue: members whose status allows some channel, busy or not (insertion-ordered set).
        self._present: dict[str, dict[str, None]] = {}
        self._timers: SortedList = SortedList()
        self._timer_due: dict[str, float] = {}
        # History in time order: parallel lists, trimmed from the front by moving _history_start.
        self._history_times: list[float] = []
        self._history_records: list[dict[str, Any]] = []
        self._history_start = 0
        self._seq = 0

    # --- configuration ---------------------------------------------------------------------------
    async def put_routing_config(self, config: RoutingConfig) -> None:
        self._configs[config.id] = config
        for queue in self._queues.values():
            if queue.routing_config == config.id:
                self._rebuild_candidates(queue.id)

    async def get_routing_config(self, config_id: str) -> RoutingConfig:
        return _get(self._configs, config_id, "routing configuration")

    async def list_routing_configs(self) -> list[RoutingConfig]:
        return list(self._configs.values())

    async def delete_routing_config(self, config_id: str) -> None:
        _get(self._configs, config_id, "routing configuration")
        users = [q.id for q in self._queues.values() if q.routing_config == config_id]
        if users:
            raise RoutingConflict(f"routing configuration {config_id} is used by queue {users[0]}")
        del self._configs[config_id]

    async def put_queue(self, queue: Queue) -> None:
        if queue.routing_config not in self._configs:
            raise RoutingInputError("routing_config", f"no routing configuration {queue.routing_config!r}")
        self._queues[queue.id] = queue
        self._waiting.setdefault(queue.id, SortedList())
        self._rebuild_candidates(queue.id)

    async def get_queue(self, queue_id: str) -> Queue:
        return _get(self._queues, queue_id, "queue")

    async def list_queues(self) -> list[Queue]:
        return list(self._queues.values())

    async def delete_queue(self, queue_id: str) -> None:
        _get(self._queues, queue_id, "queue")
        if self._waiting.get(queue_id) or any(i.queue == queue_id for i in self._items.values()):
            raise RoutingConflict(f"queue {queue_id} still holds work items")
        del self._queues[queue_id]
        self._waiting.pop(queue_id, None)
        self._present.pop(queue_id, None)
        for agent_id, _key in self._candidates.pop(queue_id, SortedList()):
            self._candidate_key.pop((agent_id, queue_id), None)

    async def put_status(self, status: PresenceStatus) -> None:
        self._statuses[status.name] = status
        for agent in self._agents.values():
            if agent.status == status.name:
                self._refresh_agent(agent)

    async def list_statuses(self) -> list[PresenceStatus]:
        return list(self._statuses.values())

    async def delete_status(self, name: str) -> None:
        _get(self._statuses, name, "presence status")
        if any(a.status == name for a in self._agents.values()):
            raise RoutingConflict(f"agents are in presence status {name}")
        del self._statuses[name]

    async def put_skill(self, skill: Skill) -> None:
        self._skills[skill.name] = skill

    async def list_skills(self) -> list[Skill]:
        return list(self._skills.values())

    async def delete_skill(self, name: str) -> None:
        _get(self._skills, name, "skill")
        del self._skills[name]

    # --- agents ----------------------------------------------------------------------------------
    async def put_agent(self, agent: Agent, now: float) -> Agent:
        old = self._agents.get(agent.id)
        if old is not None:
            agent.status, agent.status_since = old.status, old.status_since
            agent.used, agent.used_by_channel, agent.items = old.used, old.used_by_channel, old.items
            for queue_id in old.queues:
                self._drop_candidate(old.id, queue_id)
        else:
            if agent.status not in self._statuses:
                raise RoutingInputError("status", f"no presence status {agent.status!r}")
            agent.status_since = now
            agent.used, agent.used_by_channel, agent.items = 0, {}, []
        self._agents[agent.id] = agent
        self._refresh_agent(agent)
        return agent

    async def get_agent(self, agent_id: str) -> Agent:
        return _get(self._agents, agent_id, "agent")

    async def list_agents(self) -> list[Agent]:
        return list(self._agents.values())

    async def delete_agent(self, agent_id: str) -> None:
        agent = _get(self._agents, agent_id, "agent")
        if agent.items:
            raise RoutingConflict(f"agent {agent_id} still holds work items")
        for queue_id in agent.queues:
            self._drop_candidate(agent_id, queue_id)
        del self._agents[agent_id]

    async def set_agent_status(self, agent_id: str, status: str, now: float) -> tuple[Agent, list[Offer]]:
        agent = _get(self._agents, agent_id, "agent")
        if status not in self._statuses:
            raise RoutingInputError("status", f"no presence status {status!r}")
        if agent.status == status:
            return agent, self._fill_agent(agent_id, now)
        agent.status, agent.status_since = status, now
        offers = self._fill_agent(agent_id, now)
        if not offers:  # an offer re-ranks the agent already
            self._refresh_agent(agent)
        return agent, offers

    # --- items -----------------------------------------------------------------------------------
    async def add_item(self, item: WorkItem, now: float) -> tuple[WorkItem, Offer | None]:
        if item.id in self._items or item.id in self._finished:
            raise RoutingConflict(f"work item {item.id} exists")
        queue = self._queues.get(item.queue)
        if queue is None:
            raise RoutingInputError("queue", f"no queue {item.queue!r}")
        item.state, item.queued_at = ItemState.QUEUED, now
        self._items[item.id] = item
        self._enter_queue(item, queue, now)
        return item, self._route_item(item.id, now)

    async def get_item(self, item_id: str) -> WorkItem:
        item = self._items.get(item_id) or self._finished.get(item_id)
        if item is None:
            raise NotFound(f"no work item {item_id}")
        return item

    async def get_open_items(self, item_ids: list[str]) -> dict[str, WorkItem]:
        return {i: self._items[i] for i in item_ids if i in self._items}

    async def list_items(self, queue_id: str | None = None) -> list[WorkItem]:
        return [i for i in self._items.values() if queue_id is None or i.queue == queue_id]

    async def movable_items(self, queue_id: str, limit: int) -> list[WorkItem]:
        _get(self._queues, queue_id, "queue")
        waiting = self._waiting.get(queue_id) or SortedList()
        first = [self._items[item_id] for _score, item_id in waiting.islice(0, limit)]
        offered = [i for i in self._items.values() if i.queue == queue_id and i.state is ItemState.OFFERED]
        return first + offered

    async def offer_item(self, item_id: str, now: float) -> Offer | None:
        return self._route_item(item_id, now)

    def _route_item(self, item_id: str, now: float) -> Offer | None:
        item = self._items.get(item_id)
        if item is None or item.state is not ItemState.QUEUED:
            return None
        candidates = self._candidates.get(item.queue)
        if not candidates:
            return None
        fallback: Agent | None = None
        held_back: Agent | None = None
        for _key, agent_id in candidates.islice(0, self.scan_depth):
            agent = self._agents[agent_id]
            if not self._fits(agent, item, check_skills=True):
                continue
            if agent_id not in item.declined_by:
                return self._offer(item, agent, now)
            if _backing_off(item, agent_id, now):
                held_back = agent
            elif fallback is None:
                fallback = agent
        if fallback is not None:
            return self._offer(item, fallback, now)
        if held_back is not None and not self._other_present(item, held_back.id):
            return self._offer(item, held_back, now)
        return None

    async def offer_to_agent(self, agent_id: str, now: float) -> list[Offer]:
        return self._fill_agent(agent_id, now)

    def _fill_agent(self, agent_id: str, now: float) -> list[Offer]:
        agent = self._agents.get(agent_id)
        offers: list[Offer] = []
        while agent is not None and agent.used < agent.capacity:
            item = self._best_item_for(agent, now)
            if item is None:
                break
            offers.append(self._offer(item, agent, now))
        return offers

    async def offer_to(self, item_id: str, agent_id: str, now: float) -> Offer:
        item = self._open_item(item_id)
        agent = _get(self._agents, agent_id, "agent")
        if item.state is ItemState.ASSIGNED:
            raise RoutingConflict(f"work item {item_id} is already assigned")
        if item.agent == agent_id:
            raise RoutingConflict(f"work item {item_id} is already offered to {agent_id}")
        if not self._fits(agent, item, check_skills=False):
            raise RoutingConflict(f"agent {agent_id} ({agent.status}) has no room for work item {item_id}")
        if item.state is ItemState.OFFERED:
            self._end_offer(item, now, "moved", "supervisor")
        else:
            self._waiting[item.queue].discard((self._score(item), item.id))
        return self._offer(item, agent, now, from_queue=False)

    async def accept(self, item_id: str, agent_id: str, now: float) -> WorkItem:
        item = self._open_item(item_id)
        if item.state is not ItemState.OFFERED or item.agent != agent_id:
            raise RoutingConflict(f"work item {item_id} is not offered to {agent_id}")
        self._cancel_timer(_offer_timer(item))
        item.state, item.accepted_at = ItemState.ASSIGNED, now
        record = item.offers[-1]
        record.outcome, record.ended_at = "accepted", now
        self._record(now, {"kind": "answered", "item": item.id, "queue": item.queue, "channel": item.channel,
                           "call_center": item.call_center, "agent": agent_id, "wait_s": now - item.created})
        return item

    async def decline(self, item_id: str, agent_id: str, now: float,
                      reason: str) -> tuple[WorkItem, list[Offer]]:
        item = self._open_item(item_id)
        if item.state is not ItemState.OFFERED or item.agent != agent_id:
            raise RoutingConflict(f"work item {item_id} is not offered to {agent_id}")
        self._requeue(item, now, "declined", reason)
        again = self._route_item(item_id, now)
        return item, ([again] if again is not None else []) + self._fill_agent(agent_id, now)

    async def set_hold(self, item_id: str, held: bool, now: float) -> WorkItem:
        item = self._open_item(item_id)
        if item.state is not ItemState.ASSIGNED or item.ended_at is not None:
            raise RoutingConflict(f"work item {item_id} is not in conversation")
        if held and item.hold_since is None:
            item.hold_since = now
        elif not held and item.hold_since is not None:
            item.hold_s += now - item.hold_since
            item.hold_since = None
        return item

    async def end_conversation(self, item_id: str, now: float) -> tuple[WorkItem, list[Offer]]:
        item = self._open_item(item_id)
        if item.state is not ItemState.ASSIGNED or item.ended_at is not None:
            raise RoutingConflict(f"work item {item_id} is not in conversation")
        self._stop_hold(item, now)
        item.ended_at = now
        wrap_up = self._config_of(item.queue).after_call_work_s
        if wrap_up > 0:
            self._add_timer(f"{TIMER_WRAP_UP}|{item.id}", now + wrap_up)
            return item, []
        return self._close_and_refill(item, now, "completed")

    async def close(self, item_id: str, now: float, reason: str) -> tuple[WorkItem, list[Offer]]:
        item = self._open_item(item_id)
        if item.state is not ItemState.ASSIGNED:
            raise RoutingConflict(f"work item {item_id} is {item.state}; withdraw it instead")
        return self._close_and_refill(item, now, reason)

    def _close_and_refill(self, item: WorkItem, now: float, reason: str) -> tuple[WorkItem, list[Offer]]:
        self._close(item, now, reason)
        assert item.agent is not None
        return item, self._fill_agent(item.agent, now)

    async def withdraw(self, item_id: str, now: float,
                       reason: str) -> tuple[WorkItem, str | None, list[Offer]]:
        item = self._open_item(item_id)
        agent_id = item.agent
        if item.state is ItemState.ASSIGNED:
            raise RoutingConflict(f"work item {item_id} is assigned; close it instead")
        if item.state is ItemState.OFFERED:
            self._end_offer(item, now, "withdrawn", reason)
        else:
            self._waiting[item.queue].discard((self._score(item), item.id))
        self._drop_queue_timers(item)
        item.state, item.closed_at, item.close_reason = ItemState.WITHDRAWN, now, reason
        self._finish(item)
        self._record(now, {"kind": "abandoned", "item": item.id, "queue": item.queue, "channel": item.channel,
                           "call_center": item.call_center, "wait_s": now - item.created})
        return item, agent_id, self._fill_agent(agent_id, now) if agent_id is not None else []

    async def move_to_queue(self, item_id: str, queue_id: str, now: float) -> tuple[WorkItem, str | None]:
        item = self._open_item(item_id)
        queue = self._queues.get(queue_id)
        if queue is None:
            raise RoutingInputError("queue", f"no queue {queue_id!r}")
        if item.state is ItemState.ASSIGNED:
            raise RoutingConflict(f"work item {item_id} is already assigned")
        agent_id = item.agent
        if item.state is ItemState.OFFERED:
            self._end_offer(item, now, "moved", f"to queue {queue_id}")
        else:
            self._waiting[item.queue].discard((self._score(item), item.id))
        self._drop_queue_timers(item)
        item.state, item.queue, item.queued_at = ItemState.QUEUED, queue_id, now
        self._enter_queue(item, queue, now)
        return item, agent_id

    # --- timers and figures ----------------------------------------------------------------------
    async def fire_due_timers(self, now: float, limit: int) -> list[TimerOutcome]:
        outcomes: list[TimerOutcome] = []
        while self._timers and len(outcomes) < limit:
            due, member = self._timers[0]
            if due > now:
                break
            self._timers.pop(0)
            del self._timer_due[member]
            outcome = self._fire(member, now)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    async def next_timer_due(self) -> float | None:
        return float(self._timers[0][0]) if self._timers else None

    async def queue_snapshot(self, queue_id: str) -> QueueSnapshot:
        _get(self._queues, queue_id, "queue")
        waiting = self._waiting.get(queue_id) or SortedList()
        queued = [self._items[i] for _s, i in waiting]
        offered = sum(1 for i in self._items.values() if i.queue == queue_id and i.state is ItemState.OFFERED)
        oldest = min((i.created for i in queued), default=None)
        return QueueSnapshot(queue_id, len(queued), offered, oldest)

    async def history(self, start: float, end: float) -> list[dict[str, Any]]:
        times, first = self._history_times, self._history_start
        lo = bisect.bisect_left(times, start, first)
        hi = bisect.bisect_left(times, end, lo)
        return self._history_records[lo:hi]

    async def aclose(self) -> None:
        return None

    # --- rules -----------------------------------------------------------------------------------
    def _fits(self, agent: Agent, item: WorkItem, check_skills: bool) -> bool:
        status = self._statuses.get(agent.status)
        if status is None or not status.allows(item.channel):
            return False
        if agent.used + item.size > agent.capacity:
            return False
        cap = agent.channel_caps.get(item.channel)
        if cap is not None and agent.used_by_channel.get(item.channel, 0) + item.size > cap:
            return False
        if check_skills:
            for skill, level in item.skills.items():
                if agent.skills.get(skill, -1) < level:
                    return False
        return True

    def _best_item_for(self, agent: Agent, now: float) -> WorkItem | None:
        status = self._statuses.get(agent.status)
        if status is None or not status.channels:
            return None
        tiers: dict[int, list[str]] = {}
        for queue_id in agent.queues:
            queue = self._queues.get(queue_id)
            if queue is not None:
                tiers.setdefault(self._configs[queue.routing_config].routing_priority, []).append(queue_id)
        fallback: WorkItem | None = None
        for priority in sorted(tiers):
            best: tuple[float, str] | None = None
            for queue_id in tiers[priority]:
                for entry in self._waiting[queue_id].islice(0, self.scan_depth):
                    item = self._items[entry[1]]
                    if not self._fits(agent, item, check_skills=True):
                        continue
                    if agent.id in item.declined_by:
                        if fallback is None and not (_backing_off(item, agent.id, now)
                                                     and self._other_present(item, agent.id)):
                            fallback = item
                        continue
                    if best is None or entry < best:
                        best = entry
                    break
            if best is not None:
                return self._items[best[1]]
        return fallback

    def _other_present(self, item: WorkItem, agent_id: str) -> bool:
        """Whether a member of the item's queue other than ``agent_id`` could take it, busy or not."""
        for other in islice(self._present.get(item.queue, ()), self.scan_depth):
            if other != agent_id and self._could_take(self._agents[other], item):
                return True
        return False

    def _could_take(self, agent: Agent, item: WorkItem) -> bool:
        """The item fits the agent's status, capacity, channel cap and skills once they have room."""
        status = self._statuses.get(agent.status)
        if status is None or not status.allows(item.channel) or item.size > agent.capacity:
            return False
        cap = agent.channel_caps.get(item.channel)
        if cap is not None and item.size > cap:
            return False
        return all(agent.skills.get(skill, -1) >= level for skill, level in item.skills.items())

    def _offer(self, item: WorkItem, agent: Agent, now: float, from_queue: bool = True) -> Offer:
        if from_queue:
            self._waiting[item.queue].discard((self._score(item), item.id))
        item.state, item.agent = ItemState.OFFERED, agent.id
        item.offer_no += 1
        item.offers.append(OfferRecord(agent=agent.id, offered_at=now))
        agent.items.append(item.id)
        agent.used += item.size
        agent.used_by_channel[item.channel] = agent.used_by_channel.get(item.channel, 0) + item.size
        self._refresh_agent(agent)
        timeout = self._config_of(item.queue).push_timeout_s
        deadline = now + timeout if timeout > 0 else None
        if deadline is not None:
            self._add_timer(_offer_timer(item), deadline)
        return Offer(item, agent, deadline)

    def _end_offer(self, item: WorkItem, now: float, outcome: str, reason: str) -> None:
        """Close the current offer's record and give the agent their capacity back."""
        self._cancel_timer(_offer_timer(item))
        record = item.offers[-1]
        record.outcome, record.reason, record.ended_at = outcome, reason, now
        assert item.agent is not None
        self._release(item, item.agent)
        item.agent = None

    def _requeue(self, item: WorkItem, now: float, outcome: str, reason: str) -> None:
        assert item.agent is not None
        if item.agent not in item.declined_by:
            item.declined_by.append(item.agent)
        backoff = self._config_of(item.queue).decline_backoff_s
        if backoff > 0:
            item.backoff_agent, item.backoff_until = item.agent, now + backoff
            self._add_timer(f"{TIMER_BACKOFF}|{item.id}", now + backoff)
        self._end_offer(item, now, outcome, reason)
        item.state = ItemState.QUEUED
        self._waiting[item.queue].add((self._score(item), item.id))

    def _release(self, item: WorkItem, agent_id: str) -> None:
        agent = self._agents.get(agent_id)
        if agent is None or item.id not in agent.items:
            return
        agent.items.remove(item.id)
        agent.used -= item.size
        agent.used_by_channel[item.channel] -= item.size
        if not agent.used_by_channel[item.channel]:
            del agent.used_by_channel[item.channel]
        self._refresh_agent(agent)

    def _close(self, item: WorkItem, now: float, reason: str) -> WorkItem:
        self._cancel_timer(f"{TIMER_WRAP_UP}|{item.id}")
        self._stop_hold(item, now)
        if item.ended_at is None:
            item.ended_at = now
        item.state, item.closed_at, item.close_reason = ItemState.CLOSED, now, reason
        assert item.agent is not None and item.accepted_at is not None
        self._release(item, item.agent)
        self._finish(item)
        self._record(now, {"kind": "handled", "item": item.id, "queue": item.queue, "channel": item.channel,
                           "call_center": item.call_center, "agent": item.agent,
                           "talk_s": item.ended_at - item.accepted_at - item.hold_s, "hold_s": item.hold_s,
                           "acw_s": now - item.ended_at})
        return item

    def _fire(self, member: str, now: float) -> TimerOutcome | None:
        kind, item_id, *rest = member.split("|")
        item = self._items.get(item_id)
        if item is None:
            return None
        if kind == TIMER_OFFER:
            agent_id = item.agent
            if item.state is not ItemState.OFFERED or agent_id != rest[0] or str(item.offer_no) != rest[1]:
                return None
            self._requeue(item, now, "timeout", "push timeout")
            return TimerOutcome("timed_out", item, agent=agent_id)
        if kind == TIMER_WRAP_UP:
            if item.state is not ItemState.ASSIGNED or item.ended_at is None:
                return None
            agent_id = item.agent
            self._close(item, now, "wrap-up ended")
            return TimerOutcome("wrap_up_ended", item, agent=agent_id)
        if kind == TIMER_BACKOFF:
            return TimerOutcome("backoff_ended", item) if item.state is ItemState.QUEUED else None
        queue = self._queues.get(rest[0])
        if item.queue != rest[0] or queue is None or item.state is ItemState.ASSIGNED:
            return None
        if kind == TIMER_RELAX:
            rule = queue.skill_relaxation.get(rest[1])
            if rule is None or item.skills.get(rest[1], 0) <= rule.level:
                return None
            if rule.level == 0:
                del item.skills[rest[1]]
            else:
                item.skills[rest[1]] = rule.level
            if item.state is ItemState.QUEUED:
                return TimerOutcome("skills_relaxed", item)
            return None
        if kind == TIMER_OVERFLOW and queue.overflow_queue is not None:
            target = self._queues.get(queue.overflow_queue)
            if target is None:
                return None
            if item.state is ItemState.OFFERED:
                # The offer is decided within its push timeout; look again after it.
                self._add_timer(member, now + max(self._config_of(item.queue).push_timeout_s, 1.0))
                return None
            self._waiting[item.queue].discard((self._score(item), item.id))
            self._drop_queue_timers(item)
            from_queue = item.queue
            item.queue, item.queued_at = target.id, now
            self._enter_queue(item, target, now)
            return TimerOutcome("overflowed", item, from_queue=from_queue)
        return None

    # --- bookkeeping -----------------------------------------------------------------------------
    def _enter_queue(self, item: WorkItem, queue: Queue, now: float) -> None:
        self._waiting[queue.id].add((self._score(item), item.id))
        if queue.overflow_queue is not None and queue.overflow_after_s is not None:
            self._add_timer(f"{TIMER_OVERFLOW}|{item.id}|{queue.id}", now + queue.overflow_after_s)
        for skill, rule in queue.skill_relaxation.items():
            if item.skills.get(skill, 0) > rule.level:
                self._add_timer(f"{TIMER_RELAX}|{item.id}|{queue.id}|{skill}", now + rule.after_s)

    def _drop_queue_timers(self, item: WorkItem) -> None:
        queue = self._queues.get(item.queue)
        self._cancel_timer(f"{TIMER_OVERFLOW}|{item.id}|{item.queue}")
        if queue is not None:
            for skill in queue.skill_relaxation:
                self._cancel_timer(f"{TIMER_RELAX}|{item.id}|{item.queue}|{skill}")

    def _score(self, item: WorkItem) -> float:
        return item_order_score(item.priority, item.created)

    def _open_item(self, item_id: str) -> WorkItem:
        item = self._items.get(item_id)
        if item is None:
            if item_id in self._finished:
                raise RoutingConflict(f"work item {item_id} is {self._finished[item_id].state}")
            raise NotFound(f"no work item {item_id}")
        return item

    def _config_of(self, queue_id: str) -> RoutingConfig:
        return self._configs[self._queues[queue_id].routing_config]

    def _stop_hold(self, item: WorkItem, now: float) -> None:
        if item.hold_since is not None:
            item.hold_s += now - item.hold_since
            item.hold_since = None

    def _finish(self, item: WorkItem) -> None:
        del self._items[item.id]
        self._finished[item.id] = item
        while len(self._finished) > self.finished_items_kept:
            self._finished.popitem(last=False)

    def _record(self, now: float, record: dict[str, Any]) -> None:
        record["time"] = now
        times = self._history_times
        if times and now < times[-1]:
            now = times[-1]  # keep the list sorted if the wall clock steps back
        times.append(now)
        self._history_records.append(record)
        horizon = now - self.history_retention_s
        if times[self._history_start] < horizon:
            self._history_start = bisect.bisect_left(times, horizon, self._history_start)
            if self._history_start > len(times) // 2:
                del times[:self._history_start]
                del self._history_records[:self._history_start]
                self._history_start = 0

    def _add_timer(self, member: str, due: float) -> None:
        self._cancel_timer(member)
        self._timers.add((due, member))
        self._timer_due[member] = due

    def _cancel_timer(self, member: str) -> None:
        due = self._timer_due.pop(member, None)
        if due is not None:
            self._timers.discard((due, member))

    def _refresh_agent(self, agent: Agent) -> None:
        """Re-rank the agent in each of their queues' candidate lists after a change of load or status."""
        self._seq += 1
        status = self._statuses.get(agent.status)
        present = status is not None and bool(status.channels)
        available = present and agent.used < agent.capacity
        for queue_id in agent.queues:
            self._drop_candidate(agent.id, queue_id)
            queue = self._queues.get(queue_id)
            if present and queue is not None:
                self._present.setdefault(queue_id, {})[agent.id] = None
            if available and queue is not None:
                model = self._configs[queue.routing_config].model
                if model is RoutingModelName.LEAST_ACTIVE:
                    primary = len(agent.items)
                else:
                    primary = agent.used - agent.capacity
                key = (primary * _SEQ_SCALE + self._seq, agent.id)
                self._candidates.setdefault(queue_id, SortedList()).add(key)
                self._candidate_key[(agent.id, queue_id)] = key

    def _drop_candidate(self, agent_id: str, queue_id: str) -> None:
        key = self._candidate_key.pop((agent_id, queue_id), None)
        if key is not None:
            self._candidates[queue_id].discard(key)
        present = self._present.get(queue_id)
        if present is not None:
            present.pop(agent_id, None)

    def _rebuild_candidates(self, queue_id: str) -> None:
        for agent in self._agents.values():
            if queue_id in agent.queues:
                self._refresh_agent(agent)


def _backing_off(item: WorkItem, agent_id: str, now: float) -> bool:
    return item.backoff_agent == agent_id and item.backoff_until is not None and now < item.backoff_until


def _offer_timer(item: WorkItem) -> str:
    return f"{TIMER_OFFER}|{item.id}|{item.agent}|{item.offer_no}"


_V = TypeVar("_V")


def _get(table: dict[str, _V], key: str, what: str) -> _V:
    try:
        return table[key]
    except KeyError:
        raise NotFound(f"no {what} {key}") from None
