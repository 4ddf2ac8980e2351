"""Two real RTP endpoints on loopback with the relay between them, driven by plain UDP sockets.

Each test is bounded by timeouts; nothing here asserts wall-clock durations, only what arrived.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from cti_server.media.dtmf import DtmfDigit, TelephoneEvent, telephone_event_frames
from cti_server.media.endpoint import MediaSocketPoller, RtpEndpoint
from cti_server.media.g711 import PCMU
from cti_server.media.ports import RtpPortAllocator
from cti_server.media.relay import LegMedia, RtpRelay
from cti_server.media.rtcp import Bye, SenderReport, SourceDescription, parse_compound
from cti_server.media.rtp import RtpPacket
from tests.media.test_g711 import reference_alaw_encode, reference_ulaw_encode, reference_ulaw_level

HOST = "127.0.0.1"
TIMEOUT = 5.0


class Peer:
    """A phone played by a non-blocking UDP socket on loopback."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.setblocking(False)
        self.address: tuple[str, int] = self.sock.getsockname()

    def send(self, packet: RtpPacket, to: tuple[str, int]) -> None:
        self.sock.sendto(packet.serialize(), to)

    async def receive(self, count: int) -> list[RtpPacket]:
        loop = asyncio.get_running_loop()
        packets = []
        for _ in range(count):
            data = await asyncio.wait_for(loop.sock_recv(self.sock, 2048), TIMEOUT)
            packets.append(RtpPacket.parse(data))
        return packets

    def close(self) -> None:
        self.sock.close()


@dataclass
class Call:
    a: RtpEndpoint
    b: RtpEndpoint
    relay: RtpRelay
    caller: Peer
    callee: Peer
    digits: list[tuple[str, DtmfDigit]]


@pytest.fixture(params=[True, False], ids=["media-thread", "event-loop"])
async def call(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Call]:
    monkeypatch.setattr(MediaSocketPoller, "threaded", request.param)
    base = random.randrange(30000, 60000, 2)
    allocator = RtpPortAllocator(base, base + 199)
    a = await RtpEndpoint.open(HOST, allocator, call_id="loopback", leg="a", rtcp_interval=0)
    b = await RtpEndpoint.open(HOST, allocator, call_id="loopback", leg="b", rtcp_interval=0)
    caller, callee = Peer(), Peer()
    # The caller is "behind NAT": its SDP names an address it does not send from; symmetric RTP fixes it.
    a.set_remote((HOST, 9), frozenset({0, 101}))
    b.set_remote(callee.address, frozenset({8, 96}))
    digits: list[tuple[str, DtmfDigit]] = []
    relay = RtpRelay(a, LegMedia("PCMU", 0, 101), b, LegMedia("PCMA", 8, 96), call_id="loopback",
                     on_digit=lambda leg, digit: digits.append((leg, digit)))
    yield Call(a, b, relay, caller, callee, digits)
    relay.close()
    a.close()
    b.close()
    caller.close()
    callee.close()
    assert allocator.in_use == 0


def audio(seq: int, ssrc: int, pt: int, payload: bytes) -> RtpPacket:
    return RtpPacket(pt, seq, 160 * seq, ssrc, payload)


async def test_audio_is_transcoded_both_ways_and_latched(call: Call) -> None:
    ulaw = bytes(range(96, 256))
    for seq in range(10):
        call.caller.send(audio(seq, 0xCA11, 0, ulaw), call.a.local_address)
    received = await call.callee.receive(10)
    assert [p.sequence_number for p in received] == list(range(10))
    assert {p.payload_type for p in received} == {8}
    expected = bytes(reference_alaw_encode(reference_ulaw_level(c)) for c in ulaw)
    assert {p.payload for p in received} == {expected}
    assert call.a.latch.destination == call.caller.address

    alaw = bytes([0xD5, 0x55, 0xAA, 0x2A] * 40)
    for seq in range(5):
        call.callee.send(audio(seq, 0xCA1E, 8, alaw), call.b.local_address)
    back = await call.caller.receive(5)  # arrives at the latched address, not the SDP's port 9
    assert {p.payload_type for p in back} == {0}
    assert {p.payload for p in back} == {bytes(reference_ulaw_encode(v) for v in (8, -8, 32256, -32256)) * 40}
    stats = call.relay.stats()
    assert stats["a"]["forwarded"] == 10 and stats["b"]["transcoded"] == 5


