"""The back-to-back user agent: call control between trunks and phones (RFC 3261, RFC 7092 section 3.1).

Each call has an A-leg (the dialog the caller started; we are its UAS) and a B-leg (a dialog we start
toward the callee; we are its UAC). Everything that crosses between them is ours to decide:

- new INVITE: ``CallRouter`` says who may call and whom to ring; B-legs are forked in parallel (first 2xx
  wins, the others get CANCEL, RFC 3261 section 9.1) or tried one trunk after the other (failover on 503,
  408 or ``calls.trunk_timeout`` without any response; 401/407 answered with the trunk's credentials);
- 180/183 from a B-leg become 180/183 on the A-leg (183 with our SDP: early media flows through the relay);
- CANCEL on the A-leg cancels every B-leg; BYE on either side ends the other; no answer in
  ``calls.no_answer_timeout`` gives 480;
- media is anchored: every leg has its own endpoint and its own offer/answer (RFC 3264), so a re-INVITE
  or UPDATE (hold with sendonly/inactive, resume, session refresh) is answered locally and the held party
  hears music on hold;
- session timers (RFC 4028) run per leg: we refresh where we are the refresher, and end the call when a
  peer that should refresh does not (``session_timer_expired``); a refresh re-INVITE that crosses the
  peer's re-INVITE (glare) answers theirs 491 and is sent again after RFC 3261 section 14.1's delay;
- a 2xx to an INVITE that gets no ACK within 64*T1 (the stack resends it, RFC 3261 13.3.1.4) ends the
  call with BYE on both legs (``ack_timeout``); an answered leg without RTP for ``media.rtp_timeout``
  seconds (not on hold) ends it too (``media_timeout``, ``media_watchdog``);
- a trunk's ``profile`` (``trunk_profiles``) rewrites the headers of what we send it and what it sends;
- REFER and Replaces (RFC 3515, RFC 3891) are ``transfer.TransferControl``'s.

This module holds the asyncio side: it reacts to the SIP stack's handlers and sends through it; the
decisions it uses (routing, session timers, dialogs, the call model) are sans-IO modules.
"""

from __future__ import annotations

import asyncio
import functools
import time
import weakref
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import structlog

from cti_server.calls.admission import CallAdmission
from cti_server.calls.failures import best_failure, end_reason_for
from cti_server.calls.media_session import Direction, MediaAnchor, MediaError
from cti_server.calls.media_watchdog import MediaWatchdog
from cti_server.calls.model import Call, EndReason, Leg, LegRole
from cti_server.calls.routing import CallRoute, CallRouter, Forking, Rejection, Target
from cti_server.calls.session import CallSession, Destination, SipLeg
from cti_server.calls.session_timer import (
    SessionIntervalTooSmall,
    glare_retry_delay,
    negotiate_as_uas,
    negotiated_as_uac,
    request_headers,
)
from cti_server.calls.transfer import TransferControl
from cti_server.calls.trunk_auth import ChallengeError, authorization_for, pick_challenge
from cti_server.calls.trunk_profiles import get_profile
from cti_server.config import Config
from cti_server.events import EventBus
from cti_server.shutdown import settle
from cti_server.sip.address import NameAddr
from cti_server.sip.dialog import Dialog, DialogError, DialogState
from cti_server.sip.errors import SipParseError
from cti_server.sip.headers import Headers
from cti_server.sip.message import (
    SipRequest,
    SipResponse,
    make_request,
    make_response,
    new_branch,
    new_call_id,
)
from cti_server.sip.message import new_tag as make_tag
from cti_server.sip.stack import IncomingRequest, SipComponent
from cti_server.sip.uri import parse_uri

log = structlog.get_logger(__name__)

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, REFER, NOTIFY, UPDATE, INFO"
SUPPORTED = "timer, replaces"
SUPPORTED_OPTIONS = frozenset({"timer", "replaces"})
SDP = "application/sdp"
HANDLED_METHODS = ("INVITE", "ACK", "BYE", "REFER", "NOTIFY", "UPDATE", "INFO")
SHUTDOWN_GRACE = 1.0


class QueueCallControl(Protocol):
    """Calls to queue DIDs (``queue_calls.QueueCalls``): take the answered caller, and the agent's answer."""

    async def take(self, session: CallSession, route: CallRoute) -> None: ...

    def on_agent_ringing(self, session: CallSession, leg: SipLeg, response: SipResponse) -> None: ...

    async def on_agent_answered(self, session: CallSession, leg: SipLeg, response: SipResponse) -> None: ...


