"""SIP transactions, RFC 3261 section 17 (with the RFC 6026 Accepted states), sans-IO.

Four state machines, each a table ``(state, event) -> (next state, actions)`` readable on one screen.
Nothing here touches a socket or a clock: every entry point takes ``now`` (seconds on any monotonic
clock the caller owns) and returns a list of outputs for the caller to carry out:

- ``Transmit(data)``: send these bytes on the transaction's transport / flow;
- ``DeliverResponse(response)``: a response for the transaction user (client transactions);
- ``DeliverAck(ack)``: an ACK the transaction user must see (INVITE server, RFC 6026 Accepted);
- ``TimedOut(timer)``: timer B, F or H fired; ``TransportFailed()``: the transport reported an error;
- ``Terminated()``: the transaction is over; forget it.

Timers are deadlines in ``tx.deadlines`` (name -> absolute time); the caller arms one wake-up at
``tx.next_deadline()`` and calls ``tx.fire_timers(now)`` when it passes. Events a table does not list
for a state are absorbed, which is how retransmissions and late responses disappear (17.1.1.2, 17.2.2).

Choices: the INVITE server transaction sends ``100 Trying`` at once when created (17.2.1 allows it
whenever the TU may take longer than 200 ms, which a B2BUA routing to agents always may). A 2xx to an
INVITE moves the server transaction to Accepted (RFC 6026 8.7); retransmitting that 2xx until the ACK
comes is the transaction user's job (13.3.1.4; see ``stack.InviteOkRetransmitter``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Union

from cti_server.sip.headers import Headers
from cti_server.sip.message import SipRequest, SipResponse, make_response
from cti_server.sip.timers import TimerValues


@dataclass(frozen=True, slots=True)
class Transmit:
    """Send ``data`` (one serialized message) to the transaction's peer."""

    data: bytes


@dataclass(frozen=True, slots=True)
class DeliverResponse:
    """Hand ``response`` to the client transaction's user (17.1.1.2, 17.1.2.2)."""

    response: SipResponse


@dataclass(frozen=True, slots=True)
class DeliverAck:
    """Hand an ACK that matched an INVITE server transaction in Accepted to the TU (RFC 6026 8.7)."""

    ack: SipRequest


@dataclass(frozen=True, slots=True)
class TimedOut:
    """Timer B, F (client: report 408 to the TU) or H (server: the ACK never came) fired."""

    timer: str


@dataclass(frozen=True, slots=True)
class TransportFailed:
    """The transport could not deliver a message of this transaction (17.1.4, 17.2.4)."""


@dataclass(frozen=True, slots=True)
class Terminated:
    """The transaction reached the Terminated state; the caller drops it from its tables."""


Output = Union[Transmit, DeliverResponse, DeliverAck, TimedOut, TransportFailed, Terminated]  # noqa: UP007

_IDLE: list[Output] = []  # shared between runs; actions only append while a run has its own list

# States (RFC 3261 figures 5 to 8, RFC 6026 figures 3 and 5).
INIT = "init"
CALLING = "calling"
TRYING = "trying"
PROCEEDING = "proceeding"
COMPLETED = "completed"
CONFIRMED = "confirmed"
ACCEPTED = "accepted"
TERMINATED = "terminated"

# Events. Responses are classified by status; the TU's own responses start with "send_".
START = "start"
PROVISIONAL = "1xx"
SUCCESS = "2xx"
FAILURE = "3xx-6xx"
FINAL = "final"  # non-INVITE: 2xx and 3xx-6xx behave alike
REQUEST = "request"
ACK = "ack"
SEND_PROVISIONAL = "send_1xx"
SEND_SUCCESS = "send_2xx"
SEND_FAILURE = "send_3xx-6xx"
SEND_FINAL = "send_final"
TRANSPORT_ERROR = "transport_error"

Message = Union[SipRequest, SipResponse, None]  # noqa: UP007
Action = Callable[["Transaction", Message], None]
Table = dict[tuple[str, str], tuple[str, tuple[Action, ...]]]