async def test_packets_queued_before_the_latch_keep_their_order(call: Call) -> None:
    ulaw = b"\xff" * 160
    for seq in range(5):  # queued on the RTP socket, mostly before the first one latches leg a
        call.caller.send(audio(seq, 0xCA11, 0, ulaw), call.a.local_address)
    (first,) = await call.callee.receive(1)
    assert first.sequence_number == 0
    for seq in range(5, 10):  # after the latch: these reach leg a's connected socket
        call.caller.send(audio(seq, 0xCA11, 0, ulaw), call.a.local_address)
    received = await call.callee.receive(9)
    assert [p.sequence_number for p in received] == list(range(1, 10))


async def test_dtmf_digit_delivered_once_and_relayed_with_mapped_type(call: Call) -> None:
    frames = telephone_event_frames("5", duration_ms=60)
    for seq, frame in enumerate(frames):
        event = RtpPacket(101, 500 + seq, 4000, 0xCA11, frame.payload, frame.marker)
        call.caller.send(event, call.a.local_address)
    received = await call.callee.receive(len(frames))
    assert {p.payload_type for p in received} == {96}
    assert [TelephoneEvent.parse(p.payload).end for p in received].count(True) == 3
    assert [(leg, d.digit) for leg, d in call.digits] == [("a", "5")]


async def test_digits_reach_on_digit_on_the_event_loop_thread(call: Call) -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []
    reported = asyncio.Event()

    def on_digit(_leg: str, _digit: DtmfDigit) -> None:
        threads.append(threading.get_ident())
        reported.set()

    relay = RtpRelay(call.a, LegMedia("PCMU", 0, 101), call.b, LegMedia("PCMA", 8, 96), on_digit=on_digit)
    try:
        for seq, frame in enumerate(telephone_event_frames("7", duration_ms=60)):
            event = RtpPacket(101, 700 + seq, 8000, 0xCA11, frame.payload, frame.marker)
            call.caller.send(event, call.a.local_address)
        await asyncio.wait_for(reported.wait(), TIMEOUT)
        assert threads == [loop_thread]
        assert call.a.in_media_thread == MediaSocketPoller.threaded
    finally:
        relay.close()


async def test_music_on_hold_is_paced_and_continues_the_stream(call: Call) -> None:
    # The caller sends first so that leg a is latched (it is behind NAT), then hears the callee.
    call.caller.send(audio(0, 0xCA11, 0, b"\xff" * 160), call.a.local_address)
    await call.callee.receive(1)
    for seq in range(3):
        call.callee.send(audio(seq, 0xCA1E, 8, b"\xd5" * 160), call.b.local_address)
    relayed = await call.caller.receive(3)

    frames = [bytes([i]) * 160 for i in range(4)]
    call.relay.start_player("a", frames)
    held = await call.caller.receive(8)
    call.relay.stop_player("a")
    # Relayed audio from the callee is not heard while on hold.
    assert [p.payload for p in held] == [frames[i % 4] for i in range(8)]
    last = relayed[-1]
    assert {p.ssrc for p in held} == {last.ssrc}
    assert [p.sequence_number for p in held] == [(last.sequence_number + 1 + i) & 0xFFFF for i in range(8)]
    steps = {(held[i + 1].timestamp - held[i].timestamp) & 0xFFFFFFFF for i in range(7)}
    assert steps == {160}
    assert held[0].marker is True and not any(p.marker for p in held[1:])

    call.callee.send(audio(3, 0xCA1E, 8, b"\xd5" * 160), call.b.local_address)
    (resumed,) = await call.caller.receive(1)
    assert resumed.sequence_number == (held[-1].sequence_number + 1) & 0xFFFF
    assert resumed.ssrc == last.ssrc
    assert resumed.marker is True


