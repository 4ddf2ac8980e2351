"""Server transactions (RFC 3261 17.2, RFC 6026) on a fake clock: 100 Trying, timers G, H, I, J, L,
retransmission absorption, and the UAS core's 2xx retransmission (13.3.1.4)."""

from __future__ import annotations

import pytest

from cti_server.config import SipTimersConfig
from cti_server.sip.matching import server_key
from cti_server.sip.timers import TimerValues
from cti_server.sip.transaction import (
    ACCEPTED,
    COMPLETED,
    CONFIRMED,
    PROCEEDING,
    TERMINATED,
    TRYING,
    DeliverAck,
    InviteServerTransaction,
    InviteSuccessRetransmission,
    NonInviteServerTransaction,
    Output,
    Terminated,
    TimedOut,
    Transmit,
    TransportFailed,
)
from tests.sip.tx_messages import request, response

UDP = TimerValues.from_config(SipTimersConfig(), reliable=False)
TCP = TimerValues.from_config(SipTimersConfig(), reliable=True)


def transmitted(outputs: list[Output]) -> list[bytes]:
    return [o.data for o in outputs if isinstance(o, Transmit)]


def status_lines(outputs: list[Output]) -> list[str]:
    return [o.data.split(b"\r\n", 1)[0].decode() for o in outputs if isinstance(o, Transmit)]


def invite_tx(timers: TimerValues = UDP) -> tuple[InviteServerTransaction, list[Output]]:
    invite = request("INVITE")
    tx = InviteServerTransaction(server_key(invite), invite, timers)
    return tx, tx.receive_request(invite, 0.0)


def test_invite_server_sends_100_trying_at_once_and_repeats_the_last_provisional() -> None:
    tx, out = invite_tx()
    assert status_lines(out) == ["SIP/2.0 100 Trying"] and tx.state == PROCEEDING
    invite = request("INVITE")
    assert status_lines(tx.receive_request(invite, 0.3)) == ["SIP/2.0 100 Trying"]
    assert status_lines(tx.send_response(response(invite, 180), 0.5)) == ["SIP/2.0 180 Ringing"]
    assert status_lines(tx.receive_request(invite, 0.6)) == ["SIP/2.0 180 Ringing"]
    assert tx.next_deadline() is None  # no timers while the TU decides


def test_invite_server_failure_retransmits_with_g_until_h() -> None:
    tx, _ = invite_tx()
    invite = request("INVITE")
    out = tx.send_response(response(invite, 486), 1.0)
    assert status_lines(out) == ["SIP/2.0 486 Busy Here"] and tx.state == COMPLETED
    assert tx.deadlines == {"G": 1.5, "H": 33.0}
    times = []
    while (deadline := tx.next_deadline()) is not None and deadline < 33.0:
        assert status_lines(tx.fire_timers(deadline)) == ["SIP/2.0 486 Busy Here"]
        times.append(deadline)
    assert times == [1.5, 2.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5, 32.5]  # G doubles up to T2
    assert tx.fire_timers(33.0) == [TimedOut("H"), Terminated()]


def test_invite_server_ack_confirms_then_timer_i_absorbs_ack_retransmissions() -> None:
    tx, _ = invite_tx()
    invite = request("INVITE")
    tx.send_response(response(invite, 404), 1.0)
    assert status_lines(tx.receive_request(invite, 1.2)) == ["SIP/2.0 404 Not Found"]
    ack = request("ACK", to_tag="tt1")
    assert tx.receive_ack(ack, 1.4) == [] and tx.state == CONFIRMED
    assert tx.deadlines == {"I": pytest.approx(6.4)}
    assert tx.receive_ack(ack, 2.0) == []
    assert tx.receive_request(invite, 2.1) == []  # no response in Confirmed
    assert tx.fire_timers(6.4) == [Terminated()]


def test_invite_server_over_tcp_ends_on_ack_without_retransmitting() -> None:
    tx, _ = invite_tx(TCP)
    tx.send_response(response(request("INVITE"), 480), 1.0)
    assert tx.deadlines == {"H": 33.0}
    assert tx.receive_ack(request("ACK", to_tag="tt1"), 1.1) == [Terminated()]


def test_invite_server_2xx_moves_to_accepted_with_timer_l() -> None:
    tx, _ = invite_tx()
    invite = request("INVITE")
    ok = response(invite, 200)
    assert status_lines(tx.send_response(ok, 2.0)) == ["SIP/2.0 200 OK"]
    assert tx.state == ACCEPTED and tx.deadlines == {"L": 34.0}
    assert tx.receive_request(invite, 2.5) == []  # RFC 6026: INVITE retransmissions absorbed
    assert status_lines(tx.send_response(ok, 2.5)) == ["SIP/2.0 200 OK"]  # the TU's retransmission
    ack = request("ACK", to_tag="tt1")
    assert tx.receive_ack(ack, 3.0) == [DeliverAck(ack)]
    assert tx.send_response(response(invite, 500), 3.5) == []  # no failure after a 2xx
    assert tx.fire_timers(34.0) == [Terminated()]