class Transaction:
    """Common machinery: a transition table, deadlines and an output list (RFC 3261 17)."""

    __slots__ = ("_now", "_out", "deadlines", "intervals", "key", "last_response", "request",
                 "request_bytes", "response_to_tag", "state", "timers")

    TABLE: ClassVar[Table] = {}
    is_invite: ClassVar[bool] = False

    def __init__(self, key: object, request: SipRequest, timers: TimerValues) -> None:
        self.key = key
        self.request: SipRequest | None = request
        self.timers = timers
        self.state = INIT
        self.deadlines: dict[str, float] = {}
        self.intervals: dict[str, float] = {}
        self.last_response: bytes | None = None
        self.request_bytes: bytes | None = None  # client: the request as first sent, for timers A / E
        self.response_to_tag: str | None = None
        self._now = 0.0
        self._out: list[Output] = _IDLE

    def next_deadline(self) -> float | None:
        """The earliest armed timer's deadline, or None when no timer runs."""
        return min(self.deadlines.values()) if self.deadlines else None

    def fire_timers(self, now: float) -> list[Output]:
        """Fire every timer whose deadline is at or before ``now``, earliest first."""
        self._now = now
        out = self._out = []
        if self.deadlines:
            self._fire_due()
        # Let go of the outputs: a transaction waiting out timer J should hold no more than it needs.
        self._out = _IDLE
        return out

    def transport_error(self, now: float) -> list[Output]:
        """The transport failed to send one of this transaction's messages (17.1.4, 17.2.4)."""
        return self._run(TRANSPORT_ERROR, None, now)

    # -- machinery ---------------------------------------------------------------------------------

    def _run(self, event: str, message: Message, now: float) -> list[Output]:
        self._now = now
        out = self._out = []
        self._step(event, message)
        if self.deadlines:
            self._fire_due()
        self._out = _IDLE  # as in fire_timers
        return out

    def _step(self, event: str, message: Message) -> None:
        entry = self.TABLE.get((self.state, event))
        if entry is None:
            return  # absorbed (retransmission, late response, ...)
        next_state, actions = entry
        self.state = next_state
        for action in actions:
            action(self, message)
        if next_state == TERMINATED:
            self.deadlines.clear()
            self.request = None
            self.request_bytes = None
            self._out.append(Terminated())

    def _fire_due(self) -> None:
        # Zero-length timers (reliable transports) fire here at once, so a TCP transaction ends
        # without a trip through the event loop.
        deadlines = self.deadlines
        now = self._now
        if min(deadlines.values()) > now:
            return  # the usual case: nothing due
        while deadlines and self.state != TERMINATED:
            name = min(deadlines, key=deadlines.__getitem__)
            if deadlines[name] > now:
                return
            del deadlines[name]
            self._step("timer_" + name, None)

    def _arm(self, name: str, duration: float) -> None:
        self.intervals[name] = duration
        self.deadlines[name] = self._now + duration

    def _stop(self, *names: str) -> None:
        for name in names:
            self.deadlines.pop(name, None)


# -- actions shared by the tables ----------------------------------------------------------------------


def _arm_first(name: str) -> Action:
    """Start timer ``name`` with its RFC 3261 table-4 duration (skipped when that is 0 and it retransmits)."""
    attribute = name.lower()
    if name in "AEG":

        def arm_retransmit(tx: Transaction, _m: Message) -> None:
            duration: float = getattr(tx.timers, attribute)
            if duration:  # else no retransmissions: a reliable transport
                tx.intervals[name] = duration
                tx.deadlines[name] = tx._now + duration

        return arm_retransmit

    def arm(tx: Transaction, _m: Message) -> None:
        tx.deadlines[name] = tx._now + getattr(tx.timers, attribute)

    return arm


