"""Calls to queue DIDs: the caller waits in the routing engine; the offer rings the agent's phones.

The path (docs: README "Calls", ARCHITECTURE "the path of one inbound call"):

1. A trunk calls a DID whose target is a queue (``[[calls.dids]] queue = ...``). We answer at once
   (200 with our SDP, RFC 3264) and the caller hears music on hold while waiting: the A-leg is bridged
   to a silent waiting leg of its own and the music is played to it (``MediaAnchor.hold``).
2. The call becomes a voice work item (id = the call's id, the DID's queue, priority and skills, the
   record = the single contact of the screen pop, waited for at most ``screenpop.deadline_ms``).
3. The offer (``work_item.offered`` to agent X) rings X's registered phones at once (a B-leg INVITE each,
   RFC 3261 section 16.7 style forking) and ``call.ringing`` says so (``data.target.ringing`` = the agent
   and SIP user being rung). What the agent may then do, in the contact-center way:

   - answer the desk phone: that is the accept (``engine.accept``), the caller is bridged to that phone;
   - press Accept on the agent page (``POST /work-items/{id}/accept``): the agent takes the call; the
     item is assigned (the push timeout stops), the phone keeps ringing and its answer bridges the call
     (no second accept). If the phone then does not answer within ``calls.no_answer_timeout`` or rejects,
     the accepted item is closed (``phone_not_answered``) and the call is queued again as a new item
     ``<call id>.<n>`` (same priority, same place in the queue, ``data.call_id`` = the call): never lost;
   - reject the call on the phone (486/603/any failure of every phone), or press Decline (with a reason):
     a decline; the phones are CANCELled at once (RFC 3261 section 9.1) and the engine offers the call to
     the next agent. The offer timing out, a supervisor moving the item, the item being withdrawn: the
     same CANCEL. A 2xx that crosses our CANCEL (or comes from a phone of an agent the call is no longer
     offered to) is ACKed and BYEd, never bridged (RFC 3261 section 15), so no call is offered to or
     talked on by two agents at once.

   Everything is decided from the item's state (offered/assigned/queued/closed/withdrawn, ``offer_no``):
   the engine's events are the fast path; ``apply`` ignores a state older than one already acted on.
   (A call queued again is item ``<call id>.<n>``, ``calls.model.queue_item_id``; the socket.io forwarder
   reads the call back with ``call_id_of_item``, so the call's events reach that item's agent.)
4. ``call.ended``: a caller who hangs up while queued or offered withdraws the item (``abandoned``); a
   call that was answered ends the conversation (after-call work, then closed).

Several server processes (``[routing] backend = "redis"``): the engine's state is shared but its events
are published only on the bus of the process that made the step (a REST accept or decline, a status
change that offers the call, a push timeout fired by another node's timer loop). The process that owns
the call (its SIP dialogs and media) would not hear them, so with a shared backend it also reads the
state of each of its waiting calls' items every ``RECONCILE_S`` seconds (one ``get_item`` each) and
applies it like an event: an offer made elsewhere rings here within that time, a decline or timeout
elsewhere cancels the phones, an accept elsewhere is honoured when the phone answers (and a phone answer
here whose accept the engine refuses is bridged only if the shared item is assigned to that agent).
What remains: the reaction to a step taken on another process waits up to ``RECONCILE_S`` (a declined
phone may ring that long; the caller waits as long for the next agent), and the phones must be
registered with the process that holds the call (registrations are per process).

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
from cti_server.calls.model import EndReason, queue_item_id
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

RECONCILE_S = 1.0
"""With a shared routing backend: how often the state of each waiting call's item is read (see above)."""

_RANK = {"queued": 1, "offered": 0, "assigned": 1, "closed": 2, "withdrawn": 2}
"""Order of an item's states within one offer (``offer_no``): offered, then assigned or queued again
(declined, timed out, moved), then finished. ``(offer_no, rank)`` only grows."""


