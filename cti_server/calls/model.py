"""The call model: a call, its legs and parties, its states and when it entered them.

A call is what the people on it see: offered, ringing, answered, held, ended; the B2BUA (RFC 7092
section 3.1: a signalling-only view over two or more UA dialogs) keeps one SIP dialog per leg. Every
change of state is handed to ``publish`` as an ``Event`` (``call.offered``, ``call.ringing``,
``call.answered``, ``call.held``, ``call.resumed``, ``call.transferred``, ``call.ended``) whose data is
JSON-safe and carries ``call_id``. Sans-IO: the caller passes the time of each change.

The allowed changes are the table ``TRANSITIONS``; anything else raises ``CallStateError``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cti_server.calls.caller_id import CallerId
from cti_server.events import Event
from cti_server.sip.message import random_bytes


class CallState(StrEnum):
    """Where a call is, as its parties see it."""

    OFFERED = "offered"
    RINGING = "ringing"
    ANSWERED = "answered"
    HELD = "held"
    ENDED = "ended"


class EndReason(StrEnum):
    """Why a call ended; the SIP status (if any) is kept beside it."""

    CALLER_HANGUP = "caller_hangup"
    CALLEE_HANGUP = "callee_hangup"
    CANCELLED = "cancelled"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    DECLINED = "declined"
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    UNAVAILABLE = "unavailable"
    FAILED = "failed"
    TRANSFERRED = "transferred"
    SESSION_EXPIRED = "session_timer_expired"  # RFC 4028: no refresh within the session interval
    MEDIA_TIMEOUT = "media_timeout"  # no RTP on an answered leg for media.rtp_timeout seconds
    ACK_TIMEOUT = "ack_timeout"  # our 2xx to an INVITE got no ACK in 64*T1 (RFC 3261 13.3.1.4)
    SHUTDOWN = "shutdown"


class Direction(StrEnum):
    """Inbound: from a trunk to our users. Outbound: from our users out through a trunk."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


TRANSITIONS: dict[CallState, frozenset[CallState]] = {
    CallState.OFFERED: frozenset({CallState.RINGING, CallState.ANSWERED, CallState.ENDED}),
    CallState.RINGING: frozenset({CallState.ANSWERED, CallState.ENDED}),
    CallState.ANSWERED: frozenset({CallState.HELD, CallState.ENDED}),
    CallState.HELD: frozenset({CallState.ANSWERED, CallState.ENDED}),
    CallState.ENDED: frozenset(),
}

EventSink = Callable[[Event], None]


class CallStateError(RuntimeError):
    """A change the call's state does not allow (for example answering an ended call)."""


class LegRole(StrEnum):
    """A-leg: the side that sent us the call. B-leg: a side we called."""

    A = "a"
    B = "b"