def _rearm_doubled(name: str, cap_at_t2: bool) -> Action:
    """Restart a retransmit timer with twice its last interval (capped at T2 unless INVITE, 17.1.1.2)."""

    def rearm(tx: Transaction, _m: Message) -> None:
        interval = tx.intervals[name] * 2
        tx._arm(name, min(interval, tx.timers.t2) if cap_at_t2 else interval)

    return rearm


def _arm_at_t2(name: str) -> Action:
    """Restart a retransmit timer at T2 (non-INVITE client in Proceeding, 17.1.2.2)."""

    def rearm(tx: Transaction, _m: Message) -> None:
        tx._arm(name, tx.timers.t2)

    return rearm


def _stop(*names: str) -> Action:
    def stop(tx: Transaction, _m: Message) -> None:
        tx._stop(*names)
        tx.request_bytes = None  # used where retransmissions stop: nothing resends the request after

    return stop


def _send_request(tx: Transaction, _m: Message) -> None:
    data = tx.request_bytes
    if data is None:  # first send; retransmissions (17.1.1.2, 17.1.2.2) resend the same bytes
        assert tx.request is not None
        data = tx.request_bytes = tx.request.serialize()
    tx._out.append(Transmit(data))


def _deliver(tx: Transaction, message: Message) -> None:
    assert isinstance(message, SipResponse)
    tx._out.append(DeliverResponse(message))


def _deliver_last(tx: Transaction, message: Message) -> None:
    # Accepted (timer M) and non-INVITE Completed (timer K) never send the request again: a transaction
    # waiting out its timer should not keep the request, and what it refers to, alive that long.
    _deliver(tx, message)
    tx.request = None


def _send_ack(tx: Transaction, message: Message) -> None:
    assert isinstance(message, SipResponse) and tx.request is not None
    tx._out.append(Transmit(build_ack(tx.request, message).serialize()))


def _timed_out(timer: str) -> Action:
    def timed_out(tx: Transaction, _m: Message) -> None:
        tx._out.append(TimedOut(timer))

    return timed_out


def _transport_failed(tx: Transaction, _m: Message) -> None:
    tx._out.append(TransportFailed())


def _send_response(tx: Transaction, message: Message) -> None:
    assert isinstance(message, SipResponse)
    data = message.serialize()
    tx.last_response = data
    if message.status >= 200:
        if tx.is_invite:  # only an ACK (RFC 2543 matching) ever asks for it; parsing To is not free
            tx.response_to_tag = message.to_tag
        tx.request = None  # the final response is all a server transaction still needs
    tx._out.append(Transmit(data))


def _remember_response(tx: Transaction, message: Message) -> None:
    assert isinstance(message, SipResponse)
    if tx.last_response is None:  # the caller may hand over the bytes it already sent
        tx.last_response = message.serialize()


def _resend_response(tx: Transaction, _m: Message) -> None:
    if tx.last_response is not None:
        tx._out.append(Transmit(tx.last_response))


def _send_trying(tx: Transaction, message: Message) -> None:
    assert isinstance(message, SipRequest)
    _send_response(tx, make_response(message, 100))


def _deliver_ack(tx: Transaction, message: Message) -> None:
    assert isinstance(message, SipRequest)
    tx._out.append(DeliverAck(message))


# -- the four machines ---------------------------------------------------------------------------------


