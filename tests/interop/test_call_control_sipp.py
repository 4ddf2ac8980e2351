"""Call control edge cases through the B2BUA with sipp as the trunk and the phone (Debian sip-tester).

Each test drives a real sipp trunk (127.0.0.2) and a registered sipp phone through the server with short
timers in its config: a 2xx never ACKed (RFC 3261 13.3.1.4), a call without RTP (media watchdog), hold
longer than the RTP timeout, early media in a 183 (RTP before the answer), a delayed offer (RFC 3261
13.2.1: offer in the 200, answer in the ACK), re-INVITE glare (RFC 3261 14.1/14.2) and a session timer
that is never refreshed (RFC 4028), and a trunk interop profile. Scenarios: tests/interop/calls/cc_*.xml.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from cti_server.calls.b2bua import B2bua
from cti_server.calls.component import CallsComponent
from cti_server.events import Event
from tests.interop.calls.lab import TRUNK_IP, Lab, calls_lab

pytestmark = pytest.mark.interop

#: T1 50 ms, T2 400 ms: a 2xx is resent for 64*T1 = 3.2 s.
FAST_SIP = {"timers": {"t1": 0.05, "t2": 0.4, "t4": 0.5}}


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Any]:
    async with calls_lab(tmp_path) as start:
        yield start


@pytest.fixture
def short_session_timers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the test config go below RFC 4028's 90 s Min-SE so session timers run in seconds."""
    monkeypatch.setattr("cti_server.config.MIN_SE_FLOOR", 1)


def b2bua_of(lab: Lab) -> B2bua:
    return next(c for c in lab.server.components if isinstance(c, CallsComponent)).b2bua


async def test_2xx_never_acked_is_resent_then_both_legs_get_bye(lab: Any) -> None:
    lab = await lab(sip=FAST_SIP)
    phone = await lab.phone("1001", "phone_answer.xml")
    trunk = await lab.trunk_call("cc_trunk_call_no_ack.xml")
    await trunk.ok()  # got the 200 (and its copies) and then a BYE
    await phone.ok()  # its call got a BYE too
    ended = await lab.ended()
    assert ended.data["reason"] == "ack_timeout"
    assert lab.topics() == ["call.offered", "call.ringing", "call.answered", "call.ended"]
    b2bua = b2bua_of(lab)
    assert b2bua.stats["ended_ack_timeout"] == 1
    # T1 doubling to T2 over 64*T1: 0.05, 0.1, 0.2, then every 0.4 s until 3.2 s: about 10 copies.
    assert b2bua.sip.stats["retransmissions_sent"] >= 6


async def test_call_without_rtp_is_ended_by_the_media_watchdog(lab: Any) -> None:
    lab = await lab(media={"rtp_timeout": 1.0})
    phone = await lab.phone("1001", "phone_answer.xml")  # echoes only what it hears: nothing
    trunk = await lab.trunk_call("cc_trunk_call_silent.xml")
    await trunk.ok()
    await phone.ok()
    ended = await lab.ended()
    assert ended.data["reason"] == "media_timeout"
    assert ended.data["media"]["a"]["packets_received"] == 0


@pytest.mark.parametrize(("direction", "phone_scenario", "held"), [
    ("inactive", "phone_answer.xml", True),  # hold: the phone hears music on hold and echoes it
    ("recvonly", "cc_phone_answer_talking.xml", False),  # not a hold: the trunk only listens
])
async def test_silence_the_peer_announced_does_not_end_the_call(lab: Any, direction: str,
                                                                 phone_scenario: str, held: bool) -> None:
    lab = await lab(media={"rtp_timeout": 2.0})  # the silent trunk re-INVITEs 0.3 s after its ACK
    phone = await lab.phone("1001", phone_scenario)
    trunk = await lab.trunk_call("cc_trunk_call_silent_hold.xml", "-set", "dir", direction)  # for 5 s
    await trunk.ok()
    await phone.ok()
    ended = await lab.ended()
    assert ended.data["reason"] == "caller_hangup"
    assert ("call.held" in lab.topics()) is held
    assert ended.data["media"]["a"]["packets_received"] == 0  # the trunk never sent RTP
    assert b2bua_of(lab).stats["ended_media_timeout"] == 0