@dataclass(eq=False)
class QueuedCall:
    """One caller in a queue: the session, the waiting leg playing music, the agent being rung.

    ``agent``/``offer_no`` name the offer whose phones ring now (``round`` counts ring rounds, so a
    round that was stopped does not act on its outcome); ``accepted``: the item is assigned to ``agent``
    (on the agent page) and their phone's answer connects it; ``connected``: bridged to an agent's phone.
    ``phone_agents`` maps the SIP user a B-leg rings (its label) to the agent it was rung for.
    """

    session: CallSession
    item_id: str
    waiting_leg: str | None = None
    agent: str | None = None
    offer_no: int = -1
    round: int = 0
    ring_task: asyncio.Task[None] | None = None
    accepted: bool = False
    connecting: SipLeg | None = None
    connected: bool = False
    rejected_by: set[str] = field(default_factory=set)
    phone_agents: dict[str, str] = field(default_factory=dict)
    seen: tuple[int, int] = (-1, -1)
    item_args: dict[str, Any] = field(default_factory=dict)
    requeues: int = 0
    accept_guard: asyncio.TimerHandle | None = None


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
        shared_routing: bool = False,
    ) -> None:
        self.b2bua = b2bua
        self.bus = bus
        self.engine = engine
        self.sip_user_of = sip_user_of
        self.call_center_id_of = call_center_id_of
        self.pops = pops
        self.pop_wait_s = pop_wait_s
        self.shared_routing = shared_routing
        self.queued: dict[str, QueuedCall] = {}
        self.by_item: dict[str, QueuedCall] = {}
        self._subscriptions: list[Subscription] = []
        self._reconciler: asyncio.Task[None] | None = None
        b2bua.queue_calls = self

    async def start(self) -> None:
        """Listen to the engine's steps on our items and to the end of calls."""
        self._subscriptions = [
            self.bus.subscribe(f"work_item.{topic}", self.on_item_event)
            for topic in ("offered", "accepted", "declined", "timed_out", "moved", "withdrawn", "closed")
        ] + [
            self.bus.subscribe("call.ended", self.on_call_ended),
            self.bus.subscribe("call.held", self.on_hold_changed),
            self.bus.subscribe("call.resumed", self.on_hold_changed),
        ]
        if self.shared_routing:
            self._reconciler = asyncio.ensure_future(self._reconcile_forever())

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            self.bus.unsubscribe(subscription)
        self._subscriptions = []
        if self._reconciler is not None:
            self._reconciler.cancel()
            await asyncio.gather(self._reconciler, return_exceptions=True)
            self._reconciler = None

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
        self.by_item[call.call_id] = queued
        a.dialog.confirm()
        ok = b2bua._a_response(a, 200, a.local_sdp)
        if a.timer is not None:
            ok.headers.set("Session-Expires", a.timer.header_value())
            if a.timer.refresher == "uac":
                ok.headers.set("Require", "timer")
        a.incoming.respond(ok)
        b2bua._arm_session_timer(a)
        await self._play_waiting_music(queued, did.waiting if did is not None else "music")
        pop = await self.pops.wait_for_pop(call, self.pop_wait_s) if self.pops is not None else None
        record = pop.get("contact_id") if isinstance(pop, dict) else None
        try:
            call_center = await self.call_center_id_of(call.call_center or "")
            queued.item_args = dict(
                channel="voice", queue=queue, call_center=call_center,
                priority=did.priority if did is not None else 0,
                skills=dict(did.skills) if did is not None else {},
                record=record if isinstance(record, str) else None,
                data={"call_id": call.call_id, "caller": call.caller.number, "called": call.called_number},
            )
            item = WorkItem(id=queue_item_id(call.call_id, 0), **queued.item_args)
            if session.ending:
                return
            stored = await self.engine().enqueue(item)
        except (RoutingInputError, LookupError, RuntimeError) as exc:
            bound.warning("queue_call_refused", reason=str(exc))
            self._forget(queued)
            await b2bua._end(session, EndReason.FAILED, status=500)
            return
        queued.item_args["created"] = stored.created  # a requeued call keeps its place
        bound.info("call_queued", state=str(stored.state), record=item.record)
        if session.ending:
            # The caller hung up while the item was being queued (a shared Redis answers slower): the
            # end handler may have looked for the item before it existed. Withdrawing twice is refused
            # by the engine and ignored here.
            self._forget(queued)
            await self._finish_item(queued.item_id)

    async def _play_waiting_music(self, queued: QueuedCall, sound: str) -> None:
        session = queued.session
        assert session.a is not None
        media = self.b2bua.media
        waiting = f"wait-{uuid.uuid4().hex[:8]}"
        try:
            await media.open_leg(waiting, session.call.call_id)
            queued.waiting_leg = waiting
            media.bridge(session.a.leg_id, waiting)
            media.hold(session.a.leg_id, sound)
        except (MediaError, RuntimeError, KeyError) as exc:
            # No port for the music: the caller waits in silence rather than not at all.
            log.warning("queue_music_unavailable", call=session.call.call_id, reason=str(exc))

    async def _stop_waiting_music(self, queued: QueuedCall) -> None:
        if queued.waiting_leg is not None:
            leg, queued.waiting_leg = queued.waiting_leg, None
            await self.b2bua.media.close_leg(leg)

    # --- the item's state ---------------------------------------------------------------------------

    async def on_item_event(self, event: Event) -> None:
        """A routing step on one of our items (offered, accepted, declined, timed out, moved, withdrawn,
        closed): act on the item's state it carries."""
        item: Any = event.data.get("item")
        if not isinstance(item, dict) or item.get("channel") != "voice":
            return
        queued = self.by_item.get(str(item.get("id")))
        if queued is None:
            return
        agent = event.data.get("agent")
        if event.topic in ("work_item.declined", "work_item.timed_out") and isinstance(agent, str):
            queued.rejected_by.add(agent)  # offered again (nobody else fits): their phone rings after a pause
        self.apply(queued, item, str(event.data.get("reason") or event.topic.removeprefix("work_item.")))

    def apply(self, queued: QueuedCall, item: dict[str, Any], why: str = "") -> None:
        """Bring the phones in line with the item's state (``WorkItem.summary()`` form); synchronous, so
        the steps of one item are applied in the order they are handed over."""
        state, agent = str(item.get("state")), item.get("agent")
        offer_no = item.get("offer_no")
        if item.get("id") != queued.item_id or state not in _RANK or not isinstance(offer_no, int):
            return
        key = (offer_no, _RANK[state])
        if key < queued.seen or queued.connected or queued.session.ending:
            return
        queued.seen = key
        if state == "offered" and isinstance(agent, str):
            if queued.agent != agent or queued.offer_no != offer_no:
                self._stop_ringing(queued, why)
                self._start_round(queued, agent, offer_no, accepted=False)
        elif state == "assigned" and isinstance(agent, str):
            if queued.agent == agent and queued.offer_no == offer_no:
                if not queued.accepted:
                    # Accepted on the agent page while the phone rings: the agent takes the call; the
                    # phone keeps ringing and its answer connects (no second accept).
                    queued.accepted = True
                    self._guard_accepted(queued)
                    log.info("queue_call_accepted_ringing", call=queued.session.call.call_id, agent=agent)
            elif queued.connecting is None:
                # Offered and accepted where we did not see it (another server process): ring them now.
                self._stop_ringing(queued, why)
                self._start_round(queued, agent, offer_no, accepted=True)
        elif state == "queued":
            self._stop_ringing(queued, why)
        elif state in ("closed", "withdrawn"):
            self._stop_ringing(queued, why)
            # Not the caller's hang-up (that ends the session first): a supervisor or integrator took
            # the call out of the queue; nobody will answer it, so release the caller.
            log.info("queue_call_withdrawn", call=queued.session.call.call_id, state=state, reason=why)
            self._forget(queued)
            self.b2bua._spawn(self._end_withdrawn(queued))

    async def _end_withdrawn(self, queued: QueuedCall) -> None:
        await self._stop_waiting_music(queued)
        await self.b2bua._end(queued.session, EndReason.UNAVAILABLE)

    async def _reconcile_forever(self) -> None:
        while True:
            await asyncio.sleep(RECONCILE_S)
            await self.reconcile()

    async def reconcile(self) -> None:
        """Shared routing backend: read each waiting call's item and apply its state (every RECONCILE_S)."""
        for queued in list(self.queued.values()):
            if queued.connected or queued.session.ending or "created" not in queued.item_args:
                continue
            try:
                item = await self.engine().get_item(queued.item_id)
            except (LookupError, RoutingInputError, RuntimeError) as exc:
                log.info("queue_reconcile_failed", call=queued.item_id, reason=str(exc))
                continue
            self.apply(queued, item.summary(), "reconciled")

    # --- the agent ----------------------------------------------------------------------------------

    def _start_round(self, queued: QueuedCall, agent: str, offer_no: int, *, accepted: bool) -> None:
        queued.round += 1
        queued.agent, queued.offer_no, queued.accepted = agent, offer_no, accepted
        # An agent whose phones rejected the call may be offered it again when nobody else fits (the
        # engine never drops an item): their phones ring again only after a pause, not in a tight loop.
        again = agent in queued.rejected_by and not accepted
        pause = self.b2bua.calls_config.ring_again_after if again else 0.0
        queued.ring_task = self.b2bua._spawn(self._ring_agent(queued, queued.round, agent, pause))
        if accepted:
            self._guard_accepted(queued)

    def _stop_ringing(self, queued: QueuedCall, why: str) -> None:
        """The offer is over (declined, timed out, moved, withdrawn, offered elsewhere): CANCEL the
        phones still ringing, and let the round that rang them do nothing more."""
        queued.round += 1
        queued.agent, queued.accepted = None, False
        self._unguard(queued)
        session = queued.session
        call = session.call
        if call.target.pop("ringing", None) is not None and call.state == "ringing":
            log.info("agent_ringing_stopped", call=call.call_id, reason=why)
        for leg in _ringing(session):
            if not leg.cancel_wanted:
                log.info("agent_phone_cancelled", call=call.call_id, phone=leg.label, reason=why)
                self.b2bua._spawn(self.b2bua._cancel_branch(leg))

    def _guard_accepted(self, queued: QueuedCall) -> None:
        """An accepted item whose phone does not answer in ``calls.no_answer_timeout`` is queued again."""
        self._unguard(queued)
        loop = asyncio.get_running_loop()
        queued.accept_guard = loop.call_later(self.b2bua.calls_config.no_answer_timeout,
                                              self._accepted_unanswered, queued, queued.round)

    def _unguard(self, queued: QueuedCall) -> None:
        if queued.accept_guard is not None:
            queued.accept_guard.cancel()
            queued.accept_guard = None

    def _accepted_unanswered(self, queued: QueuedCall, round_: int) -> None:
        queued.accept_guard = None
        if queued.round != round_ or queued.connected or queued.connecting is not None \
                or queued.session.ending:
            return
        log.info("accepted_phone_no_answer", call=queued.session.call.call_id, agent=queued.agent)
        for leg in _ringing(queued.session):
            self.b2bua._spawn(self.b2bua._cancel_branch(leg))  # the round ends with 487: queued again
        if not _ringing(queued.session) and queued.agent is not None:
            self.b2bua._spawn(self._phone_failed(queued, round_, queued.agent, "no answer"))

    async def _ring_agent(self, queued: QueuedCall, round_: int, agent: str, pause: float) -> None:
        b2bua = self.b2bua
        session = queued.session
        if pause:
            await asyncio.sleep(pause)
        if queued.round != round_ or session.ending:
            return
        sip_user = await self.sip_user_of(agent)
        targets = await b2bua.router.user_targets([sip_user]) if sip_user else []
        if queued.round != round_ or session.ending:
            return
        if not targets:
            log.info("agent_phone_unreachable", call=session.call.call_id, agent=agent, sip_user=sip_user)
            await self._phone_failed(queued, round_, agent, "no registered phone")
            return
        assert sip_user is not None
        queued.phone_agents[sip_user] = agent
        log.info("agent_ringing", call=session.call.call_id, agent=agent, phones=len(targets))
        statuses = await asyncio.gather(
            *(b2bua._run_branch(session, target, None, purpose="queue") for target in targets))
        if statuses and all(s >= 300 for s in statuses):
            await self._phone_failed(queued, round_, agent, f"phone answered {min(statuses)}")

    async def _phone_failed(self, queued: QueuedCall, round_: int, agent: str, reason: str) -> None:
        """The agent's phones did not take the call: a decline of the offer, or, once the agent accepted
        it on the page, the accepted item closed and the call queued again."""
        if queued.round != round_ or queued.connected or queued.connecting is not None \
                or queued.session.ending:
            return
        accepted = queued.accepted
        self._stop_ringing(queued, reason)
        queued.rejected_by.add(agent)
        if accepted:
            await self._requeue(queued, agent, reason)
            return
        try:
            await self.engine().decline(queued.item_id, agent, reason)
        except (LookupError, RoutingInputError, RuntimeError) as exc:
            log.info("queue_decline_ignored", call=queued.item_id, agent=agent, reason=str(exc))

    async def _requeue(self, queued: QueuedCall, agent: str, reason: str) -> None:
        call_id = queued.session.call.call_id
        old = queued.item_id
        queued.requeues += 1
        queued.item_id = queue_item_id(call_id, queued.requeues)
        queued.seen = (-1, -1)
        self.by_item.pop(old, None)
        self.by_item[queued.item_id] = queued
        log.info("queue_call_requeued", call=call_id, agent=agent, reason=reason, item=queued.item_id)
        engine = self.engine()
        try:
            await engine.close(old, "phone_not_answered")
        except (LookupError, RoutingInputError, RuntimeError) as exc:
            log.info("queue_close_ignored", call=old, reason=str(exc))
        if queued.session.ending:
            self._forget(queued)
            return
        try:
            await engine.enqueue(WorkItem(id=queued.item_id, **queued.item_args))
        except (LookupError, RoutingInputError, RuntimeError) as exc:
            log.warning("queue_call_refused", call=call_id, reason=str(exc))
            self._forget(queued)
            await self.b2bua._end(queued.session, EndReason.FAILED)
            return
        if queued.session.ending:
            self._forget(queued)
            await self._finish_item(queued.item_id)

    def on_agent_ringing(self, session: CallSession, leg: SipLeg, response: SipResponse) -> None:
        """180/183 from an agent's phone: ``call.ringing`` with ``target.ringing`` = agent and SIP user
        (each agent rung is news, not only the first); a phone of an offer that is over is cancelled."""
        queued = self.queued.get(session.call.call_id)
        agent = queued.phone_agents.get(leg.label) if queued is not None else None
        if queued is None or agent is None or agent != queued.agent:
            self.b2bua._spawn(self.b2bua._cancel_branch(leg))
            return
        call = session.call
        ringing = {"agent": agent, "user": leg.label}
        if call.target.get("ringing") == ringing:
            return
        call.target["ringing"] = ringing
        if call.state == "offered":
            call.ringing(self.b2bua.clock())
        elif call.state == "ringing":
            now = self.b2bua.clock()
            self.bus.publish(Event("call.ringing", call.to_dict(), call_center=call.call_center,
                                   timestamp=now))

    async def on_agent_answered(self, session: CallSession, leg: SipLeg, response: SipResponse) -> None:
        """A phone answered: bridge it if the call is offered to (or accepted by) its agent; that answer
        is the accept. Any other 2xx (a phone we CANCELled, an agent the offer left) gets ACK and BYE."""
        b2bua = self.b2bua
        call = session.call
        queued = self.queued.get(call.call_id)
        if not b2bua._confirm_uac_dialog(leg, response):
            await b2bua._drop_leg(leg)
            return
        await b2bua._send_ack(leg, response)
        agent = queued.phone_agents.get(leg.label) if queued is not None else None
        if queued is None or agent is None or not self._may_connect(queued, leg, agent):
            log.info("agent_late_answer_released", call=call.call_id, phone=leg.label)
            await self._release(leg)
            return
        queued.connecting = leg
        accepted = queued.accepted
        if not accepted:
            accepted = await self._accept(queued, agent)
        queued.connecting = None
        if not accepted or not self._may_connect(queued, leg, agent):
            await self._release(leg)
            return
        self._connect(queued, leg, agent, response)
        await self._stop_waiting_music(queued)
        b2bua._arm_session_timer(leg)

    def _may_connect(self, queued: QueuedCall, leg: SipLeg, agent: str) -> bool:
        session = queued.session
        return (agent == queued.agent and not leg.cancel_wanted and not queued.connected
                and queued.connecting is None and not session.ending and session.a is not None
                and session.b is None)

    async def _accept(self, queued: QueuedCall, agent: str) -> bool:
        """The phone's answer is the accept; an item already assigned to that agent (accepted on the
        page, maybe on another server process) is taken as it is."""
        engine = self.engine()
        item_id = queued.item_id
        try:
            await engine.accept(item_id, agent)
            return True
        except (LookupError, RoutingInputError, RuntimeError) as exc:
            refusal = str(exc)
        try:
            item = await engine.get_item(item_id)
        except (LookupError, RoutingInputError, RuntimeError):
            item = None
        if item is not None and item.state is ItemState.ASSIGNED and item.agent == agent \
                and item.ended_at is None and queued.item_id == item_id:
            return True
        log.info("queue_accept_refused", call=queued.session.call.call_id, agent=agent, reason=refusal)
        return False

    def _connect(self, queued: QueuedCall, leg: SipLeg, agent: str, response: SipResponse) -> None:
        b2bua = self.b2bua
        session = queued.session
        call = session.call
        a = session.a
        assert a is not None
        queued.connected, queued.accepted = True, True
        self._unguard(queued)
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
        call.legs.append(leg.model)
        call.target.pop("ringing", None)
        call.target["agent"] = agent
        call.answered(b2bua.clock(), answered_by=leg.label)
        b2bua.stats["answered"] += 1
        log.info("queue_call_answered", call=call.call_id, agent=agent, phone=leg.label, item=queued.item_id)

    async def _release(self, leg: SipLeg) -> None:
        await self.b2bua._bye(leg)
        await self.b2bua._drop_leg(leg)

    # --- the end ------------------------------------------------------------------------------------

    async def on_call_ended(self, event: Event) -> None:
        """Caller gone while waiting: withdraw (abandoned). Answered call over: after-call work."""
        call_id = event.data.get("call_id")
        queued = self.queued.get(call_id) if isinstance(call_id, str) else None
        if queued is None:
            return
        self._forget(queued)
        self._unguard(queued)
        await self._stop_waiting_music(queued)
        await self._finish_item(queued.item_id)

    def _forget(self, queued: QueuedCall) -> None:
        call_id = queued.session.call.call_id
        if self.queued.get(call_id) is queued:
            del self.queued[call_id]
        if self.by_item.get(queued.item_id) is queued:
            del self.by_item[queued.item_id]

    async def _finish_item(self, item_id: str) -> None:
        try:
            engine = self.engine()
            item = await engine.get_item(item_id)
            if item.state is ItemState.ASSIGNED and item.ended_at is None:
                await engine.end_conversation(item_id)
            elif item.state in (ItemState.QUEUED, ItemState.OFFERED):
                await engine.withdraw(item_id, "abandoned")
        except (LookupError, RoutingInputError, RuntimeError) as exc:
            log.info("queue_item_end_ignored", call=item_id, reason=str(exc))

    async def on_hold_changed(self, event: Event) -> None:
        """Hold time of an answered queue call counts apart in its handle time."""
        queued = self.queued.get(str(event.data.get("call_id")))
        if queued is None or not queued.connected:
            return
        try:
            await self.engine().set_hold(queued.item_id, event.topic == "call.held")
        except (LookupError, RoutingInputError, RuntimeError) as exc:
            log.info("queue_hold_ignored", call=queued.item_id, reason=str(exc))


def _ringing(session: CallSession) -> list[SipLeg]:
    """The B-legs still ringing an agent's phones."""
    return [leg for leg in session.branches if leg.purpose == "queue" and not leg.finished]


__all__ = ["QueueCalls", "QueuedCall"]