async def test_player_frames_of_another_ptime_are_recut_to_the_leg(call: Call) -> None:
    call.caller.send(audio(0, 0xCA11, 0, b"\xff" * 160), call.a.local_address)
    await call.callee.receive(1)
    thirty_ms = [bytes([1]) * 240, bytes([2]) * 240]  # 480 bytes: three 20 ms frames
    call.relay.start_player("a", thirty_ms)
    played = await call.caller.receive(4)
    call.relay.stop_player("a")
    assert [p.payload for p in played] == [
        b"\x01" * 160, b"\x01" * 80 + b"\x02" * 80, b"\x02" * 160, b"\x01" * 160
    ]


async def test_recording_tap_hears_both_directions_decoded(call: Call) -> None:
    heard: list[tuple[str, bytes]] = []
    call.relay.add_tap(lambda leg, pcm: heard.append((leg, pcm)))
    call.caller.send(audio(1, 0xCA11, 0, bytes(range(160))), call.a.local_address)
    await call.callee.receive(1)
    call.callee.send(audio(1, 0xCA1E, 8, b"\xd5" * 160), call.b.local_address)
    await call.caller.receive(1)
    assert [leg for leg, _ in heard] == ["a", "b"]
    assert heard[0][1] == PCMU.decode(bytes(range(160)))


async def test_strangers_are_rejected_after_latching(call: Call) -> None:
    call.caller.send(audio(1, 0xCA11, 0, b"\xff" * 160), call.a.local_address)
    await call.callee.receive(1)
    stranger = Peer()
    try:
        stranger.send(audio(2, 0x5EE, 0, b"\x00" * 160), call.a.local_address)
        call.caller.send(audio(3, 0xCA11, 0, b"\xff" * 160), call.a.local_address)
        (next_packet,) = await call.callee.receive(1)
        assert next_packet.sequence_number == 3  # the stranger's packet never reached the callee
        assert call.a.counters.rejected_source == 1
    finally:
        stranger.close()


async def test_nat_rebinding_with_the_same_ssrc_relatches(call: Call) -> None:
    call.caller.send(audio(1, 0xCA11, 0, b"\xff" * 160), call.a.local_address)
    await call.callee.receive(1)
    moved = Peer()  # the caller's NAT gave it a new public port; its SSRC stays
    try:
        moved.send(audio(2, 0xCA11, 0, b"\xff" * 160), call.a.local_address)
        (relayed,) = await call.callee.receive(1)
        assert relayed.sequence_number == 2
        assert call.a.latch.destination == moved.address
        call.callee.send(audio(1, 0xCA1E, 8, b"\xd5" * 160), call.b.local_address)
        (back,) = await moved.receive(1)
        assert back.payload == bytes([reference_ulaw_encode(8)]) * 160
        # Another SSRC from the old address is a stranger now.
        call.caller.send(audio(3, 0xBAD, 0, b"\xff" * 160), call.a.local_address)
        moved.send(audio(4, 0xCA11, 0, b"\xff" * 160), call.a.local_address)
        (after,) = await call.callee.receive(1)
        assert after.sequence_number == 4
    finally:
        moved.close()