class InviteClientTransaction(Transaction):
    """INVITE client transaction, RFC 3261 17.1.1 (figure 5) with RFC 6026 Accepted (timer M)."""

    __slots__ = ()
    is_invite = True
    TABLE: ClassVar[Table] = {
        (INIT, START):                (CALLING, (_send_request, _arm_first("A"), _arm_first("B"))),
        (CALLING, "timer_A"):         (CALLING, (_send_request, _rearm_doubled("A", cap_at_t2=False))),
        (CALLING, "timer_B"):         (TERMINATED, (_timed_out("B"),)),
        (CALLING, PROVISIONAL):       (PROCEEDING, (_stop("A", "B"), _deliver)),
        (CALLING, SUCCESS):           (ACCEPTED, (_stop("A", "B"), _deliver_last, _arm_first("M"))),
        (CALLING, FAILURE):           (COMPLETED, (_stop("A", "B"), _deliver, _send_ack, _arm_first("D"))),
        (CALLING, TRANSPORT_ERROR):   (TERMINATED, (_transport_failed,)),
        (PROCEEDING, PROVISIONAL):    (PROCEEDING, (_deliver,)),
        (PROCEEDING, SUCCESS):        (ACCEPTED, (_deliver_last, _arm_first("M"))),
        (PROCEEDING, FAILURE):        (COMPLETED, (_deliver, _send_ack, _arm_first("D"))),
        (COMPLETED, FAILURE):         (COMPLETED, (_send_ack,)),
        (COMPLETED, TRANSPORT_ERROR): (TERMINATED, (_transport_failed,)),
        (COMPLETED, "timer_D"):       (TERMINATED, ()),
        (ACCEPTED, SUCCESS):          (ACCEPTED, (_deliver,)),
        (ACCEPTED, "timer_M"):        (TERMINATED, ()),
    }  # fmt: skip

    def start(self, now: float) -> list[Output]:
        """Send the INVITE and start timers A and B (17.1.1.2)."""
        return self._run(START, None, now)

    def receive_response(self, response: SipResponse, now: float) -> list[Output]:
        """A response matched this transaction (17.1.3)."""
        status = response.status
        event = PROVISIONAL if status < 200 else SUCCESS if status < 300 else FAILURE
        return self._run(event, response, now)


class NonInviteClientTransaction(Transaction):
    """Non-INVITE client transaction, RFC 3261 17.1.2 (figure 6)."""

    __slots__ = ()
    TABLE: ClassVar[Table] = {
        (INIT, START):                 (TRYING, (_send_request, _arm_first("E"), _arm_first("F"))),
        (TRYING, "timer_E"):           (TRYING, (_send_request, _rearm_doubled("E", cap_at_t2=True))),
        (TRYING, "timer_F"):           (TERMINATED, (_timed_out("F"),)),
        (TRYING, PROVISIONAL):         (PROCEEDING, (_deliver,)),
        (TRYING, FINAL):               (COMPLETED, (_stop("E", "F"), _deliver_last, _arm_first("K"))),
        (TRYING, TRANSPORT_ERROR):     (TERMINATED, (_transport_failed,)),
        (PROCEEDING, "timer_E"):       (PROCEEDING, (_send_request, _arm_at_t2("E"))),
        (PROCEEDING, "timer_F"):       (TERMINATED, (_timed_out("F"),)),
        (PROCEEDING, PROVISIONAL):     (PROCEEDING, (_deliver,)),
        (PROCEEDING, FINAL):           (COMPLETED, (_stop("E", "F"), _deliver_last, _arm_first("K"))),
        (PROCEEDING, TRANSPORT_ERROR): (TERMINATED, (_transport_failed,)),
        (COMPLETED, "timer_K"):        (TERMINATED, ()),
    }  # fmt: skip

    def start(self, now: float) -> list[Output]:
        """Send the request and start timers E and F (17.1.2.2)."""
        return self._run(START, None, now)

    def receive_response(self, response: SipResponse, now: float) -> list[Output]:
        """A response matched this transaction (17.1.3)."""
        return self._run(PROVISIONAL if response.status < 200 else FINAL, response, now)


