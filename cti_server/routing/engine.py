"""The routing engine: takes work in, decides when to route, and reports every change as an event.

Sans-IO in time: the engine reads ``now`` from the :class:`~cti_server.routing.clock.Clock` it is given
and never sleeps. Timers (push timeouts, overflow, skill relaxation, after-call work) are stored in the
backend; whoever drives the engine calls :meth:`RoutingEngine.tick` when :meth:`next_deadline` comes -
the asyncio driver in the server (:mod:`cti_server.routing.service`), the simulation on its simulated
clock, and tests by moving a :class:`~cti_server.routing.clock.SimulatedClock`.

Entry point for the call layer (voice)::

    item = await engine.enqueue(WorkItem(id=call_id, channel="voice", queue="support",
                                         call_center=cc_id, priority=5, skills={"spanish": 3},
                                         record=crm_record_id))
    # subscribe to "work_item.accepted" on the bus: that is when to ring the agent (data["agent"]);
    # "work_item.withdrawn" after engine.withdraw(call_id, "abandoned") when the caller hangs up.
    await engine.set_hold(call_id, True) / (call_id, False)   # hold time feeds average handle time
    await engine.end_conversation(call_id)                     # BYE: after-call work, then closed

Event topics (``Event.data`` holds ``item``, the item's summary without offer history or payload -
``GET /api/v1/work-items/{id}`` has the rest - and ``agent`` where one is concerned):
``work_item.queued|offered|accepted|declined|timed_out|moved|overflowed|skills_relaxed|held|resumed|
wrap_up|closed|withdrawn|backoff_ended``, ``agent.updated``, ``agent.status_changed``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from cti_server.events import Event
from cti_server.routing.backend import Offer, RoutingBackend
from cti_server.routing.clock import Clock
from cti_server.routing.model import (
    Agent,
    ItemState,
    RoutingInputError,
    WorkItem,
    check_name,
)

log = structlog.get_logger(__name__)

Publish = Callable[[Event], None]

_TIMER_TOPICS = {
    "timed_out": "work_item.timed_out",
    "overflowed": "work_item.overflowed",
    "skills_relaxed": "work_item.skills_relaxed",
    "wrap_up_ended": "work_item.closed",
    "backoff_ended": "work_item.backoff_ended",
}


class RoutingEngine:
    """Omni-channel routing over one backend; every public coroutine is one routing step."""

    def __init__(self, backend: RoutingBackend, clock: Clock, publish: Publish | None = None,
                 timer_batch: int = 1000) -> None:
        self.backend = backend
        self.clock = clock
        self._publish = publish
        self.timer_batch = timer_batch
        self.offers_made = 0

    # --- work items ------------------------------------------------------------------------------
    async def enqueue(self, item: WorkItem) -> WorkItem:
        """Queue a new work item (any channel) and offer it at once if an agent fits."""
        item.validate()
        now = self.clock.now()
        if not item.created:
            item.created = now
        stored, offer = await self.backend.add_item(item, now)
        self._emit("work_item.queued", stored)
        if offer is not None:
            self._emit_offer(offer)
            return offer.item
        return stored

    async def get_item(self, item_id: str) -> WorkItem:
        """The item in whatever state it is (closed and withdrawn ones are kept for a while)."""
        return await self.backend.get_item(item_id)

    async def accept(self, item_id: str, agent_id: str) -> WorkItem:
        """The agent takes the item offered to them (for voice: ring their phone now)."""
        item = await self.backend.accept(item_id, agent_id, self.clock.now())
        self._emit("work_item.accepted", item, agent_id)
        return item

    async def decline(self, item_id: str, agent_id: str, reason: str = "") -> WorkItem:
        """The agent refuses the offer; the item goes to the next agent that fits (returned as it is then)."""
        item, offers = await self.backend.decline(item_id, agent_id, self.clock.now(), reason)
        self._emit("work_item.declined", item, agent_id, reason=reason)
        for offer in offers:
            self._emit_offer(offer)
            if offer.item.id == item_id:
                item = offer.item
        return item

    async def withdraw(self, item_id: str, reason: str = "withdrawn") -> WorkItem:
        """Take back a queued or offered item (the caller hung up, the chat ended before an answer)."""
        item, agent_id, offers = await self.backend.withdraw(item_id, self.clock.now(), reason)
        self._emit("work_item.withdrawn", item, agent_id, reason=reason)
        for offer in offers:
            self._emit_offer(offer)
        return item

    async def set_hold(self, item_id: str, held: bool) -> WorkItem:
        """Hold or resume the conversation; hold time is reported apart in handle time."""
        item = await self.backend.set_hold(item_id, held, self.clock.now())
        self._emit("work_item.held" if held else "work_item.resumed", item, item.agent)
        return item

    async def end_conversation(self, item_id: str) -> WorkItem:
        """The conversation is over: after-call work starts (capacity still held) or the item closes."""
        item, offers = await self.backend.end_conversation(item_id, self.clock.now())
        if item.state is ItemState.CLOSED:
            self._emit("work_item.closed", item, item.agent)
        else:
            self._emit("work_item.wrap_up", item, item.agent)
        for offer in offers:
            self._emit_offer(offer)
        return item

    async def close(self, item_id: str, reason: str = "completed") -> WorkItem:
        """Finish an assigned item now (ends after-call work early) and free the agent's capacity."""
        item, offers = await self.backend.close(item_id, self.clock.now(), reason)
        self._emit("work_item.closed", item, item.agent, reason=reason)
        for offer in offers:
            self._emit_offer(offer)
        return item

    async def move_item(self, item_id: str, queue: str | None = None, agent: str | None = None) -> WorkItem:
        """Supervisor: move a queued or offered item to another queue, or push it to one agent."""
        if (queue is None) == (agent is None):
            raise RoutingInputError("queue", "give exactly one of queue or agent")
        now = self.clock.now()
        if queue is not None:
            check_name("queue", queue)
            item, previous = await self.backend.move_to_queue(item_id, queue, now)
            self._emit("work_item.moved", item, previous, to_queue=queue)
            if previous is not None:
                await self._route_agent(previous)
            await self._route_item(item_id)
            return await self.backend.get_item(item_id)
        assert agent is not None
        check_name("agent", agent)
        before = (await self.backend.get_item(item_id)).agent
        offer = await self.backend.offer_to(item_id, agent, now)
        self._emit("work_item.moved", offer.item, before, to_agent=agent)
        self._emit_offer(offer)
        if before is not None:
            await self._route_agent(before)
        return offer.item

    # --- agents ----------------------------------------------------------------------------------
    async def register_agent(self, agent: Agent) -> Agent:
        """Create or update an agent's routing profile (capacity, channel caps, skills, queues)."""
        agent.validate()
        stored = await self.backend.put_agent(agent, self.clock.now())
        self._emit_agent("agent.updated", stored)
        await self._route_agent(stored.id)
        return stored

    async def set_agent_status(self, agent_id: str, status: str) -> Agent:
        """Change presence (the agent, or a supervisor for them); offers work if the status allows."""
        agent, offers = await self.backend.set_agent_status(agent_id, status, self.clock.now())
        self._emit_agent("agent.status_changed", agent)
        for offer in offers:
            self._emit_offer(offer)
        return agent

    # --- timers ----------------------------------------------------------------------------------
    async def next_deadline(self) -> float | None:
        """When :meth:`tick` next has work to do (None: no timer pending)."""
        return await self.backend.next_timer_due()

    async def tick(self) -> int:
        """Fire every timer due by now and route what they freed; returns how many fired."""
        fired = 0
        while True:
            outcomes = await self.backend.fire_due_timers(self.clock.now(), self.timer_batch)
            # Every outcome is announced before any routing that follows: one batch may free an agent
            # twice (two offers timing out together), and an offer must not be published while the
            # event that freed its capacity is still to come.
            for outcome in outcomes:
                extra: dict[str, Any] = {}
                if outcome.from_queue is not None:
                    extra["from_queue"] = outcome.from_queue
                self._emit(_TIMER_TOPICS[outcome.kind], outcome.item, outcome.agent, **extra)
            for outcome in outcomes:
                if outcome.kind != "wrap_up_ended":
                    await self._route_item(outcome.item.id)
                if outcome.agent is not None:
                    await self._route_agent(outcome.agent)
            fired += len(outcomes)
            if len(outcomes) < self.timer_batch:
                return fired

    # --- routing ---------------------------------------------------------------------------------
    async def route_agent(self, agent_id: str) -> list[Offer]:
        """Offer the agent as much waiting work as fits them now (the routing step behind status changes)."""
        return await self._route_agent(agent_id)

    async def _route_item(self, item_id: str) -> None:
        offer = await self.backend.offer_item(item_id, self.clock.now())
        if offer is not None:
            self._emit_offer(offer)

    async def _route_agent(self, agent_id: str) -> list[Offer]:
        offers = await self.backend.offer_to_agent(agent_id, self.clock.now())
        for offer in offers:
            self._emit_offer(offer)
        return offers

    # --- events ----------------------------------------------------------------------------------
    def _emit_offer(self, offer: Offer) -> None:
        self.offers_made += 1
        self._emit("work_item.offered", offer.item, offer.agent.id, deadline=offer.deadline)

    def _emit(self, topic: str, item: WorkItem, agent: str | None = None, **extra: Any) -> None:
        if self._publish is None:
            return
        data: dict[str, Any] = {"item": item.summary(), "agent": agent, **extra}
        self._publish(Event(topic, data, call_center=item.call_center))

    def _emit_agent(self, topic: str, agent: Agent) -> None:
        if self._publish is None:
            return
        data = {"agent": agent.id, "profile": agent.to_dict()}
        self._publish(Event(topic, data, call_center=agent.call_center))
