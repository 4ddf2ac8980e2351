"""Calls to queue DIDs: the caller waits in the routing engine and the agent's phone ringing is the offer.

The path (docs: README "Calls", ARCHITECTURE "the path of one inbound call"):

1. A trunk calls a DID whose target is a queue (``[[calls.dids]] queue = ...``). We answer at once
   (200 with our SDP, RFC 3264) and the caller hears music on hold while waiting: the A-leg is bridged
   to a silent waiting leg of its own and the music is played to it (``MediaAnchor.hold``).
2. The call becomes a voice work item (id = the call's id, the DID's queue, priority and skills, the
   record = the single contact of the screen pop, waited for at most ``screenpop.deadline_ms``).
3. ``work_item.offered`` for one of our items: the agent's registered phones (the SIP username of the
   agent's store user) get a B-leg INVITE each (RFC 3261 section 16.7 style forking). The first 2xx is the
   accept (the item becomes assigned) and the caller is bridged to that phone; 486/603/any failure of
   every phone is a decline; ``work_item.timed_out`` (the push timeout) cancels the ringing B-legs, and
   the engine offers the item to the next agent.
4. ``call.ended``: a caller who hangs up while queued or offered withdraws the item (``abandoned``); a
   call that was answered ends the conversation (after-call work, then closed).

Agents must be Available for voice (``PUT /api/v1/agents/me/status``) to be offered calls.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from cti_server.calls.b2bua import B2bua
from cti_server.calls.media_session import MediaError
from cti_server.calls.model import EndReason
from cti_server.calls.routing import CallRoute
from cti_server.calls.screenpop_hook import CallScreenPopHook
from cti_server.calls.session import CallSession, SipLeg
from cti_server.calls.session_timer import negotiated_as_uac
from cti_server.events import Event, EventBus, Subscription
from cti_server.routing.engine import RoutingEngine
from cti_server.routing.model import ItemState, RoutingInputError, WorkItem
from cti_server.sip.message import SipResponse

log = structlog.get_logger(__name__)

SipUserOf = Callable[[str], Awaitable[str | None]]
"""Routing agent id (the store user id) -> that user's SIP username (None: no phone)."""

CallCenterIdOf = Callable[[str], Awaitable[str]]
"""A DID's call center (name or id) -> the id routing knows the call center by."""

RING_AGAIN_AFTER_S = 5.0
"""An agent whose phones rejected the call may be offered it again when nobody else fits (the engine
never drops an item); their phones ring again only after this pause, not in a tight loop."""


@dataclass(eq=False)
class QueuedCall:
    """One caller in a queue: the session, the waiting leg playing music, the agent being rung."""

    session: CallSession
    item_id: str
    waiting_leg: str | None = None
    agent: str | None = None
    ring_task: asyncio.Task[None] | None = None
    assigned: bool = False
    rejected_by: set[str] = field(default_factory=set)