class InviteServerTransaction(Transaction):
    """INVITE server transaction, RFC 3261 17.2.1 (figure 7) with RFC 6026 Accepted (timer L)."""

    __slots__ = ()
    is_invite = True
    TABLE: ClassVar[Table] = {
        (INIT, REQUEST):               (PROCEEDING, (_send_trying,)),
        (PROCEEDING, REQUEST):         (PROCEEDING, (_resend_response,)),
        (PROCEEDING, SEND_PROVISIONAL):(PROCEEDING, (_send_response,)),
        (PROCEEDING, SEND_SUCCESS):    (ACCEPTED, (_send_response, _arm_first("L"))),
        (PROCEEDING, SEND_FAILURE):    (COMPLETED, (_send_response, _arm_first("G"), _arm_first("H"))),
        (PROCEEDING, TRANSPORT_ERROR): (TERMINATED, (_transport_failed,)),
        (COMPLETED, REQUEST):          (COMPLETED, (_resend_response,)),
        (COMPLETED, "timer_G"):        (COMPLETED, (_resend_response, _rearm_doubled("G", cap_at_t2=True))),
        (COMPLETED, "timer_H"):        (TERMINATED, (_timed_out("H"),)),
        (COMPLETED, ACK):              (CONFIRMED, (_stop("G", "H"), _arm_first("I"))),
        (COMPLETED, TRANSPORT_ERROR):  (TERMINATED, (_transport_failed,)),
        (CONFIRMED, "timer_I"):        (TERMINATED, ()),
        (ACCEPTED, SEND_SUCCESS):      (ACCEPTED, (_send_response,)),
        (ACCEPTED, ACK):               (ACCEPTED, (_deliver_ack,)),
        (ACCEPTED, "timer_L"):         (TERMINATED, ()),
    }  # fmt: skip

    def receive_request(self, request: SipRequest, now: float) -> list[Output]:
        """The INVITE (first time: send 100 Trying) or a retransmission of it (17.2.1)."""
        return self._run(REQUEST, request, now)

    def receive_ack(self, ack: SipRequest, now: float) -> list[Output]:
        """An ACK matched this transaction (17.2.3): stops G/H after a non-2xx final response."""
        return self._run(ACK, ack, now)

    def receive_retransmission(self, now: float) -> list[Output]:
        """A retransmitted INVITE matched by its raw bytes (no parsed message needed)."""
        return self._run(REQUEST, None, now)

    def absorb_ack(self, now: float) -> list[Output]:
        """An ACK matched by its raw bytes in Completed or Confirmed (where the ACK itself is not needed)."""
        if self.state not in (COMPLETED, CONFIRMED):
            raise ValueError(f"absorb_ack in state {self.state}")
        return self._run(ACK, None, now)

    def send_response(self, response: SipResponse, now: float) -> list[Output]:
        """The TU answers (17.2.1); a response not allowed in the current state is dropped."""
        status = response.status
        event = SEND_PROVISIONAL if status < 200 else SEND_SUCCESS if status < 300 else SEND_FAILURE
        return self._run(event, response, now)


class NonInviteServerTransaction(Transaction):
    """Non-INVITE server transaction, RFC 3261 17.2.2 (figure 8)."""

    __slots__ = ()
    TABLE: ClassVar[Table] = {
        (INIT, REQUEST):                 (TRYING, ()),
        (TRYING, SEND_PROVISIONAL):      (PROCEEDING, (_send_response,)),
        (TRYING, SEND_FINAL):            (COMPLETED, (_send_response, _arm_first("J"))),
        (PROCEEDING, REQUEST):           (PROCEEDING, (_resend_response,)),
        (PROCEEDING, SEND_PROVISIONAL):  (PROCEEDING, (_send_response,)),
        (PROCEEDING, SEND_FINAL):        (COMPLETED, (_send_response, _arm_first("J"))),
        (PROCEEDING, TRANSPORT_ERROR):   (TERMINATED, (_transport_failed,)),
        (COMPLETED, REQUEST):            (COMPLETED, (_resend_response,)),
        (COMPLETED, TRANSPORT_ERROR):    (TERMINATED, (_transport_failed,)),
        (COMPLETED, "timer_J"):          (TERMINATED, ()),
    }  # fmt: skip

    def receive_request(self, request: SipRequest, now: float) -> list[Output]:
        """The request (first time) or a retransmission of it (17.2.2)."""
        return self._run(REQUEST, request, now)

    def receive_retransmission(self, now: float) -> list[Output]:
        """A retransmission matched by its raw bytes (no parsed message needed)."""
        return self._run(REQUEST, None, now)

    def send_response(self, response: SipResponse, now: float) -> list[Output]:
        """The TU answers (17.2.2); a second final response is dropped."""
        return self._run(SEND_PROVISIONAL if response.status < 200 else SEND_FINAL, response, now)