def test_invite_server_transport_error_terminates() -> None:
    tx, _ = invite_tx()
    assert tx.transport_error(0.2) == [TransportFailed(), Terminated()]


def test_non_invite_server_absorbs_retransmissions_until_answered_then_repeats_the_answer() -> None:
    options = request("OPTIONS")
    tx = NonInviteServerTransaction(server_key(options), options, UDP)
    assert tx.receive_request(options, 0.0) == [] and tx.state == TRYING
    assert tx.receive_request(options, 0.5) == []  # Trying: the TU has not answered yet
    assert status_lines(tx.send_response(response(options, 200), 0.6)) == ["SIP/2.0 200 OK"]
    assert tx.state == COMPLETED and tx.deadlines == {"J": pytest.approx(32.6)}
    assert status_lines(tx.receive_request(options, 1.0)) == ["SIP/2.0 200 OK"]
    assert tx.send_response(response(options, 500), 1.1) == []  # one final response only
    assert tx.fire_timers(32.6) == [Terminated()]
    assert tx.receive_request(options, 33.0) == []


def test_non_invite_server_provisional_is_repeated_in_proceeding() -> None:
    register = request("REGISTER")
    tx = NonInviteServerTransaction(server_key(register), register, UDP)
    tx.receive_request(register, 0.0)
    assert status_lines(tx.send_response(response(register, 100), 0.1)) == ["SIP/2.0 100 Trying"]
    assert tx.state == PROCEEDING
    assert status_lines(tx.receive_request(register, 0.5)) == ["SIP/2.0 100 Trying"]
    assert status_lines(tx.send_response(response(register, 200), 0.6)) == ["SIP/2.0 200 OK"]


def test_non_invite_server_over_tcp_terminates_with_the_final_response() -> None:
    bye = request("BYE", to_tag="tt1")
    tx = NonInviteServerTransaction(server_key(bye), bye, TCP)
    tx.receive_request(bye, 0.0)
    out = tx.send_response(response(bye, 200), 0.1)
    assert status_lines(out) == ["SIP/2.0 200 OK"] and out[-1] == Terminated()
    assert tx.state == TERMINATED


def test_uas_core_retransmits_2xx_until_ack_13_3_1_4() -> None:
    invite = request("INVITE")
    ok = response(invite, 200)
    tx = InviteSuccessRetransmission(("call-1@test", 1), invite, UDP)
    assert tx.start(ok, 0.0) == []  # the server transaction sent it the first time
    times = []
    for _ in range(5):
        deadline = tx.next_deadline()
        assert deadline is not None
        assert transmitted(tx.fire_timers(deadline)) == [ok.serialize()]
        times.append(deadline)
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5]
    assert tx.receive_ack(request("ACK", to_tag="tt1"), 12.0) == [Terminated()]


def test_uas_core_gives_up_on_2xx_after_64_t1() -> None:
    invite = request("INVITE")
    tx = InviteSuccessRetransmission(("call-1@test", 1), invite, TCP)
    tx.start(response(invite, 200), 0.0)
    assert tx.deadlines == {"H": 32.0}  # nothing to resend on TCP, but the ACK is still awaited
    assert tx.fire_timers(32.0) == [TimedOut("H"), Terminated()]


def test_retransmissions_matched_from_raw_bytes_need_no_message() -> None:
    tx, _ = invite_tx()
    assert status_lines(tx.receive_retransmission(0.2)) == ["SIP/2.0 100 Trying"]
    tx.send_response(response(request("INVITE"), 486), 0.5)
    assert status_lines(tx.receive_retransmission(0.6)) == ["SIP/2.0 486 Busy Here"]
    assert tx.absorb_ack(0.7) == [] and tx.state == CONFIRMED
    assert tx.absorb_ack(0.8) == []
    options = request("OPTIONS")
    ntx = NonInviteServerTransaction(server_key(options), options, UDP)
    ntx.receive_request(options, 0.0)
    assert ntx.receive_retransmission(0.1) == []
    ntx.send_response(response(options, 200), 0.2)
    assert status_lines(ntx.receive_retransmission(0.3)) == ["SIP/2.0 200 OK"]


def test_absorb_ack_refuses_states_where_the_ack_matters() -> None:
    tx, _ = invite_tx()
    tx.send_response(response(request("INVITE"), 200), 0.5)
    with pytest.raises(ValueError, match="accepted"):
        tx.absorb_ack(0.6)  # in Accepted the ACK goes to the TU: the caller must parse it