async def test_rebridging_a_leg_keeps_its_stream_and_old_relay_close_does_not_detach_it(call: Call) -> None:
    call.caller.send(audio(1, 0xCA11, 0, b"\xff" * 160), call.a.local_address)
    await call.callee.receive(1)
    call.callee.send(audio(1, 0xCA1E, 8, b"\xd5" * 160), call.b.local_address)
    (before,) = await call.caller.receive(1)
    # Transfer: leg a is bridged to a new leg c; the old relay is closed afterwards.
    allocator = RtpPortAllocator(call.b.port + 2000, call.b.port + 2009)
    c = await RtpEndpoint.open(HOST, allocator, call_id="loopback", leg="c", rtcp_interval=0)
    third = Peer()
    try:
        c.set_remote(third.address, frozenset({0}))
        relay = RtpRelay(call.a, LegMedia("PCMU", 0, 101), c, LegMedia("PCMU", 0))
        call.relay.close()
        third.send(audio(500, 0x3333, 0, b"\x01" * 160), c.local_address)
        (after,) = await call.caller.receive(1)
        assert after.ssrc == before.ssrc  # leg a still hears one stream
        assert after.sequence_number == (before.sequence_number + 1) & 0xFFFF
        assert after.marker is True
        call.caller.send(audio(2, 0xCA11, 0, b"\xff" * 160), call.a.local_address)
        (forward,) = await third.receive(1)
        assert forward.sequence_number == 2
        relay.close()
    finally:
        c.close()
        third.close()


async def test_closed_relay_no_longer_forwards_from_the_latched_socket(call: Call) -> None:
    call.caller.send(audio(1, 0xCA11, 0, b"\xff" * 160), call.a.local_address)
    await call.callee.receive(1)  # latched: leg a reads the caller on its connected socket now
    call.relay.close()
    loop = asyncio.get_running_loop()
    got: asyncio.Future[bytes] = loop.create_future()
    call.a.on_rtp = lambda data: loop.call_soon_threadsafe(lambda: got.done() or got.set_result(data))
    call.caller.send(audio(2, 0xCA11, 0, b"\xff" * 160), call.a.local_address)
    data = await asyncio.wait_for(got, TIMEOUT)  # the endpoint's handler has it, the relay does not
    assert RtpPacket.parse(data).sequence_number == 2
    with pytest.raises(BlockingIOError):
        call.callee.sock.recv(2048)
    assert call.a.counters.packets_received == 2 and call.b.counters.packets_sent == 1


async def test_rtp_timeout_is_reported() -> None:
    base = random.randrange(30000, 60000, 2)
    allocator = RtpPortAllocator(base, base + 9)
    endpoint = await RtpEndpoint.open(HOST, allocator, rtp_timeout=0.2, call_id="quiet", leg="a",
                                      rtcp_interval=0)
    timed_out = asyncio.Event()
    endpoint.on_timeout = lambda _endpoint: timed_out.set()
    try:
        await asyncio.wait_for(timed_out.wait(), TIMEOUT)
    finally:
        endpoint.close()


async def test_sender_reports_and_bye_go_to_the_rtcp_address() -> None:
    base = random.randrange(30000, 60000, 2)
    allocator = RtpPortAllocator(base, base + 9)
    endpoint = await RtpEndpoint.open(HOST, allocator, call_id="rtcp", leg="a", rtcp_interval=0.05)
    phone, phone_rtcp = Peer(), Peer()
    loop = asyncio.get_running_loop()
    try:
        endpoint.set_remote(phone.address, frozenset({0}), rtcp_address=phone_rtcp.address)
        for seq in range(3):
            endpoint.send_rtp(audio(seq, 0x5151, 0, b"\xff" * 160).serialize())
        endpoint.outgoing.switch_source("test", 0, 0, 0x5151)  # what the relay does on its first packet
        report = parse_compound(await asyncio.wait_for(loop.sock_recv(phone_rtcp.sock, 2048), TIMEOUT))
        sender, sdes = report
        assert isinstance(sender, SenderReport) and isinstance(sdes, SourceDescription)
        assert (sender.ssrc, sender.packet_count, sender.octet_count) == (0x5151, 3, 480)
        assert sdes.cname(0x5151) == b"cti-server@127.0.0.1"
        endpoint.close()
        while True:  # reports may be queued before the goodbye
            last = parse_compound(await asyncio.wait_for(loop.sock_recv(phone_rtcp.sock, 2048), TIMEOUT))
            if any(isinstance(p, Bye) for p in last):
                break
        assert Bye((0x5151,)) in last
    finally:
        endpoint.close()
        phone.close()
        phone_rtcp.close()