class QueueCalls:
    """Queue DIDs between the B2BUA and the routing engine (``B2bua.queue_calls``)."""

    def __init__(
        self,
        b2bua: B2bua,
        bus: EventBus,
        engine: Callable[[], RoutingEngine],
        sip_user_of: SipUserOf,
        call_center_id_of: CallCenterIdOf,
        pops: CallScreenPopHook | None = None,
        pop_wait_s: float = 0.2,
    ) -> None:
        self.b2bua = b2bua
        self.bus = bus
        self.engine = engine
        self.sip_user_of = sip_user_of
        self.call_center_id_of = call_center_id_of
        self.pops = pops
        self.pop_wait_s = pop_wait_s
        self.queued: dict[str, QueuedCall] = {}
        self._subscriptions: list[Subscription] = []
        b2bua.queue_calls = self

    async def start(self) -> None:
        """Listen to the engine's offers and timeouts and to the end of calls."""
        self._subscriptions = [
            self.bus.subscribe("work_item.offered", self.on_offered),
            self.bus.subscribe("work_item.timed_out", self.on_offer_over),
            self.bus.subscribe("work_item.moved", self.on_offer_over),
            self.bus.subscribe("call.ended", self.on_call_ended),
            self.bus.subscribe("call.held", self.on_hold_changed),
            self.bus.subscribe("call.resumed", self.on_hold_changed),
        ]

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            self.bus.unsubscribe(subscription)
        self._subscriptions = []

    # --- the caller ---------------------------------------------------------------------------------

    async def take(self, session: CallSession, route: CallRoute) -> None:
        """Answer the caller, start the music, and queue the call as a voice work item."""
        b2bua = self.b2bua
        call = session.call
        a = session.a
        if a is None or a.incoming is None or a.dialog is None or session.ending:
            return
        queue = str(route.description.get("queue", ""))
        did = b2bua.router.dids.lookup(route.called_number)
        bound = log.bind(call_id=a.call_id, call=call.call_id, queue=queue)
        queued = QueuedCall(session, call.call_id)
        self.queued[call.call_id] = queued
        a.dialog.confirm()
        ok = b2bua._a_response(a, 200, a.local_sdp)
        if a.timer is not None:
            ok.headers.set("Session-Expires", a.timer.header_value())
            if a.timer.refresher == "uac":
                ok.headers.set("Require", "timer")
        a.incoming.respond(ok)
        b2bua._arm_session_timer(a)
        await self._play_waiting_music(queued)
        pop = await self.pops.wait_for_pop(call, self.pop_wait_s) if self.pops is not None else None
        record = pop.get("contact_id") if isinstance(pop, dict) else None
        try:
            call_center = await self.call_center_id_of(call.call_center or "")
            item = WorkItem(
                id=call.call_id, channel="voice", queue=queue, call_center=call_center,
                priority=did.priority if did is not None else 0,
                skills=dict(did.skills) if did is not None else {},
                record=record if isinstance(record, str) else None,
                data={"call_id": call.call_id, "caller": call.caller.number, "called": call.called_number},
            )
            if session.ending:
                return
            stored = await self.engine().enqueue(item)
        except (RoutingInputError, LookupError, RuntimeError) as exc:
            bound.warning("queue_call_refused", reason=str(exc))
            self.queued.pop(call.call_id, None)
            await b2bua._end(session, EndReason.FAILED, status=500)
            return
        bound.info("call_queued", state=str(stored.state), record=item.record)
        if session.ending:
            # The caller hung up while the item was being queued (a shared Redis answers slower): the
            # end handler may have looked for the item before it existed. Withdrawing twice is refused
            # by the engine and ignored here.
            self.queued.pop(call.call_id, None)
            await self._finish_item(call.call_id)

    async def _play_waiting_music(self, queued: QueuedCall) -> None:
        session = queued.session
        assert session.a is not None
        media = self.b2bua.media
        waiting = f"wait-{uuid.uuid4().hex[:8]}"
        try:
            await media.open_leg(waiting, session.call.call_id)
            queued.waiting_leg = waiting
            media.bridge(session.a.leg_id, waiting)
            media.hold(session.a.leg_id)
        except (MediaError, RuntimeError, KeyError) as exc:
            # No port for the music: the caller waits in silence rather than not at all.
            log.warning("queue_music_unavailable", call=session.call.call_id, reason=str(exc))

    async def _stop_waiting_music(self, queued: QueuedCall) -> None:
        if queued.waiting_leg is not None:
            leg, queued.waiting_leg = queued.waiting_leg, None
            await self.b2bua.media.close_leg(leg)

    # --- the agent ----------------------------------------------------------------------------------

    async def on_offered(self, event: Event) -> None:
        """The engine offers one of our calls to an agent: ring the agent's phones."""
        queued = self._ours(event)
        agent = event.data.get("agent")
        if queued is None or not isinstance(agent, str) or queued.session.ending:
            return
        queued.agent = agent
        pause = RING_AGAIN_AFTER_S if agent in queued.rejected_by else 0.0
        queued.ring_task = asyncio.ensure_future(self._ring_agent(queued, agent, pause))

    async def _ring_agent(self, queued: QueuedCall, agent: str, pause: float) -> None:
        b2bua = self.b2bua
        session = queued.session
        if pause:
            await asyncio.sleep(pause)
            if queued.agent != agent or session.ending:
                return
        sip_user = await self.sip_user_of(agent)
        targets = await b2bua.router.user_targets([sip_user]) if sip_user else []
        if not targets:
            log.info("agent_phone_unreachable", call=session.call.call_id, agent=agent, sip_user=sip_user)
            await self._decline(queued, agent, "no registered phone")
            return
        log.info("agent_ringing", call=session.call.call_id, agent=agent, phones=len(targets))
        statuses = await asyncio.gather(
            *(b2bua._run_branch(session, target, None, purpose="queue") for target in targets))
        if queued.assigned or session.ending or queued.agent != agent:
            return
        if statuses and all(s >= 300 for s in statuses):
            await self._decline(queued, agent, f"phone answered {min(statuses)}")

    async def _decline(self, queued: QueuedCall, agent: str, reason: str) -> None:
        queued.agent = None
        queued.rejected_by.add(agent)
        try:
            await self.engine().decline(queued.item_id, agent, reason)
        except (LookupError, RoutingInputError, RuntimeError) as exc:
            log.info("queue_decline_ignored", call=queued.item_id, agent=agent, reason=str(exc))

    async def on_offer_over(self, event: Event) -> None:
        """The push timed out (or a supervisor moved the item): stop ringing that agent's phones."""
        queued = self._ours(event)
        if queued is None or queued.assigned:
            return
        queued.agent = None
        for leg in _ringing(queued.session):
            self.b2bua._spawn(self.b2bua._cancel_branch(leg))

    async def on_agent_answered(self, session: CallSession, leg: SipLeg, response: SipResponse) -> None:
        """A phone of the offered agent answered: that is the accept; bridge it to the caller."""
        b2bua = self.b2bua
        call = session.call
        queued = self.queued.get(call.call_id)
        if not b2bua._confirm_uac_dialog(leg, response):
            await b2bua._drop_leg(leg)
            return
        await b2bua._send_ack(leg, response)
        a = session.a
        agent = queued.agent if queued is not None else None
        if queued is None or agent is None or queued.assigned or session.ending or a is None \
                or session.b is not None:
            await self._release(leg)
            return
        try:
            await self.engine().accept(call.call_id, agent)
        except (LookupError, RoutingInputError, RuntimeError) as exc:
            log.info("queue_accept_refused", call=call.call_id, agent=agent, reason=str(exc))
            await self._release(leg)
            return
        queued.assigned = True
        session.b = leg
        for other in _ringing(session):
            if other is not leg:
                b2bua._spawn(b2bua._cancel_branch(other))
        leg.timer = negotiated_as_uac(response.headers, requested=b2bua.calls_config.session_expires)
        leg.we_refresh = leg.timer is not None and leg.timer.refresher == "uac"
        try:
            if response.body:
                b2bua.media.accept_answer(leg.leg_id, response.body)
            b2bua.media.resume(a.leg_id)
            b2bua.media.bridge(a.leg_id, leg.leg_id)
        except MediaError as exc:
            log.warning("agent_media_rejected", call=call.call_id, reason=str(exc))
        await self._stop_waiting_music(queued)
        call.legs.append(leg.model)
        call.target["agent"] = agent
        call.answered(b2bua.clock(), answered_by=leg.label)
        b2bua.stats["answered"] += 1
        log.info("queue_call_answered", call=call.call_id, agent=agent, phone=leg.label)
        b2bua._arm_session_timer(leg)

    async def _release(self, leg: SipLeg) -> None:
        await self.b2bua._bye(leg)
        await self.b2bua._drop_leg(leg)

    # --- the end ------------------------------------------------------------------------------------

    async def on_call_ended(self, event: Event) -> None:
        """Caller gone while waiting: withdraw (abandoned). Answered call over: after-call work."""
        call_id = event.data.get("call_id")
        queued = self.queued.pop(call_id, None) if isinstance(call_id, str) else None
        if queued is None:
            return
        await self._stop_waiting_music(queued)
        await self._finish_item(queued.item_id)

    async def _finish_item(self, item_id: str) -> None:
        try:
            engine = self.engine()
            item = await engine.get_item(item_id)
            if item.state is ItemState.ASSIGNED:
                await engine.end_conversation(item_id)
            elif item.state in (ItemState.QUEUED, ItemState.OFFERED):
                await engine.withdraw(item_id, "abandoned")
        except (LookupError, RoutingInputError, RuntimeError) as exc:
            log.info("queue_item_end_ignored", call=item_id, reason=str(exc))

    async def on_hold_changed(self, event: Event) -> None:
        """Hold time of an answered queue call counts apart in its handle time."""
        queued = self.queued.get(str(event.data.get("call_id")))
        if queued is None or not queued.assigned:
            return
        try:
            await self.engine().set_hold(queued.item_id, event.topic == "call.held")
        except (LookupError, RoutingInputError, RuntimeError) as exc:
            log.info("queue_hold_ignored", call=queued.item_id, reason=str(exc))

    def _ours(self, event: Event) -> QueuedCall | None:
        item: Any = event.data.get("item")
        if not isinstance(item, dict) or item.get("channel") != "voice":
            return None
        return self.queued.get(str(item.get("id")))


def _ringing(session: CallSession) -> list[SipLeg]:
    """The B-legs still ringing an agent's phones."""
    return [leg for leg in session.branches if leg.purpose == "queue" and not leg.finished]


__all__ = ["QueueCalls", "QueuedCall"]
