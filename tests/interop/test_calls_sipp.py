"""Calls through the B2BUA with sipp as the trunk and as the desk phones (Debian sip-tester).

The trunk is a sipp UAC on 127.0.0.2 (the trunk's allowed source) calling a DID with real G.711 A-law RTP
from sipp's g711a.pcap; the phones are sipp UASs whose contacts were registered first (a REGISTER with
digest auth from a separate sipp, Contact pointing at the UAS port). The phones answer in PCMU and echo
what they hear (-rtp_echo), so the relay transcodes both ways and RTP must flow in both directions: the
call.ended event carries the relay's packet counters per leg.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cti_server.events import Event
from cti_server.server import CtiServer
from tests.conftest import free_port, make_config
from tests.interop.conftest import read_sipp_stats, require_tool

pytestmark = pytest.mark.interop

SCENARIOS = Path(__file__).parent / "calls"
TRUNK_IP = "127.0.0.2"
DID = "15550100"
USERS = {"1001": "secret1001", "1002": "secret1002"}
RUN_TIMEOUT = 25.0


@dataclass
class Sipp:
    """One sipp process."""

    process: asyncio.subprocess.Process
    stat_file: Path
    name: str

    async def result(self, seconds: float = RUN_TIMEOUT) -> tuple[int, dict[str, str], str]:
        try:
            async with asyncio.timeout(seconds):
                out, _ = await self.process.communicate()
        except TimeoutError:
            self.process.kill()
            out, _ = await self.process.communicate()
        code = self.process.returncode if self.process.returncode is not None else -1
        return code, read_sipp_stats(self.stat_file), out.decode(errors="replace")[-3000:]

    async def ok(self, seconds: float = RUN_TIMEOUT) -> dict[str, str]:
        code, stats, output = await self.result(seconds)
        assert code == 0, f"sipp {self.name} failed ({code}): {output}"
        return stats

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


class Lab:
    """The server plus the sipps of one test, and the call events it published."""

    def __init__(self, server: CtiServer, sip_port: int, tmp: Path) -> None:
        self.server = server
        self.sip_port = sip_port
        self.tmp = tmp
        self.events: list[Event] = []
        self.sipps: list[Sipp] = []
        server.bus.subscribe("call.*", self.events.append)

    async def sipp(self, name: str, *args: str, ip: str = "127.0.0.1") -> Sipp:
        binary = require_tool("sipp", "sip-tester")
        stat_file = self.tmp / f"{name}.csv"
        error_file = self.tmp / f"{name}.err"
        argv = [binary, *args, "-i", ip, "-nostdin", "-timeout", f"{int(RUN_TIMEOUT)}s", "-timeout_error",
                "-trace_stat", "-stf", str(stat_file), "-trace_err", "-error_file", str(error_file)]
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, cwd=self.tmp)
        run = Sipp(process, stat_file, name)
        self.sipps.append(run)
        return run

    async def phone(self, user: str, scenario: str, *extra: str) -> Sipp:
        """Start a phone's answering sipp, then register its contact (user, digest, Contact port)."""
        port = free_port()
        uas = await self.sipp(f"phone{user}", "-sf", str(SCENARIOS / scenario), "-p", str(port),
                              "-mp", str(free_port()), "-rtp_echo", "-m", "1", *extra)
        users = self.tmp / f"reg{user}.csv"
        users.write_text(f"SEQUENTIAL\n{user};{USERS[user]};{port}\n")
        register = await self.sipp(f"register{user}", f"127.0.0.1:{self.sip_port}", "-sf",
                                   str(SCENARIOS / "phone_register.xml"), "-inf", str(users),
                                   "-au", "[field0]", "-ap", "[field1]", "-m", "1", "-p", "0")
        await register.ok()
        return uas

    async def trunk_call(self, scenario: str, *extra: str, service: str = DID) -> Sipp:
        return await self.sipp("trunk", f"127.0.0.1:{self.sip_port}", "-sf", str(SCENARIOS / scenario),
                               "-s", service, "-m", "1", "-p", "0", "-mp", str(free_port()), *extra,
                               ip=TRUNK_IP)

    def topics(self) -> list[str]:
        return [e.topic for e in self.events]

    async def ended(self, seconds: float = 10.0) -> Event:
        async with asyncio.timeout(seconds):
            while True:
                for event in self.events:
                    if event.topic == "call.ended":
                        return event
                await asyncio.sleep(0.05)


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Any]:
    labs: list[Lab] = []

    async def start(**calls: Any) -> Lab:
        sip_port = free_port()
        # Below the ephemeral range (where sipp's media ports come from), apart from other tests' ranges.
        base = random.randrange(20000, 32000, 200)
        calls.setdefault("trunks", [{"name": "carrier", "host": TRUNK_IP, "allowed_sources": [TRUNK_IP]}])
        calls.setdefault("dids", [{"number": f"+{DID}", "call_center": "support", "users": ["1001"]}])
        config = make_config(
            sip={"udp_port": sip_port, "tcp_port": sip_port, "digest_algorithms": ["MD5"]},
            media={"rtp_port_min": base, "rtp_port_max": base + 199},
            calls=calls,
        )
        server = CtiServer(config)
        await server.start()
        lab = Lab(server, sip_port, tmp_path)
        labs.append(lab)
        return lab

    yield start
    for lab in labs:
        for run in lab.sipps:
            run.kill()
            with contextlib.suppress(Exception):
                await run.process.wait()
        await lab.server.stop()


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


async def test_outbound_call_fails_over_from_a_dead_trunk(lab: Any) -> None:
    dead_port = free_port()
    live_port = free_port()
    lab = await lab(
        trunks=[
            {"name": "dead", "host": "127.0.0.1", "port": dead_port, "allowed_sources": ["127.0.0.9"],
             "priority": 1},
            {"name": "live", "host": "127.0.0.1", "port": live_port, "allowed_sources": ["127.0.0.8"],
             "priority": 2},
        ],
        trunk_timeout=1.0,
    )
    carrier = await lab.sipp("carrier", "-sf", str(SCENARIOS / "phone_answer.xml"), "-p", str(live_port),
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
