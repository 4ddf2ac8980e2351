"""Client transactions (RFC 3261 17.1) on a fake clock: timers A, B, D, E, F, K, M and the ACK for non-2xx."""

from __future__ import annotations

import pytest

from cti_server.config import SipTimersConfig
from cti_server.sip.matching import client_key
from cti_server.sip.timers import TimerValues
from cti_server.sip.transaction import (
    ACCEPTED,
    COMPLETED,
    PROCEEDING,
    TERMINATED,
    DeliverResponse,
    InviteClientTransaction,
    NonInviteClientTransaction,
    Output,
    Terminated,
    TimedOut,
    Transmit,
    TransportFailed,
    build_ack,
    build_cancel,
)
from tests.sip.tx_messages import request, response

UDP = TimerValues.from_config(SipTimersConfig(), reliable=False)
TCP = TimerValues.from_config(SipTimersConfig(), reliable=True)


def transmitted(outputs: list[Output]) -> list[bytes]:
    return [o.data for o in outputs if isinstance(o, Transmit)]


def delivered(outputs: list[Output]) -> list[int]:
    return [o.response.status for o in outputs if isinstance(o, DeliverResponse)]


def retransmit_times(tx: InviteClientTransaction | NonInviteClientTransaction, until: float) -> list[float]:
    """Run the fake clock from deadline to deadline and note when the request went out again."""
    times: list[float] = []
    while (deadline := tx.next_deadline()) is not None and deadline < until:
        if transmitted(tx.fire_timers(deadline)):
            times.append(deadline)
    return times


def test_timer_values_follow_rfc3261_table_4() -> None:
    assert (UDP.a, UDP.b, UDP.d, UDP.e, UDP.f, UDP.g, UDP.h, UDP.i, UDP.j, UDP.k) == (
        0.5, 32.0, 32.0, 0.5, 32.0, 0.5, 32.0, 5.0, 32.0, 5.0)
    assert (UDP.l, UDP.m) == (32.0, 32.0)
    # Reliable transports: no retransmissions, no waiting for retransmissions.
    assert (TCP.a, TCP.d, TCP.e, TCP.g, TCP.i, TCP.j, TCP.k) == (0, 0, 0, 0, 0, 0, 0)
    assert (TCP.b, TCP.f, TCP.h) == (32.0, 32.0, 32.0)
    fast = TimerValues.from_config(SipTimersConfig(t1=0.1, t2=1.0, t4=2.0), reliable=False)
    assert (fast.a, fast.b, fast.d, fast.k) == (0.1, pytest.approx(6.4), 32.0, 2.0)


def test_invite_retransmits_with_doubling_interval_until_timer_b() -> None:
    invite = request("INVITE")
    tx = InviteClientTransaction(client_key(invite), invite, UDP)
    out = tx.start(0.0)
    assert transmitted(out) == [invite.serialize()]
    assert tx.deadlines == {"A": 0.5, "B": 32.0}
    assert retransmit_times(tx, until=32.0) == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    out = tx.fire_timers(32.0)
    assert TimedOut("B") in out and Terminated() in out
    assert tx.state == TERMINATED and tx.next_deadline() is None


def test_invite_provisional_stops_retransmissions_and_timer_b() -> None:
    invite = request("INVITE")
    tx = InviteClientTransaction(client_key(invite), invite, UDP)
    tx.start(0.0)
    out = tx.receive_response(response(invite, 180), 0.2)
    assert delivered(out) == [180] and tx.state == PROCEEDING
    assert tx.next_deadline() is None
    assert delivered(tx.receive_response(response(invite, 183), 5.0)) == [183]


def test_invite_failure_is_acked_by_the_transaction_and_retransmits_absorbed() -> None:
    invite = request("INVITE", extra=[("Route", "<sip:proxy.example.com;lr>")])
    tx = InviteClientTransaction(client_key(invite), invite, UDP)
    tx.start(0.0)
    busy = response(invite, 486)
    out = tx.receive_response(busy, 1.0)
    assert delivered(out) == [486] and tx.state == COMPLETED
    (ack_bytes,) = transmitted(out)
    ack = build_ack(invite, busy)
    assert ack_bytes == ack.serialize()
    assert ack.method == "ACK" and str(ack.uri) == str(invite.uri)
    assert ack.top_via.branch == invite.top_via.branch
    assert ack.to_tag == "tt1" and ack.from_tag == invite.from_tag
    assert (ack.cseq.number, ack.cseq.method) == (1, "ACK")
    assert ack.headers.get_all("Route") == ["<sip:proxy.example.com;lr>"]
    assert tx.deadlines == {"D": 33.0}
    # A retransmitted 486 gets the ACK again and is not passed up.
    out = tx.receive_response(busy, 2.0)
    assert transmitted(out) == [ack_bytes] and delivered(out) == []
    assert tx.fire_timers(32.9) == []
    assert tx.fire_timers(33.0) == [Terminated()]


def test_build_ack_copies_the_invite_and_the_response_to() -> None:
    invite = request("INVITE", cseq=7)
    ack = build_ack(invite, response(invite, 603, to_tag="xyz"))
    assert ack.call_id == invite.call_id and ack.cseq.number == 7 and ack.to_tag == "xyz"
    assert ack.max_forwards == 70


