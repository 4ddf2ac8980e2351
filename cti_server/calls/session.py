"""The signalling state of one call inside the B2BUA: its legs (one SIP dialog each) and who is bridged.

A B2BUA (RFC 7092 section 3.1) terminates the caller's dialog (the A-leg, we are its UAS) and starts its
own dialogs toward the callees (B-legs, we are their UAC). While ringing there may be several B-legs
(parallel forking, RFC 3261 section 16.7 style); the first 2xx wins and the others are cancelled.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from cti_server.calls.model import Call, Leg, LegRole
from cti_server.calls.session_timer import SessionTimer
from cti_server.calls.trunk_profiles import TrunkProfile
from cti_server.sip.dialog import Dialog
from cti_server.sip.message import SipRequest
from cti_server.sip.stack import IncomingRequest

Destination = tuple[str, str, int]


@dataclass(eq=False)
class SipLeg:
    """One leg: where its peer is, the INVITE that made it, its dialog once it has one, its timers.

    ``destination`` is where in-dialog requests go: for a phone the address its REGISTER or INVITE
    really came from (NAT, RFC 3581), for a trunk its configured address.
    """

    session: CallSession
    role: LegRole
    model: Leg
    destination: Destination
    invite: SipRequest
    local_tag: str
    label: str = ""
    dialog: Dialog | None = None
    incoming: IncomingRequest | None = None
    provisional_seen: bool = False
    cancel_wanted: bool = False
    finished: bool = False
    final_status: int | None = None
    timer: SessionTimer | None = None
    we_refresh: bool = False
    timer_handle: asyncio.TimerHandle | None = None
    peer_allows_update: bool = False
    pending_offer: bool = False
    local_sdp: bytes = b""
    acked: bool = False
    purpose: str = "call"
    cancel_sent: bool = False
    transferring: bool = False
    transfer_done: bool = False
    reinvite_pending: bool = False  # our re-INVITE with an offer awaits its final response (glare: 491)
    profile: TrunkProfile | None = None  # a trunk's interop profile (header rewrites both ways)

    @property
    def leg_id(self) -> str:
        return self.model.leg_id

    @property
    def call_id(self) -> str:
        """The SIP Call-ID of this leg's dialog (each leg has its own)."""
        return self.invite.call_id


@dataclass(eq=False)
class CallSession:
    """A call in the B2BUA: the model, the A-leg, the B-legs being tried and the bridged one."""

    call: Call
    a: SipLeg | None = None
    b: SipLeg | None = None
    branches: list[SipLeg] = field(default_factory=list)
    no_answer: asyncio.TimerHandle | None = None
    held_by: SipLeg | None = None
    ending: bool = False
    transfer_task: asyncio.Task[None] | None = None

    def other(self, leg: SipLeg) -> SipLeg | None:
        """The leg bridged with ``leg`` (None while the B side is still being tried)."""
        if leg is self.a:
            return self.b
        if leg is self.b:
            return self.a
        return None

    def live_legs(self) -> list[SipLeg]:
        """Legs whose dialog may still need a BYE or CANCEL."""
        legs = [leg for leg in (self.a, self.b) if leg is not None]
        legs += [leg for leg in self.branches if leg not in legs]
        return legs
