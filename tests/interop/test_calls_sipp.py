"""Calls through the B2BUA with sipp as the trunk and as the desk phones (Debian sip-tester).

The trunk is a sipp UAC on 127.0.0.2 (the trunk's allowed source) calling a DID with real G.711 A-law RTP
from sipp's g711a.pcap; the phones are sipp UASs whose contacts were registered first (a REGISTER with
digest auth from a separate sipp, Contact pointing at the UAS port). The phones answer in PCMU and echo
what they hear (-rtp_echo), so the relay transcodes both ways and RTP must flow in both directions: the
call.ended event carries the relay's packet counters per leg.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cti_server.calls.component import CallsComponent
from cti_server.events import Event
from tests.conftest import free_port
from tests.interop.calls.lab import DID, SCENARIOS, TRUNK_IP, calls_lab

pytestmark = pytest.mark.interop


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Any]:
    async with calls_lab(tmp_path) as start:
        yield start


def relayed(ended: Event) -> dict[str, dict[str, int]]:
    media: dict[str, dict[str, int]] = ended.data["media"]
    return media


async def test_trunk_call_to_did_rings_phone_and_audio_flows_both_ways(lab: Any) -> None:
    lab = await lab()
    phone = await lab.phone("1001", "phone_answer.xml")
    trunk = await lab.trunk_call("trunk_call.xml", "-d", "2500")
    await trunk.ok()
    await phone.ok()
    ended = await lab.ended()
    assert lab.topics() == ["call.offered", "call.ringing", "call.answered", "call.ended"]
    offered = lab.events[0].data
    assert offered["caller"] == {"number": "+15557770000", "name": None, "source": "p-asserted-identity",
                                 "private": False}
    assert offered["called_number"] == DID and offered["call_center"] == "support"
    assert lab.events[2].data["answered_by"] == "1001"
    assert ended.data["reason"] == "caller_hangup"
    media = relayed(ended)
    # The trunk's PCMA reached the phone (transcoded to PCMU) and the phone's echo came back to the trunk.
    assert media["a"]["packets_received"] > 20, media
    assert media["b"]["packets_sent"] > 20, media
    assert media["b"]["packets_received"] > 20, media
    assert media["a"]["packets_sent"] > 20, media
    assert media["a"]["transcoded"] > 20 and media["b"]["transcoded"] > 20, media


async def test_hold_and_resume_by_the_trunk(lab: Any) -> None:
    lab = await lab()
    phone = await lab.phone("1001", "phone_answer.xml")
    trunk = await lab.trunk_call("trunk_call_hold.xml")
    await trunk.ok()
    await phone.ok()
    ended = await lab.ended()
    assert lab.topics() == ["call.offered", "call.ringing", "call.answered", "call.held", "call.resumed",
                            "call.ended"]
    assert lab.events[3].data["by"] == "a"
    assert ended.data["media"]["b"]["packets_sent"] > 0  # music on hold or relayed audio reached the phone


async def test_cancel_before_answer(lab: Any) -> None:
    lab = await lab()
    phone = await lab.phone("1001", "phone_ring_cancelled.xml")
    trunk = await lab.trunk_call("trunk_call_cancel.xml")
    await trunk.ok()
    await phone.ok()
    ended = await lab.ended()
    assert ended.data["reason"] == "cancelled" and ended.data["status"] == 487
    assert "call.answered" not in lab.topics()


async def test_blind_transfer_with_refer(lab: Any) -> None:
    lab = await lab()
    fields = _fields(lab.tmp, f"1001;1002;127.0.0.1:{lab.sip_port}")
    first = await lab.phone("1001", "phone_answer_refer.xml", "-inf", str(fields))
    second = await lab.phone("1002", "phone_answer.xml")
    trunk = await lab.trunk_call("trunk_call.xml", "-d", "5000")
    await first.ok()
    await trunk.ok()
    await second.ok()
    ended = await lab.ended()
    assert "call.transferred" in lab.topics()
    transferred = next(e for e in lab.events if e.topic == "call.transferred")
    assert transferred.data["to"] == "1002" and transferred.data["kind"] == "blind"
    assert ended.data["reason"] == "caller_hangup"
    assert relayed(ended)["b"]["packets_received"] > 0  # the new party's audio


async def test_unknown_source_is_refused(lab: Any) -> None:
    lab = await lab()
    stranger = await lab.sipp("stranger", f"127.0.0.1:{lab.sip_port}", "-sf",
                              str(SCENARIOS / "trunk_call.xml"), "-s", DID, "-m", "1", "-p", "0",
                              ip="127.0.0.3")
    code, stats, _output = await stranger.result()
    assert code != 0 and int(stats.get("FailedCall(C)", "0")) == 1
    assert "SIP/2.0 403 Forbidden" in (lab.tmp / "stranger.err").read_text(errors="replace")
    assert lab.events == []


async def test_outbound_call_fails_over_from_a_dead_trunk_then_answers_its_challenge(lab: Any) -> None:
    dead_port = free_port()
    live_port = free_port()
    lab = await lab(
        trunks=[
            {"name": "dead", "host": "127.0.0.1", "port": dead_port, "allowed_sources": ["127.0.0.9"],
             "priority": 1},
            {"name": "live", "host": "127.0.0.1", "port": live_port, "allowed_sources": ["127.0.0.8"],
             "priority": 2, "username": "trunkuser", "password": "trunkpass", "realm": "carrier"},
        ],
        trunk_timeout=1.0,
    )
    carrier = await lab.sipp("carrier", "-sf", str(SCENARIOS / "carrier_challenge.xml"), "-p", str(live_port),
                             "-mp", str(free_port()), "-rtp_echo", "-m", "1")
    users = lab.tmp / "caller.csv"
    users.write_text("SEQUENTIAL\n1001;secret1001\n")
    phone = await lab.sipp("caller", f"127.0.0.1:{lab.sip_port}", "-sf",
                           str(SCENARIOS / "phone_call_out.xml"), "-s", "+4930123456", "-inf", str(users),
                           "-au", "[field0]", "-ap", "[field1]", "-m", "1", "-p", "0",
                           "-mp", str(free_port()), "-d", "1000")
    await phone.ok()
    await carrier.ok()
    ended = await lab.ended()
    answered = next(e for e in lab.events if e.topic == "call.answered")
    assert answered.data["answered_by"] == "live"
    assert answered.data["direction"] == "outbound"
    assert answered.data["caller"]["number"] == "1001"
    assert ended.data["reason"] == "caller_hangup"


def _fields(tmp: Path, line: str) -> Path:
    path = tmp / "transfer.csv"
    path.write_text(f"SEQUENTIAL\n{line}\n")
    return path


async def test_callee_hangs_up(lab: Any) -> None:
    lab = await lab()
    fields = lab.tmp / "hangup.csv"
    fields.write_text(f"SEQUENTIAL\n1001;127.0.0.1:{lab.sip_port}\n")
    phone = await lab.phone("1001", "phone_answer_hangup.xml", "-inf", str(fields), "-d", "1500")
    trunk = await lab.trunk_call("trunk_call_callee_hangs_up.xml")
    await phone.ok()
    await trunk.ok()
    ended = await lab.ended()
    assert ended.data["reason"] == "callee_hangup"
    assert ended.data["media"]["a"]["packets_received"] > 0


async def test_busy_phone_gives_the_trunk_486(lab: Any) -> None:
    lab = await lab()
    phone = await lab.phone("1001", "phone_busy.xml")
    trunk = await lab.trunk_call("trunk_call_refused.xml")
    await trunk.ok()
    await phone.ok()
    ended = await lab.ended()
    assert ended.data["reason"] == "busy" and ended.data["status"] == 486


async def test_unknown_did_is_404_and_no_call(lab: Any) -> None:
    lab = await lab()
    trunk = await lab.trunk_call("trunk_call_refused.xml", service="15559999")
    await trunk.ok()
    assert lab.events == []
    calls = next(c for c in lab.server.components if isinstance(c, CallsComponent))
    assert calls.b2bua.stats["rejected_404"] == 1


async def test_calls_beyond_the_rate_limit_get_503_with_retry_after(lab: Any) -> None:
    # One call per 100 s: the first INVITE takes the token (and is routed: 404), the next one is shed.
    lab = await lab(max_calls_per_second=0.01, overload_retry_after=7)
    first = await lab.trunk_call("trunk_call_refused.xml", service="15559999")
    await first.ok()
    shed = await lab.trunk_call("trunk_call_shed.xml")
    await shed.ok()
    assert lab.events == []
    calls = next(c for c in lab.server.components if isinstance(c, CallsComponent))
    assert calls.b2bua.stats["rejected_404"] == 1 and calls.b2bua.stats["shed_rate"] == 1


async def test_a_call_while_the_setup_limit_rings_gets_503_and_the_answer_frees_it(lab: Any) -> None:
    lab = await lab(max_calls_in_setup=1, overload_retry_after=7)
    ringing = asyncio.Event()
    lab.server.bus.subscribe("call.ringing", lambda _event: ringing.set())
    phone = await lab.phone("1001", "phone_ring_then_answer.xml")  # rings 4 s, then answers
    first = await lab.trunk_call("trunk_call.xml", "-d", "500")
    calls = next(c for c in lab.server.components if isinstance(c, CallsComponent))
    await asyncio.wait_for(ringing.wait(), 10)
    shed = await lab.sipp("trunk2", f"127.0.0.1:{lab.sip_port}", "-sf",
                          str(SCENARIOS / "trunk_call_shed.xml"), "-s", DID, "-m", "1", "-p", "0",
                          "-mp", str(free_port()), ip=TRUNK_IP)
    await shed.ok()
    assert calls.b2bua.stats["shed_in_setup"] == 1 and len(calls.b2bua.in_setup) == 1
    await first.ok()
    await phone.ok()
    assert calls.b2bua.in_setup == set() and calls.b2bua.stats["answered"] == 1