def test_invite_2xx_goes_to_accepted_and_passes_retransmitted_2xx_up() -> None:
    invite = request("INVITE")
    tx = InviteClientTransaction(client_key(invite), invite, UDP)
    tx.start(0.0)
    ok = response(invite, 200)
    out = tx.receive_response(ok, 0.3)
    assert delivered(out) == [200] and transmitted(out) == [] and tx.state == ACCEPTED
    assert tx.deadlines == {"M": pytest.approx(32.3)}
    assert delivered(tx.receive_response(ok, 1.0)) == [200]  # the TU re-ACKs (13.2.2.4)
    assert delivered(tx.receive_response(response(invite, 486), 1.5)) == []
    assert tx.fire_timers(32.3) == [Terminated()]


def test_invite_over_tcp_sends_once_and_ends_at_once_after_failure() -> None:
    invite = request("INVITE")
    tx = InviteClientTransaction(client_key(invite), invite, TCP)
    tx.start(0.0)
    assert tx.deadlines == {"B": 32.0}  # no timer A on a reliable transport
    out = tx.receive_response(response(invite, 500), 1.0)
    assert delivered(out) == [500] and len(transmitted(out)) == 1  # the ACK
    assert out[-1] == Terminated() and tx.state == TERMINATED  # timer D is 0


def test_invite_transport_error_terminates() -> None:
    invite = request("INVITE")
    tx = InviteClientTransaction(client_key(invite), invite, UDP)
    tx.start(0.0)
    assert tx.transport_error(0.1) == [TransportFailed(), Terminated()]


def test_non_invite_retransmits_doubling_up_to_t2_until_timer_f() -> None:
    options = request("OPTIONS")
    tx = NonInviteClientTransaction(client_key(options), options, UDP)
    assert transmitted(tx.start(0.0)) == [options.serialize()]
    assert tx.deadlines == {"E": 0.5, "F": 32.0}
    times = retransmit_times(tx, until=32.0)
    intervals = [round(b - a, 6) for a, b in zip([0.0, *times], times, strict=False)]
    assert intervals == [0.5, 1.0, 2.0] + [4.0] * 7  # 500 ms, 1 s, 2 s, then T2 (17.1.2.2)
    assert times[-1] == 31.5
    out = tx.fire_timers(32.0)
    assert out == [TimedOut("F"), Terminated()]


def test_non_invite_proceeding_retransmits_every_t2() -> None:
    register = request("REGISTER")
    tx = NonInviteClientTransaction(client_key(register), register, UDP)
    tx.start(0.0)
    assert delivered(tx.receive_response(response(register, 100), 0.1)) == [100]
    assert tx.state == PROCEEDING
    assert transmitted(tx.fire_timers(0.5)) == [register.serialize()]
    assert tx.deadlines["E"] == 4.5  # reset to T2 in Proceeding (17.1.2.2)
    assert transmitted(tx.fire_timers(4.5)) and tx.deadlines["E"] == 8.5


def test_non_invite_final_response_then_timer_k_absorbs_retransmissions() -> None:
    bye = request("BYE", to_tag="tt1")
    tx = NonInviteClientTransaction(client_key(bye), bye, UDP)
    tx.start(0.0)
    ok = response(bye, 200)
    assert delivered(tx.receive_response(ok, 0.7)) == [200]
    assert tx.state == COMPLETED and tx.deadlines == {"K": pytest.approx(5.7)}
    assert tx.receive_response(ok, 1.0) == []
    assert tx.fire_timers(5.7) == [Terminated()]


def test_non_invite_over_tcp_terminates_on_final_response() -> None:
    bye = request("BYE", to_tag="tt1")
    tx = NonInviteClientTransaction(client_key(bye), bye, TCP)
    tx.start(0.0)
    assert tx.deadlines == {"F": 32.0}
    out = tx.receive_response(response(bye, 200), 0.1)
    assert delivered(out) == [200] and out[-1] == Terminated()


def test_non_invite_timer_f_in_proceeding_reports_timeout() -> None:
    info = request("INFO", to_tag="tt1")
    tx = NonInviteClientTransaction(client_key(info), info, TCP)
    tx.start(0.0)
    tx.receive_response(response(info, 100), 1.0)
    assert tx.fire_timers(32.0) == [TimedOut("F"), Terminated()]


def test_build_cancel_matches_the_invite_9_1() -> None:
    invite = request("INVITE", cseq=4, extra=[("Route", "<sip:p1;lr>")])
    cancel = build_cancel(invite)
    assert cancel.method == "CANCEL" and str(cancel.uri) == str(invite.uri)
    assert cancel.top_via.branch == invite.top_via.branch and len(cancel.vias) == 1
    assert (cancel.cseq.number, cancel.cseq.method) == (4, "CANCEL")
    assert cancel.to_tag is None and cancel.headers.get_all("Route") == ["<sip:p1;lr>"]
    assert client_key(cancel) == (invite.top_via.branch, "CANCEL")