class InviteSuccessRetransmission(Transaction):
    """The UAS core's 2xx retransmission for an INVITE, RFC 3261 13.3.1.4 (the TU's job per 17.2.1).

    The 2xx is resent at T1, 2*T1, ... capped at T2 (timer "G" of this machine) until the ACK arrives;
    after 64*T1 without an ACK (timer "H") the TU is told, and should end the dialog with a BYE.
    On a reliable transport nothing is resent but the 64*T1 wait for the ACK still runs.
    """

    __slots__ = ()
    TABLE: ClassVar[Table] = {
        (INIT, START):          (ACCEPTED, (_remember_response, _arm_first("G"), _arm_first("H"))),
        (ACCEPTED, "timer_G"):  (ACCEPTED, (_resend_response, _rearm_doubled("G", cap_at_t2=True))),
        (ACCEPTED, "timer_H"):  (TERMINATED, (_timed_out("H"),)),
        (ACCEPTED, ACK):        (TERMINATED, ()),
    }  # fmt: skip

    def start(self, response: SipResponse, now: float) -> list[Output]:
        """The 2xx was just sent (by the INVITE server transaction): start resending it until the ACK
        (set ``last_response`` first to the bytes sent, else ``response`` is serialized again)."""
        return self._run(START, response, now)

    def receive_ack(self, ack: SipRequest, now: float) -> list[Output]:
        """The ACK for the 2xx arrived: stop retransmitting."""
        return self._run(ACK, ack, now)


ClientTransaction = Union[InviteClientTransaction, NonInviteClientTransaction]  # noqa: UP007
ServerTransaction = Union[InviteServerTransaction, NonInviteServerTransaction]  # noqa: UP007


def build_ack(invite: SipRequest, response: SipResponse) -> SipRequest:
    """The ACK a client transaction sends for a 3xx-6xx answer to ``invite`` (RFC 3261 17.1.1.3).

    Same Request-URI, Call-ID, From, top Via (same branch), Route and CSeq number as the INVITE; the To
    header of the response (it carries the UAS's tag); CSeq method ACK.
    """
    headers = Headers()
    headers.add("Via", invite.headers.get_all("Via")[0])
    for route in invite.headers.get_all("Route"):
        headers.add("Route", route)
    headers.add("Max-Forwards", "70")
    headers.add("From", _required(invite.headers.get("From")))
    headers.add("To", _required(response.headers.get("To")))
    headers.add("Call-ID", invite.call_id)
    headers.add("CSeq", f"{invite.cseq.number} ACK")
    return SipRequest("ACK", invite.uri, headers)


def build_cancel(invite: SipRequest) -> SipRequest:
    """The CANCEL for a sent ``invite`` (RFC 3261 9.1): same Request-URI, Call-ID, From, To, CSeq number
    and Route, and only the INVITE's top Via (same branch, so it matches the INVITE at the UAS).

    Build it from the INVITE as sent: ``SipComponent.send_request`` fills in the top Via in place.
    """
    headers = Headers()
    headers.add("Via", invite.headers.get_all("Via")[0])
    for route in invite.headers.get_all("Route"):
        headers.add("Route", route)
    headers.add("Max-Forwards", "70")
    headers.add("From", _required(invite.headers.get("From")))
    headers.add("To", _required(invite.headers.get("To")))
    headers.add("Call-ID", invite.call_id)
    headers.add("CSeq", f"{invite.cseq.number} CANCEL")
    return SipRequest("CANCEL", invite.uri, headers)


def _required(value: str | None) -> str:
    assert value is not None, "parsed messages always carry From and To"
    return value