class B2bua:
    """Call control on a ``SipComponent``: install() registers the handlers."""

    def __init__(
        self,
        config: Config,
        bus: EventBus,
        sip: SipComponent,
        router: CallRouter,
        media: MediaAnchor,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.calls_config = config.calls
        self.bus = bus
        self.sip = sip
        self.router = router
        self.media = media
        self.clock = clock
        self.sessions: dict[str, CallSession] = {}
        self.legs: dict[tuple[str, str], SipLeg] = {}
        self.stats: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._requests: set[asyncio.Future[SipResponse]] = set()  # BYEs sent without a Task (_bye)
        self.transfers = TransferControl(self)
        self.queue_calls: QueueCallControl | None = None
        self.watchdog: MediaWatchdog[SipLeg] = MediaWatchdog(config.media.rtp_timeout)
        self._watch_handle: asyncio.TimerHandle | None = None
        cc = config.calls
        self.admission = CallAdmission(cc.max_calls_per_second, cc.max_calls_in_setup)
        self._retry_after = [("Retry-After", str(cc.overload_retry_after))]
        # Calls ringing their callee (the caller has no final answer yet): the admission's in-flight count.
        self.in_setup: set[CallSession] = set()

    # --- wiring ---------------------------------------------------------------------------------------

    def install(self) -> None:
        """Register the handlers for the methods call control answers."""
        self.sip.register_handler("INVITE", self.on_invite)
        self.sip.register_handler("ACK", self.on_ack)
        self.sip.register_handler("BYE", self.on_bye)
        self.sip.register_handler("REFER", self.transfers.on_refer)
        self.sip.register_handler("NOTIFY", self.on_notify)
        self.sip.register_handler("UPDATE", self.on_update)
        self.sip.register_handler("INFO", self.on_info)

    async def shutdown(self) -> None:
        """End every call (BYE / CANCEL / 503) and wait for the tasks."""
        if self._watch_handle is not None:
            self._watch_handle.cancel()
            self._watch_handle = None
        for session in list(self.sessions.values()):
            await self._end(session, EndReason.SHUTDOWN, status=503)
        if self._tasks or self._requests:
            # Give the BYEs and CANCELs a moment to be answered, then stop waiting.
            await asyncio.wait([*self._tasks, *self._requests], timeout=SHUTDOWN_GRACE)
        await settle(self._tasks, SHUTDOWN_GRACE, what="call tasks", wait_first=False)

    @property
    def active_calls(self) -> int:
        return len(self.sessions)

    # --- new calls ------------------------------------------------------------------------------------

    async def on_invite(self, incoming: IncomingRequest) -> None:
        """INVITE: a new call, a re-INVITE in a dialog, or an INVITE with Replaces (RFC 3891)."""
        request = incoming.request
        if request.to_tag is not None:
            await self._on_offer_in_dialog(incoming)
            return
        self.stats["invites"] += 1
        required = request.headers.get_all("Require")
        unsupported = [o for o in required if o.strip().lower() not in SUPPORTED_OPTIONS]
        if unsupported:
            # RFC 3261 section 8.2.2.3: an extension we do not implement (e.g. 100rel) must be refused.
            self._reply(incoming, 420, "Bad Extension", [("Unsupported", ", ".join(unsupported))])
            return
        if len(self.sessions) >= self.calls_config.max_calls:
            self._reply(incoming, 503, "Service Unavailable", [("Retry-After", "5")])
            return
        if self.admission.max_rate or self.admission.max_in_setup:
            shed = self.admission.admit(time.monotonic(), self._calls_in_setup())
            if shed is not None:
                self.stats[f"shed_{shed}"] += 1
                self._reply(incoming, 503, "Service Unavailable", self._retry_after)
                return
        try:
            decision = await self.router.route(request, incoming.source)
        except SipParseError as exc:
            self._reply(incoming, 400, exc.reason)
            return
        if isinstance(decision, Rejection):
            self.stats[f"rejected_{decision.status}"] += 1
            self._reply(incoming, decision.status, decision.reason, decision.headers)
            return
        if "Replaces" in request.headers:
            await self.transfers.on_replacing_invite(incoming)
            return
        await self._start_call(incoming, decision)

    async def _start_call(self, incoming: IncomingRequest, route: CallRoute) -> None:
        request = incoming.request
        cc = self.calls_config
        trunk = self.router.trunks.by_name(str(route.description.get("trunk", "")))
        profile = get_profile(trunk.profile) if trunk is not None else None
        if profile is not None:
            profile.incoming(request)
        try:
            a_timer = negotiate_as_uas(request.headers, min_se=cc.min_se, preferred=cc.session_expires)
        except SessionIntervalTooSmall as exc:
            self._reply(incoming, 422, "Session Interval Too Small", [("Min-SE", str(exc.min_se))])
            return
        now = self.clock()
        call = Call(caller=route.caller, called_number=route.called_number, call_center=route.call_center,
                    direction=route.direction, publish=self.bus.publish, now=now,
                    target=dict(route.description))
        session = CallSession(call)
        destination = self._a_destination(incoming, route)
        a = SipLeg(session, LegRole.A, Leg(LegRole.A, peer=_peer_text(destination)), destination, request,
                   make_tag(), label=route.caller_user or str(route.description.get("trunk", "")),
                   incoming=incoming)
        try:
            a.dialog = Dialog.as_uas(request, a.local_tag)
        except (DialogError, SipParseError) as exc:
            call.ended(now, EndReason.FAILED, 400)
            self._reply(incoming, 400, exc.reason)
            return
        a.timer = a_timer
        a.we_refresh = a_timer is not None and a_timer.refresher == "uas"
        a.profile = profile
        a.peer_allows_update = _allows(request, "UPDATE")
        session.a = a
        call.legs.append(a.model)
        self.sessions[call.call_id] = session
        self._index(a)
        log.info("call_offered", call_id=a.call_id, call=call.call_id, direction=str(route.direction),
                 caller=route.caller.number, called=route.called_number,
                 targets=[t.label for t in route.targets])
        incoming.on_cancel(lambda _incoming: self._on_a_cancel(session))
        try:
            await self.media.open_leg(a.leg_id, call.call_id)
            if request.body:
                a.local_sdp = self.media.answer(a.leg_id, request.body).sdp
            else:
                a.pending_offer = True
                a.local_sdp = self.media.offer(a.leg_id)
        except MediaError as exc:
            log.info("call_media_rejected", call_id=a.call_id, call=call.call_id, reason=str(exc))
            await self._fail_a(session, 488, "Not Acceptable Here")
            return
        except RuntimeError as exc:  # ports exhausted and the like
            log.warning("call_media_unavailable", call_id=a.call_id, call=call.call_id, reason=str(exc))
            await self._fail_a(session, 503, "Service Unavailable")
            return
        if incoming.answered:  # CANCEL arrived while we opened the media
            return
        self._watch_media_soon()
        if route.forking is Forking.QUEUE and self.queue_calls is not None:
            self._spawn(self.queue_calls.take(session, route))
            return
        loop = asyncio.get_running_loop()
        session.no_answer = loop.call_later(cc.no_answer_timeout, self._on_no_answer, session)
        self.in_setup.add(session)
        if route.forking is Forking.PARALLEL:
            self._spawn(self._ring_parallel(session, route.targets))
        else:
            self._spawn(self._ring_failover(session, route.targets))

    def _calls_in_setup(self) -> int:
        in_setup = self.in_setup
        if self.admission.max_in_setup and len(in_setup) >= self.admission.max_in_setup:
            # At the limit: make sure every call counted is really still waiting for its answer.
            in_setup.difference_update([s for s in in_setup if s.ending or s.a is None or s.a.incoming is None
                                        or s.a.incoming.answered])
        return len(in_setup)

    def _a_destination(self, incoming: IncomingRequest, route: CallRoute) -> Destination:
        """Where requests to the caller go: where its INVITE came from (phones behind NAT, trunks)."""
        return (incoming.transport, incoming.source[0], incoming.source[1])

    async def _ring_parallel(self, session: CallSession, targets: list[Target]) -> None:
        if len(targets) == 1:  # one phone: no gather, whose task per branch costs a loop turn or two
            statuses = [await self._run_branch(session, targets[0], None)]
        else:
            statuses = await asyncio.gather(*(self._run_branch(session, t, None) for t in targets))
        if session.b is None and not session.ending:
            await self._fail_a(session, best_failure(list(statuses)))

    async def _ring_failover(self, session: CallSession, targets: list[Target]) -> None:
        statuses: list[int] = []
        for target in targets:
            if session.ending or session.b is not None:
                return
            responded = asyncio.Event()
            task = asyncio.ensure_future(self._run_branch(session, target, responded))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            waiter = asyncio.ensure_future(responded.wait())
            done, _pending = await asyncio.wait({task, waiter}, timeout=self.calls_config.trunk_timeout,
                                                return_when=asyncio.FIRST_COMPLETED)
            if not done:
                waiter.cancel()
                log.info("trunk_timeout", call=session.call.call_id, trunk=target.label)
                statuses.append(408)
                self._abandon(session, target.label)
                continue
            waiter.cancel()
            status = await task
            statuses.append(status)
            if status < 300 or session.ending:
                return
            if status not in (408, 500, 502, 503, 504):
                break
            log.info("trunk_failover", call=session.call.call_id, trunk=target.label, status=status)
        if session.b is None and not session.ending:
            await self._fail_a(session, best_failure(statuses))

    def _abandon(self, session: CallSession, label: str) -> None:
        """A trunk that said nothing in time: CANCEL it once it says anything; a late 2xx gets BYE."""
        for leg in session.branches:
            if leg.label == label and not leg.finished:
                leg.cancel_wanted = True

    # --- B-legs ---------------------------------------------------------------------------------------

    async def _run_branch(self, session: CallSession, target: Target, responded: asyncio.Event | None,
                          purpose: str = "call", transferor: SipLeg | None = None) -> int:
        """Send one B-leg INVITE (answering a trunk's digest challenge once); return the final status."""
        call = session.call
        leg = SipLeg(session, LegRole.B, Leg(LegRole.B, peer=_peer_text(target.destination)),
                     target.destination, _placeholder_request(), make_tag(), label=target.label)
        leg.purpose = purpose
        try:
            await self.media.open_leg(leg.leg_id, call.call_id)
            offer = self.media.offer(leg.leg_id)
        except (MediaError, RuntimeError) as exc:
            log.warning("branch_media_unavailable", call=call.call_id, reason=str(exc))
            return 503
        leg.invite = self._b_invite(session, leg, target, offer)
        if target.trunk is not None:
            leg.profile = get_profile(target.trunk.profile)
            leg.profile.outgoing(leg.invite)
        session.branches.append(leg)
        self._index(leg)

        def on_provisional(response: SipResponse) -> None:
            if responded is not None:
                responded.set()
            self._on_b_provisional(session, leg, response)

        # The INVITE's client transaction keeps this callback for timer M (32 s) after the answer: by a
        # weak reference the leg, and with it the whole call, is not kept that long after it ended.
        leg_ref = weakref.ref(leg)

        def on_extra_2xx(response: SipResponse) -> None:
            # A retransmitted 2xx means our ACK was lost; another fork's 2xx gets ACK and BYE.
            branch = leg_ref()
            if branch is None:  # the call ended and the leg is gone; our BYE went out then
                return
            if branch.dialog is not None and response.to_tag == branch.dialog.remote_tag:
                self._spawn(self._send_ack(branch, response))
            else:
                self._spawn(self._ack_and_bye_stray(branch, response))

        auth_tried = False
        while True:
            response = await self.sip.send_request(leg.invite, leg.destination, on_provisional, on_extra_2xx)
            if responded is not None:
                responded.set()
            trunk = target.trunk
            if (response.status in (401, 407) and trunk is not None and trunk.username and not auth_tried
                    and not session.ending and not leg.cancel_wanted):
                auth_tried = True
                retry = self._with_credentials(leg.invite, response, trunk.username, trunk.password)
                if retry is not None:
                    leg.invite = retry
                    continue
            break
        leg.finished = True
        leg.final_status = response.status
        if 200 <= response.status < 300:
            if purpose == "transfer" and transferor is not None:
                await self.transfers.on_transfer_answered(session, transferor, leg, response)
            elif purpose == "queue" and self.queue_calls is not None:
                await self.queue_calls.on_agent_answered(session, leg, response)
            else:
                await self._on_b_answered(session, leg, response)
        else:
            log.info("branch_failed", call=call.call_id, target=target.label, status=response.status)
            await self._drop_leg(leg)
        return response.status

    def _b_invite(self, session: CallSession, leg: SipLeg, target: Target, offer: bytes) -> SipRequest:
        caller = session.call.caller
        host = self._local_host()
        from_ = _caller_address(caller.number, caller.name, host, leg.local_tag)
        headers: list[tuple[str, str]] = [
            ("Contact", self._contact(target.destination[0])),
            ("Allow", ALLOW),
            ("Supported", SUPPORTED),
            ("User-Agent", self.config.sip.user_agent),
            ("Content-Type", SDP),
        ]
        if caller.private:
            headers.append(("Privacy", "id"))
        extra = Headers()
        request_headers(extra, interval=self.calls_config.session_expires, min_se=self.calls_config.min_se)
        headers += extra.items()
        a_forwards = session.a.invite.max_forwards if session.a is not None else None
        return make_request(
            "INVITE", target.request_uri, from_=from_, to=target.to, call_id=new_call_id(host), cseq=1,
            via=f"SIP/2.0/UDP {host};branch={new_branch()}", headers=headers, body=offer,
            max_forwards=max(1, (a_forwards if a_forwards is not None else 70) - 1),
        )

    def _with_credentials(self, request: SipRequest, response: SipResponse, username: str,
                          password: str) -> SipRequest | None:
        """The INVITE again with Authorization / Proxy-Authorization (RFC 3261 section 22.2)."""
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        challenge = pick_challenge(response.headers.get_all(header))
        if challenge is None:
            return None
        try:
            value = authorization_for(challenge, method=request.method, uri=str(request.uri),
                                      username=username, password=password)
        except ChallengeError:
            return None
        headers = request.headers.copy()
        headers.remove("Via")
        headers.prepend("Via", f"SIP/2.0/UDP {self._local_host()};branch={new_branch()}")
        headers.set("CSeq", f"{request.cseq.number + 1} {request.method}")
        headers.set("Authorization" if response.status == 401 else "Proxy-Authorization", value)
        return SipRequest(request.method, request.uri, headers, request.body)

    def _on_b_provisional(self, session: CallSession, leg: SipLeg, response: SipResponse) -> None:
        if response.status == 100:
            return
        leg.provisional_seen = True
        lost = leg.purpose == "call" and session.b is not None and session.b is not leg
        if leg.cancel_wanted or session.ending or lost:
            self._spawn(self._cancel_branch(leg))
            return
        if response.to_tag and leg.dialog is None:
            try:
                leg.dialog = Dialog.as_uac(leg.invite, response)
            except (DialogError, SipParseError):
                leg.dialog = None
        if leg.purpose != "call":
            if leg.purpose == "queue" and self.queue_calls is not None:
                self.queue_calls.on_agent_ringing(session, leg, response)  # call.ringing with the agent
            return
        a = session.a
        if a is None or a.incoming is None or a.incoming.answered:
            return
        early_media = False
        if response.body and (response.media_type or "") == SDP:
            try:
                self.media.accept_answer(leg.leg_id, response.body)
                self.media.bridge(a.leg_id, leg.leg_id)
                early_media = not a.pending_offer
            except MediaError as exc:
                log.info("early_media_rejected", call=session.call.call_id, reason=str(exc))
        session.call.ringing(self.clock())
        status = 183 if early_media else 180
        a.incoming.respond(self._a_response(a, status, a.local_sdp if early_media else None))

    async def _on_b_answered(self, session: CallSession, leg: SipLeg, response: SipResponse) -> None:
        call = session.call
        if not self._confirm_uac_dialog(leg, response):
            await self._drop_leg(leg)
            return
        await self._send_ack(leg, response)
        a = session.a
        if session.b is not None or session.ending or a is None or a.incoming is None or a.incoming.answered:
            # A fork that lost the race, or the caller gave up meanwhile: release this callee.
            await self._bye(leg)
            await self._drop_leg(leg)
            return
        session.b = leg
        if session.no_answer is not None:
            session.no_answer.cancel()
        for other in list(session.branches):
            if other is not leg and not other.finished:
                self._spawn(self._cancel_branch(other))
        if leg.profile is not None:
            leg.profile.incoming(response)
        leg.timer = negotiated_as_uac(response.headers, requested=self.calls_config.session_expires)
        leg.we_refresh = leg.timer is not None and leg.timer.refresher == "uac"
        leg.peer_allows_update = _allows(response, "UPDATE")
        try:
            if response.body:
                self.media.accept_answer(leg.leg_id, response.body)
            self.media.bridge(a.leg_id, leg.leg_id)
        except MediaError as exc:
            log.warning("answer_media_rejected", call=call.call_id, reason=str(exc))
        call.legs.append(leg.model)
        assert a.dialog is not None
        a.dialog.confirm()
        ok = self._a_response(a, 200, a.local_sdp)
        if a.timer is not None:
            ok.headers.set("Session-Expires", a.timer.header_value())
            if a.timer.refresher == "uac":
                ok.headers.set("Require", "timer")
        a.incoming.respond(ok)
        self.in_setup.discard(session)
        call.answered(self.clock(), answered_by=leg.label)
        self.stats["answered"] += 1
        log.info("call_answered", call_id=a.call_id, call=call.call_id, answered_by=leg.label)
        self._arm_session_timer(a)
        self._arm_session_timer(leg)

    def _confirm_uac_dialog(self, leg: SipLeg, response: SipResponse) -> bool:
        try:
            if leg.dialog is None or leg.dialog.remote_tag != response.to_tag:
                leg.dialog = Dialog.as_uac(leg.invite, response)
            else:
                leg.dialog.confirm(response)
        except (DialogError, SipParseError) as exc:
            log.warning("answer_without_dialog", call_id=leg.call_id, reason=str(exc))
            return False
        return True

    async def _ack_and_bye_stray(self, leg: SipLeg, response: SipResponse) -> None:
        """A 2xx from a second fork of the same INVITE (RFC 3261 section 13.2.2.4): ACK it, then BYE."""
        try:
            stray = Dialog.as_uac(leg.invite, response)
        except (DialogError, SipParseError):
            return
        ack = stray.create_ack(response.cseq.number)
        await self._send(ack, leg.destination, ack=True)
        await self._send(stray.create_request("BYE"), leg.destination)

    async def _cancel_branch(self, leg: SipLeg) -> None:
        """CANCEL a B-leg INVITE (RFC 3261 section 9.1): only after a provisional; else remember to."""
        if leg.finished:
            return
        leg.cancel_wanted = True
        if not leg.provisional_seen or leg.cancel_sent:
            return
        leg.cancel_sent = True
        invite = leg.invite
        headers = Headers()
        headers.add("Via", invite.headers.get_all("Via")[0])
        headers.add("Max-Forwards", "70")
        for name in ("From", "To", "Call-ID"):
            headers.add(name, invite.headers.get(name) or "")
        headers.add("CSeq", f"{invite.cseq.number} CANCEL")
        for route in invite.headers.get_all("Route"):
            headers.add("Route", route)
        await self.sip.send_request(SipRequest("CANCEL", invite.uri, headers), leg.destination)

    # --- the caller's side ----------------------------------------------------------------------------

    def _on_a_cancel(self, session: CallSession) -> None:
        """CANCEL from the caller before the answer: the stack answers 200 and 487; cancel the B-legs."""
        if session.ending or session.b is not None:
            return
        self.stats["cancelled"] += 1
        log.info("call_cancelled", call=session.call.call_id)
        self._spawn(self._end(session, EndReason.CANCELLED, status=487))

    def _on_no_answer(self, session: CallSession) -> None:
        if session.b is None and not session.ending:
            log.info("call_no_answer", call=session.call.call_id)
            self._spawn(self._fail_a(session, 480, reason=EndReason.NO_ANSWER))

    async def _fail_a(self, session: CallSession, status: int, phrase: str | None = None,
                      reason: EndReason | None = None) -> None:
        """The call failed before answer: final ``status`` to the caller, B-legs cancelled."""
        await self._end(session, reason or end_reason_for(status), status=status, phrase=phrase)

    def _a_response(self, a: SipLeg, status: int, body: bytes | None) -> SipResponse:
        """A response to the leg's INVITE; a 2xx that is never ACKed will end the call (every answer of
        a caller goes through here: a call, a queue call, an INVITE with Replaces)."""
        if a.incoming is not None and 200 <= status < 300:
            a.incoming.on_ack_timeout(lambda: self._on_ack_timeout(a))
        response = make_response(a.invite, status, to_tag=a.local_tag, headers=[
            ("Contact", self._contact(a.destination[0])),
            ("Allow", ALLOW),
            ("Supported", SUPPORTED),
            ("Server", self.config.sip.user_agent),
        ])
        if body:
            response.headers.set("Content-Type", SDP)
            response.body = body
        if a.profile is not None:
            a.profile.outgoing(response)
        return response

    # --- in-dialog requests ---------------------------------------------------------------------------

    def _leg_for(self, incoming: IncomingRequest) -> SipLeg | None:
        request = incoming.request
        tag = request.to_tag
        if tag is None:
            return None
        leg = self.legs.get((request.call_id, tag))
        if leg is None or leg.dialog is None or not leg.dialog.matches(request):
            return None
        return leg

    def _checked_leg(self, incoming: IncomingRequest) -> SipLeg | None:
        """The leg of an in-dialog request after the CSeq check (12.2.2); answers 481/500 itself."""
        leg = self._leg_for(incoming)
        if leg is None or leg.dialog is None:
            self._reply(incoming, 481, "Call/Transaction Does Not Exist")
            return None
        try:
            leg.dialog.receive_request(incoming.request)
        except DialogError as exc:
            self._reply(incoming, exc.status, exc.reason)
            return None
        return leg

    async def on_ack(self, incoming: IncomingRequest) -> None:
        """ACK for our 2xx: with a body it is the answer to the offer we put in that 2xx."""
        leg = self._leg_for(incoming)
        if leg is None:
            return
        leg.acked = True
        if leg.pending_offer and incoming.request.body:
            leg.pending_offer = False
            try:
                self.media.accept_answer(leg.leg_id, incoming.request.body)
            except MediaError as exc:
                log.info("ack_answer_rejected", call_id=leg.call_id, reason=str(exc))

    async def on_bye(self, incoming: IncomingRequest) -> None:
        """BYE from either side ends the call: 200 to it, BYE to the other (RFC 3261 section 15.1.2)."""
        leg = self._checked_leg(incoming)
        if leg is None:
            return
        self._reply(incoming, 200, "OK")
        assert leg.dialog is not None
        leg.dialog.terminate()
        self._unindex(leg)
        session = leg.session
        if leg.transferring:
            # The transferor hangs up after REFER: the call goes on with the transfer target.
            log.info("transferor_left", call=session.call.call_id, leg=leg.leg_id)
            await self.media.close_leg(leg.leg_id)
            return
        if leg is not session.a and leg is not session.b:
            await self._drop_leg(leg)
            return
        reason = EndReason.CALLER_HANGUP if leg is session.a else EndReason.CALLEE_HANGUP
        await self._end(session, reason, skip=leg)

    async def on_update(self, incoming: IncomingRequest) -> None:
        """UPDATE (RFC 3311): a session refresh or a new offer in a dialog, answered locally."""
        await self._on_offer_in_dialog(incoming)

    async def _on_offer_in_dialog(self, incoming: IncomingRequest) -> None:
        """re-INVITE or UPDATE: answer the offer on this leg's own media (hold and resume included)."""
        leg = self._checked_leg(incoming)
        if leg is None:
            return
        request = incoming.request
        session = leg.session
        if leg.profile is not None:
            leg.profile.incoming(request)
        if leg.reinvite_pending and (request.method == "INVITE" or request.body):
            # Glare: our own re-INVITE's offer is still unanswered (RFC 3261 section 14.2, RFC 3311 5.2).
            self.stats["glare_491_sent"] += 1
            log.info("reinvite_glare", call_id=leg.call_id, method=request.method)
            self._reply(incoming, 491, "Request Pending")
            return
        body: bytes | None = None
        if request.body:
            try:
                answer = self.media.answer(leg.leg_id, request.body)
            except MediaError as exc:
                self._reply(incoming, 488, "Not Acceptable Here", [("Warning", f'305 - "{exc}"')])
                return
            body = answer.sdp
            leg.local_sdp = answer.sdp
            self._direction_changed(session, leg, answer.offered)
        elif request.method == "INVITE":
            body = self.media.offer(leg.leg_id)  # offer in the 2xx, answer comes in the ACK
            leg.pending_offer = True
        try:
            timer = negotiate_as_uas(request.headers, min_se=self.calls_config.min_se,
                                     preferred=self.calls_config.session_expires)
        except SessionIntervalTooSmall as exc:
            self._reply(incoming, 422, "Session Interval Too Small", [("Min-SE", str(exc.min_se))])
            return
        if timer is not None:
            leg.timer = timer
            leg.we_refresh = timer.refresher == "uas"
        response = make_response(request, 200, headers=[
            ("Contact", self._contact(leg.destination[0])), ("Allow", ALLOW), ("Supported", SUPPORTED)])
        if leg.timer is not None and "Session-Expires" in request.headers:
            response.headers.set("Session-Expires", leg.timer.header_value())
        if body:
            response.headers.set("Content-Type", SDP)
            response.body = body
        if leg.profile is not None:
            leg.profile.outgoing(response)
        if request.method == "INVITE":
            incoming.on_ack_timeout(lambda: self._on_ack_timeout(leg))
        incoming.respond(response)
        self._arm_session_timer(leg)

    def _direction_changed(self, session: CallSession, leg: SipLeg, offered: Direction) -> None:
        """Hold when a party offers sendonly/inactive (RFC 3264 section 8.4), resume on sendrecv."""
        other = session.other(leg)
        if other is None or session.call.state not in ("answered", "held"):
            return
        now = self.clock()
        if offered.is_hold and session.held_by is None:
            session.held_by = leg
            other.model.held = True
            self.media.hold(other.leg_id)
            session.call.held(now, by=leg.role)
            log.info("call_held", call=session.call.call_id, by=str(leg.role))
        elif not offered.is_hold and session.held_by is leg:
            session.held_by = None
            other.model.held = False
            self.media.resume(other.leg_id)
            session.call.resumed(now, by=leg.role)
            log.info("call_resumed", call=session.call.call_id, by=str(leg.role))

    async def on_info(self, incoming: IncomingRequest) -> None:
        """INFO (RFC 6086, e.g. SIP INFO DTMF): 200, and the same body to the other party."""
        leg = self._checked_leg(incoming)
        if leg is None:
            return
        self._reply(incoming, 200, "OK")
        other = leg.session.other(leg)
        if other is None or other.dialog is None or other.dialog.state is not DialogState.CONFIRMED:
            return
        headers = Headers()
        content_type = incoming.request.headers.get("Content-Type")
        if content_type:
            headers.add("Content-Type", content_type)
        request = other.dialog.create_request("INFO", headers=headers, body=incoming.request.body)
        self._spawn(self._send(request, other.destination))

    async def on_notify(self, incoming: IncomingRequest) -> None:
        """NOTIFY in one of our dialogs (we subscribe to nothing else): 200; outside any: 481."""
        if self._checked_leg(incoming) is not None:
            self._reply(incoming, 200, "OK")

    # --- session timers (RFC 4028) --------------------------------------------------------------------

    def _arm_session_timer(self, leg: SipLeg) -> None:
        self._detach_session_timer(leg)
        if leg.timer is None or leg.session.ending:
            return
        delay = leg.timer.refresh_after() if leg.we_refresh else leg.timer.expire_after()
        loop = asyncio.get_running_loop()
        leg.timer_handle = loop.call_later(delay, self._on_session_timer, leg)

    def _detach_session_timer(self, leg: SipLeg) -> None:
        if leg.timer_handle is not None:
            leg.timer_handle.cancel()
            leg.timer_handle = None

    def _on_session_timer(self, leg: SipLeg) -> None:
        leg.timer_handle = None
        session = leg.session
        if session.ending:
            return
        if leg.we_refresh:
            self._spawn(self._refresh(leg))
        else:
            log.info("session_timer_expired", call=session.call.call_id, leg=leg.leg_id)
            self._spawn(self._end(session, EndReason.SESSION_EXPIRED))

    async def _refresh(self, leg: SipLeg) -> None:
        """Refresh the session as the refresher: UPDATE without a body when the peer allows it, else a
        re-INVITE with our current offer (RFC 4028 section 9)."""
        if leg.dialog is None or leg.timer is None:
            return
        headers = Headers([("Contact", self._contact(leg.destination[0])), ("Supported", SUPPORTED),
                           ("Session-Expires", f"{leg.timer.interval};refresher=uac"),
                           ("Min-SE", str(self.calls_config.min_se))])
        body = b""
        method = "UPDATE" if leg.peer_allows_update else "INVITE"
        if method == "INVITE":
            body = self.media.offer(leg.leg_id)
            headers.add("Content-Type", SDP)
        request = leg.dialog.create_request(method, headers=headers, body=body)
        if leg.profile is not None:
            leg.profile.outgoing(request)
        leg.reinvite_pending = method == "INVITE"
        try:
            response = await self.sip.send_request(request, leg.destination)
        finally:
            leg.reinvite_pending = False
        if response.status == 491 and not leg.session.ending:
            # Glare (RFC 3261 section 14.1): try again after a random delay; the Call-ID's owner (we are,
            # on B-legs) waits 2.1-4 s, the other side 0-2 s.
            delay = glare_retry_delay(owns_call_id=leg.role is LegRole.B)
            self.stats["glare_491_received"] += 1
            log.info("session_refresh_glare", call_id=leg.call_id, retry_in=delay)
            self._detach_session_timer(leg)
            leg.timer_handle = asyncio.get_running_loop().call_later(delay, self._on_session_timer, leg)
            return
        if 200 <= response.status < 300:
            if method == "INVITE":
                await self._send_ack(leg, response)
                if response.body:
                    try:
                        self.media.accept_answer(leg.leg_id, response.body)
                    except MediaError as exc:
                        log.info("refresh_answer_rejected", call_id=leg.call_id, reason=str(exc))
            timer = negotiated_as_uac(response.headers, requested=leg.timer.interval)
            if timer is not None:
                leg.timer = timer
                leg.we_refresh = timer.refresher == "uac"
            self._arm_session_timer(leg)
        elif response.status in (408, 481) or (response.status >= 500 and response.status != 503):
            log.info("session_refresh_failed", call_id=leg.call_id, status=response.status)
            await self._end(leg.session, EndReason.SESSION_EXPIRED)
        else:
            self._arm_session_timer(leg)  # 503, 4xx and the like: try again next half interval

    # --- lost ACKs and silent media -------------------------------------------------------------------

    def _on_ack_timeout(self, leg: SipLeg) -> None:
        """Our 2xx to the leg's INVITE was resent for 64*T1 without an ACK (RFC 3261 13.3.1.4): the
        dialog is confirmed but the session is over; BYE it and the other leg."""
        session = leg.session
        if session.ending:
            return
        log.warning("call_ack_timeout", call_id=leg.call_id, call=session.call.call_id, leg=leg.leg_id)
        self._spawn(self._end(session, EndReason.ACK_TIMEOUT))

    def _watch_media_soon(self) -> None:
        """Make sure the media watchdog's next look is scheduled (it stops while there are no calls)."""
        if self._watch_handle is None and self.watchdog.enabled:
            loop = asyncio.get_running_loop()
            self._watch_handle = loop.call_later(self.watchdog.interval, self._watch_media)

    def _watch_media(self) -> None:
        """Every ``watchdog.interval``: end the calls with an answered leg silent for media.rtp_timeout."""
        self._watch_handle = None
        silent = self.watchdog.check(asyncio.get_running_loop().time(), self._media_counts())
        for leg in silent:
            session = leg.session
            if session.ending:
                continue
            log.warning("call_media_timeout", call_id=leg.call_id, call=session.call.call_id, leg=leg.leg_id,
                        seconds=self.watchdog.timeout)
            self._spawn(self._end(session, EndReason.MEDIA_TIMEOUT))
        if self.sessions:
            self._watch_media_soon()

    def _media_counts(self) -> list[tuple[SipLeg, int | None, bool]]:
        """(leg, RTP packets received, media expected) for the bridged legs of every call: media is
        expected once the call is answered, not while it is held (RFC 3264 section 8.4) and not from a
        peer whose last offer or answer said it sends nothing (recvonly/inactive)."""
        counts: list[tuple[SipLeg, int | None, bool]] = []
        for session in self.sessions.values():
            talking = session.call.state == "answered" and session.held_by is None and not session.ending
            for leg in (session.a, session.b):
                if leg is not None:
                    expected = talking and not leg.transferring and self.media.peer_sends(leg.leg_id)
                    counts.append((leg, self.media.packets_received(leg.leg_id), expected))
        return counts

    # --- ending ---------------------------------------------------------------------------------------

    async def _end(self, session: CallSession, reason: EndReason, *, status: int | None = None,
                   phrase: str | None = None, skip: SipLeg | None = None) -> None:
        """End the call: final response to an unanswered caller, CANCEL to ringing B-legs, BYE to the rest."""
        if session.ending and session.call.state == "ended":
            return
        session.ending = True
        self.in_setup.discard(session)
        if session.no_answer is not None:
            session.no_answer.cancel()
        a = session.a
        if a is not None and a.incoming is not None and not a.incoming.answered and a is not skip:
            final = make_response(a.invite, status or 480, phrase, to_tag=a.local_tag)
            final.headers.add("Server", self.config.sip.user_agent)
            a.incoming.respond(final)
            if a.dialog is not None:
                a.dialog.terminate()
        session.call.ended(self.clock(), reason, status, media=self._media_stats(session))
        self.stats[f"ended_{reason}"] += 1
        log.info("call_ended", call=session.call.call_id, reason=str(reason), status=status)
        self.sessions.pop(session.call.call_id, None)
        for leg in session.live_legs():
            if leg is skip:
                continue
            self._detach_session_timer(leg)
            if leg.role is LegRole.B and not leg.finished:
                self._spawn(self._cancel_branch(leg))
                continue  # its INVITE's final response closes it (_drop_leg)
            if leg.dialog is not None and leg.dialog.state is DialogState.CONFIRMED and (
                    leg is not a or a.incoming is None or a.incoming.answered):
                await self._bye(leg)
            await self._drop_leg(leg)
        if skip is not None:
            self._detach_session_timer(skip)
            await self._drop_leg(skip)
        self._release(session)

    @staticmethod
    def _release(session: CallSession) -> None:
        """Break the ended call's reference cycles (legs <-> session, the no-answer timer): reference
        counting then frees the call at once. Left to the garbage collector, every call's ~130 objects
        were scanned once or twice more and freed in batches; that was ~5% of a call's CPU, and the
        collections paused the loop (up to 2 s for a full one at 400 calls/s). Whatever still runs for
        this call sees ``session.ending`` and no legs."""
        session.no_answer = None
        session.a = session.b = None
        session.branches.clear()

    def _media_stats(self, session: CallSession) -> dict[str, Any]:
        stats: dict[str, Any] = {}
        for leg in (session.a, session.b):
            if leg is not None:
                stats[str(leg.role)] = self.media.leg_stats(leg.leg_id)
        return stats

    async def _bye(self, leg: SipLeg) -> None:
        """BYE the leg (RFC 3261 section 15.1.1); its transaction runs on its own (nothing waits for it)."""
        if leg.dialog is None or leg.dialog.state is DialogState.TERMINATED:
            return
        request = leg.dialog.create_request("BYE")
        leg.dialog.terminate()
        sent = self.sip.send_request_now(request, leg.destination)
        if sent is None:  # a name to resolve or a connection to open: that needs a Task
            self._spawn(self._send(request, leg.destination))
            return
        self._requests.add(sent)
        sent.add_done_callback(functools.partial(self._request_done, request))

    def _request_done(self, request: SipRequest, future: asyncio.Future[SipResponse]) -> None:
        self._requests.discard(future)
        if not future.cancelled() and future.result().status >= 300:
            log.info("in_dialog_request_failed", call_id=request.call_id, method=request.method,
                     status=future.result().status)

    async def _drop_leg(self, leg: SipLeg) -> None:
        self._unindex(leg)
        if leg in leg.session.branches and leg is not leg.session.b:
            leg.session.branches.remove(leg)
        await self.media.close_leg(leg.leg_id)

    # --- plumbing -------------------------------------------------------------------------------------

    async def _send_ack(self, leg: SipLeg, response: SipResponse) -> None:
        """ACK a 2xx end to end (RFC 3261 section 13.2.2.4): its own request in the dialog, no transaction."""
        if leg.dialog is None:
            return
        ack = leg.dialog.create_ack(response.cseq.number)
        await self._send(ack, leg.destination, ack=True)

    async def _send(self, request: SipRequest, destination: Destination, *, ack: bool = False) -> None:
        try:
            if ack:
                await self.sip.send_ack(request, destination)
            else:
                response = await self.sip.send_request(request, destination)
                if response.status >= 300:
                    log.info("in_dialog_request_failed", call_id=request.call_id, method=request.method,
                             status=response.status)
        except (OSError, ConnectionError) as exc:
            log.warning("send_failed", call_id=request.call_id, method=request.method, error=str(exc))

    def _reply(self, incoming: IncomingRequest, status: int, reason: str | None,
               headers: list[tuple[str, str]] | None = None) -> None:
        request = incoming.request
        to_tag = make_tag() if request.to_tag is None and status > 100 else None
        response = make_response(request, status, reason, to_tag=to_tag, headers=headers)
        response.headers.add("Server", self.config.sip.user_agent)
        incoming.respond(response)

    def _index(self, leg: SipLeg) -> None:
        self.legs[(leg.call_id, leg.local_tag)] = leg

    def _unindex(self, leg: SipLeg) -> None:
        key = (leg.call_id, leg.local_tag)
        if self.legs.get(key) is leg:
            del self.legs[key]

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.stats["task_errors"] += 1
            log.error("b2bua_task_failed", exc_info=task.exception())

    def _local_host(self) -> str:
        sip = self.config.sip
        if sip.advertised_host:
            return sip.advertised_host
        address = self.sip.udp_address or self.sip.tcp_address
        return address[0] if address else sip.host

    def _contact(self, transport: str) -> str:
        """Our Contact for a leg on ``transport`` (the listener's port; RFC 3261 section 8.1.1.8)."""
        transport = transport.lower()
        address = self.sip.tcp_address if transport == "tcp" else self.sip.tls_address if transport == "tls" \
            else self.sip.udp_address
        port = address[1] if address else self.config.sip.udp_port
        suffix = "" if transport == "udp" else f";transport={transport}"
        return f"<sip:{self._local_host()}:{port}{suffix}>"


def _allows(message: SipRequest | SipResponse, method: str) -> bool:
    return any(m.strip().upper() == method for m in message.headers.get_all("Allow"))


def _peer_text(destination: Destination) -> str:
    return f"{destination[0]}:{destination[1]}:{destination[2]}"


def _caller_address(number: str, name: str | None, host: str, tag: str) -> str:
    """From of a B-leg: the caller's number at our host, so the callee sees who calls (RFC 3261 20.20)."""
    try:
        uri = parse_uri(f"sip:{number}@{host}") if number else parse_uri(f"sip:anonymous@{host}")
    except SipParseError:
        uri = parse_uri(f"sip:anonymous@{host}")
    return str(NameAddr(name, uri, {"tag": tag}))


_PLACEHOLDER_URI = parse_uri("sip:invalid@invalid")


def _placeholder_request() -> SipRequest:
    """Stands in for a B-leg's INVITE while its media opens (never sent, so its URI is shared)."""
    headers = Headers([("Call-ID", "-"), ("CSeq", "1 INVITE")])
    return SipRequest("INVITE", _PLACEHOLDER_URI, headers)


__all__ = ["B2bua"]
