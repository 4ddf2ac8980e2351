"""Call transfer in the B2BUA: REFER (RFC 3515) blind and attended (Replaces, RFC 3891).

The transferor's REFER gets 202 and sipfrag NOTIFYs of the progress (RFC 3515 section 2.4.5). A blind
transfer starts new B-legs to the Refer-To target while the party who stays hears music on hold; the
first to answer is bridged with it and the transferor is released (it should hang up itself after the
final NOTIFY, RFC 5589 section 6; after ``TRANSFEROR_GRACE`` seconds we BYE it). With Replaces in
Refer-To the target is a leg of another of our calls (the consultation call): its far party is bridged
with the party who stays and the transferor's legs in both calls are released. An INVITE that carries
Replaces takes over the replaced leg.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from urllib.parse import unquote

import structlog

from cti_server.calls.failures import best_failure
from cti_server.calls.media_session import MediaError
from cti_server.calls.model import EndReason, Leg, LegRole
from cti_server.calls.session import CallSession, SipLeg
from cti_server.calls.session_timer import negotiated_as_uac
from cti_server.sip.address import parse_name_addr
from cti_server.sip.dialog import Dialog, DialogError, DialogState
from cti_server.sip.errors import SipParseError
from cti_server.sip.headers import Headers
from cti_server.sip.message import SipResponse, make_response, reason_phrase
from cti_server.sip.message import new_tag as make_tag
from cti_server.sip.stack import IncomingRequest
from cti_server.sip.uri import SipUri

if TYPE_CHECKING:
    from cti_server.calls.b2bua import B2bua

log = structlog.get_logger(__name__)

SIPFRAG = "message/sipfrag;version=2.0"
TRANSFEROR_GRACE = 4.0


class TransferControl:
    """REFER and Replaces handling for a ``B2bua`` (uses its legs, media and sending)."""

    def __init__(self, b2bua: B2bua) -> None:
        self.b2bua = b2bua

    async def on_refer(self, incoming: IncomingRequest) -> None:
        """REFER (RFC 3515): 202, then a blind transfer or, with Replaces in Refer-To, an attended one."""
        leg = self.b2bua._checked_leg(incoming)
        if leg is None:
            return
        session = leg.session
        other = session.other(leg)
        values = incoming.request.headers.get_all("Refer-To")
        if len(values) != 1:
            self.b2bua._reply(incoming, 400, "Bad Request: one Refer-To needed")
            return
        try:
            refer_to = parse_name_addr(values[0], "Refer-To")
        except SipParseError as exc:
            self.b2bua._reply(incoming, 400, exc.reason)
            return
        if other is None or session.ending:
            self.b2bua._reply(incoming, 403, "Forbidden: no call to transfer")
            return
        if session.transfer_task is not None:
            self.b2bua._reply(incoming, 491, "Request Pending")
            return
        contact = self.b2bua._contact(leg.destination[0])
        response = make_response(incoming.request, 202, headers=[("Contact", contact)])
        incoming.respond(response)
        leg.transferring = True
        replaces = refer_to.uri.headers.get("Replaces")
        if replaces is not None:
            coro = self._attended_transfer(session, leg, other, unquote(replaces))
        else:
            coro = self._blind_transfer(session, leg, other, refer_to.uri)
        session.transfer_task = self.b2bua._spawn(coro)

    async def _notify_refer(self, leg: SipLeg, status: int, reason: str, *, final: bool) -> None:
        """Report the transfer's progress to the transferor as a sipfrag NOTIFY (RFC 3515 section 2.4.5)."""
        if leg.dialog is None or leg.dialog.state is DialogState.TERMINATED:
            return
        headers = Headers([
            ("Event", "refer"),
            ("Subscription-State", "terminated;reason=noresource" if final else "active;expires=60"),
            ("Contact", self.b2bua._contact(leg.destination[0])),
            ("Content-Type", SIPFRAG),
        ])
        body = f"SIP/2.0 {status} {reason}\r\n".encode()
        notify = leg.dialog.create_request("NOTIFY", headers=headers, body=body)
        await self.b2bua._send(notify, leg.destination)

    async def _blind_transfer(self, session: CallSession, transferor: SipLeg, stay: SipLeg,
                              uri: SipUri) -> None:
        number = (uri.user or "").split(";", 1)[0]
        log.info("transfer_blind", call=session.call.call_id, to=number, by=str(transferor.role))
        await self._notify_refer(transferor, 100, "Trying", final=False)
        targets = await self.b2bua.router.user_targets([number]) if number in self.b2bua.router.users else []
        if not targets:
            did = self.b2bua.router.dids.lookup(number)
            if did is not None and did.users:
                targets = await self.b2bua.router.user_targets(did.users)
            elif number not in self.b2bua.router.users:
                targets = self.b2bua.router.trunk_targets(number)[:1]
        if not targets:
            await self._transfer_failed(session, transferor, 404, "Not Found")
            return
        self.b2bua.media.hold(stay.leg_id)
        statuses = await asyncio.gather(*(self.b2bua._run_branch(session, t, None, "transfer", transferor)
                                          for t in targets))
        if session.transfer_task is not None and not transferor.transfer_done:
            status = best_failure(list(statuses))
            await self._transfer_failed(session, transferor, status, reason_phrase(status))

    async def on_transfer_answered(self, session: CallSession, transferor: SipLeg, leg: SipLeg,
                                    response: SipResponse) -> None:
        if not self.b2bua._confirm_uac_dialog(leg, response):
            await self.b2bua._drop_leg(leg)
            return
        await self.b2bua._send_ack(leg, response)
        stay = session.other(transferor)
        if transferor.transfer_done or session.ending or stay is None:
            await self.b2bua._bye(leg)
            await self.b2bua._drop_leg(leg)
            return
        transferor.transfer_done = True
        for other in list(session.branches):
            if other is not leg and not other.finished and other.purpose == "transfer":
                self.b2bua._spawn(self.b2bua._cancel_branch(other))
        try:
            if response.body:
                self.b2bua.media.accept_answer(leg.leg_id, response.body)
            self.b2bua.media.resume(stay.leg_id)
            self.b2bua.media.bridge(stay.leg_id, leg.leg_id)
        except MediaError as exc:
            log.warning("transfer_media_rejected", call=session.call.call_id, reason=str(exc))
        leg.timer = negotiated_as_uac(response.headers, requested=self.b2bua.calls_config.session_expires)
        leg.we_refresh = leg.timer is not None and leg.timer.refresher == "uac"
        self._replace(session, transferor, leg)
        session.call.transferred(self.b2bua.clock(), to=leg.label, kind="blind", by=transferor.role)
        self.b2bua._arm_session_timer(leg)
        await self._notify_refer(transferor, 200, "OK", final=True)
        self._release_later(transferor)
        session.transfer_task = None

    def _release_later(self, leg: SipLeg) -> None:
        """The transferor should hang up itself after the final NOTIFY (RFC 5589 section 6); if it has not
        within ``TRANSFEROR_GRACE`` seconds, we send the BYE."""
        loop = asyncio.get_running_loop()
        loop.call_later(TRANSFEROR_GRACE, lambda: self.b2bua._spawn(self._release_transferor(leg)))

    async def _transfer_failed(self, session: CallSession, transferor: SipLeg, status: int,
                               reason: str) -> None:
        log.info("transfer_failed", call=session.call.call_id, status=status)
        session.transfer_task = None
        transferor.transferring = False
        await self._notify_refer(transferor, status, reason, final=True)
        stay = session.other(transferor)
        if transferor.dialog is None or transferor.dialog.state is DialogState.TERMINATED:
            # The transferor already hung up: nobody is left for the caller.
            left = EndReason.CALLEE_HANGUP if stay is session.a else EndReason.CALLER_HANGUP
            await self.b2bua._end(session, left, skip=transferor)
        elif stay is not None:
            self.b2bua.media.resume(stay.leg_id)
            self.b2bua.media.bridge(stay.leg_id, transferor.leg_id)

    async def _attended_transfer(self, session: CallSession, transferor: SipLeg, stay: SipLeg,
                                 replaces: str) -> None:
        """RFC 3891 through us: Replaces names our dialog with the transfer target's side of the
        consultation call; bridge ``stay`` with the far party of that call, release the transferor."""
        await self._notify_refer(transferor, 100, "Trying", final=False)
        replaced = self._leg_for_replaces(replaces)
        target_session = replaced.session if replaced is not None else None
        far = target_session.other(replaced) if target_session is not None and replaced is not None else None
        if replaced is None or target_session is None or far is None or target_session is session:
            await self._transfer_failed(session, transferor, 481, "Call/Transaction Does Not Exist")
            return
        transferor.transfer_done = True
        self.b2bua.media.resume(stay.leg_id)
        self.b2bua.media.bridge(stay.leg_id, far.leg_id)
        # The far party moves into this call; the consultation call ends for the transferor's side.
        target_session.ending = True
        if target_session.a is far:
            target_session.a = None
        else:
            target_session.b = None
        self.b2bua._detach_session_timer(replaced)
        far.session = session
        self._replace(session, transferor, far)
        session.call.transferred(self.b2bua.clock(), to=far.label or far.model.peer, kind="attended",
                                 by=transferor.role)
        target_session.call.ended(self.b2bua.clock(), EndReason.TRANSFERRED)
        self.b2bua.sessions.pop(target_session.call.call_id, None)
        await self._notify_refer(transferor, 200, "OK", final=True)
        replaced.transferring = True
        await self._release_transferor(replaced)
        self._release_later(transferor)
        session.transfer_task = None

    def _leg_for_replaces(self, replaces: str) -> SipLeg | None:
        """Replaces: ``call-id;to-tag=..;from-tag=..`` from the sender's view (RFC 3891 section 3)."""
        parts = [p.strip() for p in replaces.split(";")]
        call_id = parts[0]
        params = dict(p.partition("=")[::2] for p in parts[1:])
        for tag in (params.get("to-tag"), params.get("from-tag")):
            if tag:
                leg = self.b2bua.legs.get((call_id, tag))
                if leg is not None:
                    return leg
        return None

    async def on_replacing_invite(self, incoming: IncomingRequest) -> None:
        """An INVITE with Replaces (RFC 3891): the new dialog takes the place of one of our legs."""
        request = incoming.request
        replaced = self._leg_for_replaces(request.headers.get("Replaces") or "")
        if replaced is None or replaced.dialog is None:
            self.b2bua._reply(incoming, 481, "Call/Transaction Does Not Exist")
            return
        session = replaced.session
        far = session.other(replaced)
        if far is None:
            self.b2bua._reply(incoming, 481, "Call/Transaction Does Not Exist")
            return
        leg = SipLeg(session, LegRole.A, Leg(LegRole.A, peer=f"{incoming.transport}:{incoming.source[0]}:"
                                                             f"{incoming.source[1]}"),
                     (incoming.transport, incoming.source[0], incoming.source[1]), request, make_tag(),
                     label=request.from_addr.uri.user or "", incoming=incoming)
        try:
            leg.dialog = Dialog.as_uas(request, leg.local_tag, confirmed=True)
            await self.b2bua.media.open_leg(leg.leg_id, session.call.call_id)
            if request.body:
                leg.local_sdp = self.b2bua.media.answer(leg.leg_id, request.body).sdp
            else:
                leg.pending_offer = True
                leg.local_sdp = self.b2bua.media.offer(leg.leg_id)
        except (DialogError, SipParseError) as exc:
            self.b2bua._reply(incoming, 400, str(exc))
            return
        except MediaError:
            self.b2bua._reply(incoming, 488, "Not Acceptable Here")
            await self.b2bua.media.close_leg(leg.leg_id)
            return
        self.b2bua._index(leg)
        incoming.respond(self.b2bua._a_response(leg, 200, leg.local_sdp))
        self.b2bua.media.bridge(far.leg_id, leg.leg_id)
        replaced.transferring = True
        self._replace(session, replaced, leg)
        session.call.transferred(self.b2bua.clock(), to=leg.label, kind="replaces", by=replaced.role)
        await self._release_transferor(replaced)

    def _replace(self, session: CallSession, old: SipLeg, new: SipLeg) -> None:
        if session.a is old:
            session.a = new
        elif session.b is old:
            session.b = new
        if session.held_by is old:
            session.held_by = None
        if new.model not in session.call.legs:
            session.call.legs.append(new.model)
        if new in session.branches:
            session.branches.remove(new)

    async def _release_transferor(self, leg: SipLeg) -> None:
        """BYE the transferor's leg (if it has not hung up already) and forget it."""
        self.b2bua._detach_session_timer(leg)
        if leg.dialog is not None and leg.dialog.state is not DialogState.TERMINATED:
            await self.b2bua._bye(leg)
        self.b2bua._unindex(leg)
        await self.b2bua.media.close_leg(leg.leg_id)