@dataclass
class Leg:
    """One side of the call: its peer, its SIP dialog (set once it has one) and its media endpoint."""

    role: LegRole
    peer: str
    leg_id: str = field(default_factory=lambda: random_bytes(6).hex())
    dialog: Any = None
    media: Any = None
    held: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for events."""
        return {"leg_id": self.leg_id, "role": str(self.role), "peer": self.peer, "held": self.held}


@dataclass
class Call:
    """A call with its legs and parties; every state change is published."""

    caller: CallerId
    called_number: str
    call_center: str | None
    direction: Direction
    publish: EventSink
    now: float
    call_id: str = field(default_factory=lambda: random_bytes(16).hex())
    target: dict[str, Any] = field(default_factory=dict)
    legs: list[Leg] = field(default_factory=list)
    state: CallState = CallState.OFFERED
    timestamps: dict[str, float] = field(default_factory=dict)
    end_reason: EndReason | None = None
    end_status: int | None = None
    answered_by: str | None = None
    transfers: list[dict[str, Any]] = field(default_factory=list)
    screenpop: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.timestamps[CallState.OFFERED.value] = self.now
        self._emit("call.offered", {}, self.now)

    # --- changes of state -------------------------------------------------------------------------

    def ringing(self, now: float) -> None:
        """A callee's phone rings (180/183 on a B-leg); repeated ringing is not news."""
        if self.state is CallState.RINGING:
            return
        self._move(CallState.RINGING, now)
        self._emit("call.ringing", {}, now)

    def answered(self, now: float, answered_by: str) -> None:
        """A callee answered (the first 2xx); ``answered_by`` names who (user or number)."""
        self._move(CallState.ANSWERED, now)
        self.answered_by = answered_by
        self._emit("call.answered", {"answered_by": answered_by}, now)

    def held(self, now: float, by: LegRole) -> None:
        """The party on leg ``by`` put the other on hold (RFC 3264 section 8.4 sendonly/inactive)."""
        self._move(CallState.HELD, now)
        self._emit("call.held", {"by": str(by)}, now)

    def resumed(self, now: float, by: LegRole) -> None:
        """The held call is talking again."""
        if self.state is not CallState.HELD:
            raise CallStateError(f"call {self.call_id} is {self.state}, not held")
        self.state = CallState.ANSWERED
        self.timestamps["resumed"] = now
        self._emit("call.resumed", {"by": str(by)}, now)

    def transferred(self, now: float, to: str, kind: str, by: LegRole) -> None:
        """A party transferred the call to ``to`` (``kind`` blind: RFC 3515, attended: RFC 3891)."""
        if self.state not in (CallState.ANSWERED, CallState.HELD):
            raise CallStateError(f"call {self.call_id} is {self.state}, cannot be transferred")
        self.timestamps["transferred"] = now
        record = {"to": to, "kind": kind, "by": str(by)}
        self.transfers.append(record)
        self._emit("call.transferred", record, now)

    def ended(self, now: float, reason: EndReason, status: int | None = None,
              media: dict[str, Any] | None = None) -> None:
        """The call is over; ending an ended call is a no-op (both sides may hang up at once).

        ``media`` are the packet counters of its legs (JSON-safe), reported with the event.
        """
        if self.state is CallState.ENDED:
            return
        self._move(CallState.ENDED, now)
        self.end_reason = reason
        self.end_status = status
        extra = {"reason": str(reason), "status": status, "duration": self.talk_time, "media": media or {}}
        self._emit("call.ended", extra, now)

    # --- views --------------------------------------------------------------------------------------

    @property
    def talk_time(self) -> float | None:
        """Seconds from answer to end (or None if never answered or not ended)."""
        answered = self.timestamps.get(CallState.ANSWERED.value)
        ended = self.timestamps.get(CallState.ENDED.value)
        return None if answered is None or ended is None else round(ended - answered, 3)

    def leg(self, role: LegRole) -> Leg | None:
        """The first leg with ``role``."""
        return next((leg for leg in self.legs if leg.role is role), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe snapshot of the call (every event carries it)."""
        data: dict[str, Any] = {
            "call_id": self.call_id,
            "state": str(self.state),
            "direction": str(self.direction),
            "caller": self.caller.to_dict(),
            "called_number": self.called_number,
            "call_center": self.call_center,
            "target": dict(self.target),
            "legs": [leg.to_dict() for leg in self.legs],
            "timestamps": dict(self.timestamps),
            "answered_by": self.answered_by,
            "end_reason": None if self.end_reason is None else str(self.end_reason),
            "end_status": self.end_status,
        }
        if self.screenpop is not None:
            data["screenpop"] = self.screenpop  # the caller lookup's answer (calls/screenpop_hook.py)
        return data

    def _move(self, state: CallState, now: float) -> None:
        if state not in TRANSITIONS[self.state]:
            raise CallStateError(f"call {self.call_id}: {self.state} -> {state} is not allowed")
        self.state = state
        self.timestamps[state.value] = now

    def _emit(self, topic: str, extra: dict[str, Any], now: float) -> None:
        data = self.to_dict()
        data.update(extra)
        self.publish(Event(topic, data, call_center=self.call_center, timestamp=now))


def queue_item_id(call_id: str, requeues: int) -> str:
    """The work item of a queued call: the call's id, and ``<call id>.<n>`` once it has been queued
    again ``n`` times (an accepted ring the phone did not answer)."""
    return f"{call_id}.{requeues}" if requeues else call_id


def call_id_of_item(item_id: str) -> str:
    """The call a voice item of ``queue_item_id`` is for (call ids are hex: a ``.<n>`` ends a requeue)."""
    head, dot, count = item_id.rpartition(".")
    return head if dot and count.isdigit() else item_id