async def test_early_media_in_183_reaches_the_trunk_before_the_answer(lab: Any) -> None:
    lab = await lab()
    b2bua = b2bua_of(lab)
    at_answer: list[dict[str, Any]] = []

    def snapshot(_event: Event) -> None:
        for session in b2bua.sessions.values():
            assert session.a is not None
            at_answer.append(b2bua.media.leg_stats(session.a.leg_id))

    lab.server.bus.subscribe("call.answered", snapshot)
    phone = await lab.phone("1001", "cc_phone_early_media.xml")
    trunk = await lab.trunk_call("cc_trunk_call_early_media.xml")  # fails without SDP in a 183
    await phone.ok()
    await trunk.ok()
    ended = await lab.ended()
    assert ended.data["reason"] == "caller_hangup"
    # The phone played G.711 for 2 s before its 200: relayed to the trunk while the call was ringing.
    assert len(at_answer) == 1 and int(at_answer[0]["packets_sent"]) > 20, at_answer
    assert lab.topics()[:3] == ["call.offered", "call.ringing", "call.answered"]


async def test_delayed_offer_from_the_trunk(lab: Any) -> None:
    lab = await lab()
    phone = await lab.phone("1001", "phone_answer.xml")
    trunk = await lab.trunk_call("cc_trunk_call_delayed_offer.xml", "-d", "2500")  # checks the 200's offer
    await trunk.ok()
    await phone.ok()
    ended = await lab.ended()
    assert ended.data["reason"] == "caller_hangup"
    media = ended.data["media"]
    # The trunk's RTP (to the port of our offer) reached the phone, and the phone's echo came back to the
    # address the ACK's answer gave.
    assert media["a"]["packets_received"] > 20 and media["b"]["packets_sent"] > 20, media
    assert media["b"]["packets_received"] > 20 and media["a"]["packets_sent"] > 20, media
    # PCMA toward the trunk (the codec its ACK answered with), PCMU toward the phone: transcoded both ways.
    assert media["a"]["transcoded"] > 20 and media["b"]["transcoded"] > 20, media


@pytest.mark.usefixtures("short_session_timers")
async def test_reinvite_glare_is_answered_491_and_our_reinvite_retried(lab: Any) -> None:
    lab = await lab(min_se=2)
    phone = await lab.phone("1001", "phone_answer.xml")
    with capture_logs() as logs:
        trunk = await lab.trunk_call("cc_trunk_call_glare.xml")
        await trunk.ok()  # got 491 for its re-INVITE, then our re-INVITE again after its 491
        await phone.ok()
        ended = await lab.ended()
    assert ended.data["reason"] == "caller_hangup"
    stats = b2bua_of(lab).stats
    assert stats["glare_491_sent"] == 1 and stats["glare_491_received"] == 1
    # The trunk chose this dialog's Call-ID: we wait 0-2 s (RFC 3261 section 14.1).
    assert [0 <= e["retry_in"] <= 2.0 for e in logs if e["event"] == "session_refresh_glare"] == [True]


@pytest.mark.usefixtures("short_session_timers")
async def test_reinvite_glare_on_the_leg_whose_call_id_we_chose(lab: Any) -> None:
    lab = await lab(min_se=2)
    phone = await lab.phone("1001", "cc_phone_answer_glare.xml")  # our refresh after 5 s meets its re-INVITE
    with capture_logs() as logs:
        trunk = await lab.trunk_call("trunk_call.xml", "-d", "10500")
        await phone.ok()  # got 491 for its re-INVITE, our re-INVITE again after its 491, then BYE
        await trunk.ok()
        ended = await lab.ended()
    assert ended.data["reason"] == "caller_hangup"
    stats = b2bua_of(lab).stats
    assert stats["glare_491_sent"] == 1 and stats["glare_491_received"] == 1
    assert [2.1 <= e["retry_in"] <= 4.0 for e in logs if e["event"] == "session_refresh_glare"] == [True]


@pytest.mark.usefixtures("short_session_timers")
async def test_session_timer_not_refreshed_ends_both_legs(lab: Any) -> None:
    lab = await lab(min_se=2, session_expires=3)
    phone = await lab.phone("1001", "phone_answer.xml")
    trunk = await lab.trunk_call("cc_trunk_call_session_expires.xml")  # 3 s, trunk refreshes: never does
    await trunk.ok()  # got BYE
    await phone.ok()  # got BYE
    ended = await lab.ended()
    assert ended.data["reason"] == "session_timer_expired"


async def test_trunk_profile_no_session_timer_keeps_rfc_4028_off_that_trunk(lab: Any) -> None:
    lab = await lab(trunks=[{"name": "carrier", "host": TRUNK_IP, "allowed_sources": [TRUNK_IP],
                             "profile": "no_session_timer"}])
    phone = await lab.phone("1001", "phone_answer.xml")
    trunk = await lab.trunk_call("cc_trunk_call_no_timer_profile.xml")  # fails on Session-Expires
    await trunk.ok()
    await phone.ok()
    ended = await lab.ended()
    assert ended.data["reason"] == "caller_hangup"
