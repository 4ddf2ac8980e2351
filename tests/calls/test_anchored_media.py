"""Media anchoring per leg: SDP offer/answer (RFC 3264), hold detection, and RTP through the relay."""

from __future__ import annotations

import asyncio
import math
import random
import socket

import pytest

from cti_server.calls.anchored_media import AnchoredMedia
from cti_server.calls.media_session import Direction, MediaError
from cti_server.config import MediaConfig
from cti_server.media.g711 import ULAW_TO_LINEAR, alaw_decode_sample, ulaw_encode_sample
from cti_server.media.inband_dtmf import goertzel_power
from cti_server.media.rtp import RtpPacket
from cti_server.sip.sdp import parse_sdp


def offer_sdp(port: int, formats: str = "8 101", direction: str | None = None, address: str = "127.0.0.1",
              extra: str = "") -> bytes:
    lines = ["v=0", "o=peer 1 1 IN IP4 127.0.0.1", "s=-", f"c=IN IP4 {address}", "t=0 0",
             f"m=audio {port} RTP/AVP {formats}", "a=rtpmap:8 PCMA/8000", "a=rtpmap:0 PCMU/8000",
             "a=rtpmap:101 telephone-event/8000"]
    if direction:
        lines.append(f"a={direction}")
    text = "\r\n".join(lines) + "\r\n" + extra
    return text.encode()


@pytest.fixture
async def media() -> AnchoredMedia:
    base = random.randrange(20000, 32000, 200)
    anchor = AnchoredMedia(MediaConfig(rtp_port_min=base, rtp_port_max=base + 199))
    yield anchor  # type: ignore[misc]
    for leg_id in list(anchor.legs):
        await anchor.close_leg(leg_id)


async def test_offer_lists_our_codecs_and_telephone_event(media: AnchoredMedia) -> None:
    await media.open_leg("b1", "call")
    sdp = parse_sdp(media.offer("b1"))
    audio = sdp.media[0]
    assert audio.payload_types == [0, 8, 101]
    assert audio.port == media.legs["b1"].endpoint.port
    assert sdp.connection is not None and sdp.connection.address == "127.0.0.1"
    assert audio.rtpmaps[101] == ("telephone-event", 8000, 1)
    version = sdp.origin.session_version
    # RFC 3264 section 8: the o= version changes only when the description does (LocalSdp).
    assert parse_sdp(media.offer("b1")).origin.session_version == version


async def test_answer_picks_our_preferred_common_codec_and_mirrors_direction(media: AnchoredMedia) -> None:
    await media.open_leg("a1", "call")
    answer = media.answer("a1", offer_sdp(4000, "8 0 101"))
    sdp = parse_sdp(answer.sdp)
    assert sdp.media[0].payload_types == [0, 101]  # PCMU is first in media.codecs
    assert answer.offered is Direction.SENDRECV
    hold = media.answer("a1", offer_sdp(4000, "8 101", "sendonly"))
    assert hold.offered is Direction.SENDONLY and hold.offered.is_hold
    assert parse_sdp(hold.sdp).media[0].direction == "recvonly"
    assert parse_sdp(hold.sdp).media[0].payload_types == [8, 101]
    old_style = media.answer("a1", offer_sdp(4000, "8", address="0.0.0.0"))
    assert old_style.offered is Direction.INACTIVE


async def test_whether_the_peer_sends_follows_its_last_offer_or_answer(media: AnchoredMedia) -> None:
    """The media watchdog expects RTP only from a peer that said it sends: a recvonly or inactive
    answer to our offer (an announcement or recording service) exempts the leg, as such an offer does."""
    await media.open_leg("b1", "call")
    assert media.peer_sends("b1") and media.peer_sends("no-such-leg")  # nothing negotiated yet
    media.offer("b1")
    media.accept_answer("b1", offer_sdp(4000, "0", "recvonly"))
    assert not media.peer_sends("b1")
    media.answer("b1", offer_sdp(4000, "0"))  # the peer's re-INVITE: sendrecv
    assert media.peer_sends("b1")
    media.answer("b1", offer_sdp(4000, "0", address="0.0.0.0"))  # the old hold: no address
    assert not media.peer_sends("b1")
    media.offer("b1")
    media.accept_answer("b1", offer_sdp(4000, "0", "sendonly"))
    assert media.peer_sends("b1")


async def test_other_streams_are_rejected_and_bad_offers_raise(media: AnchoredMedia) -> None:
    await media.open_leg("a1", "call")
    answer = media.answer("a1", offer_sdp(4000, "8", extra="m=video 5000 RTP/AVP 96\r\n"))
    video = parse_sdp(answer.sdp).media[1]
    assert video.media == "video" and video.port == 0
    with pytest.raises(MediaError):
        media.answer("a1", offer_sdp(4000, "18"))  # G.729 only
    with pytest.raises(MediaError):
        media.answer("a1", b"this is not sdp")
    with pytest.raises(MediaError):
        media.answer("nope", offer_sdp(4000))


async def test_relay_transcodes_between_bridged_legs(media: AnchoredMedia) -> None:
    trunk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for sock in (trunk, phone):
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
    try:
        await media.open_leg("a", "call")
        await media.open_leg("b", "call")
        media.answer("a", offer_sdp(trunk.getsockname()[1], "8 101"))  # trunk speaks PCMA
        media.offer("b")
        media.accept_answer("b", offer_sdp(phone.getsockname()[1], "0 101"))  # phone answers PCMU
        media.bridge("a", "b")
        loop = asyncio.get_running_loop()
        a_port = media.legs["a"].endpoint.port
        packet = RtpPacket(payload_type=8, sequence_number=1, timestamp=160, ssrc=0x1234,
                           payload=b"\xd5" * 160)
        await loop.sock_sendto(trunk, packet.serialize(), ("127.0.0.1", a_port))
        data = await asyncio.wait_for(loop.sock_recv(phone, 2048), 5)
        relayed = RtpPacket.parse(data)
        assert relayed.payload_type == 0
        expected = ulaw_encode_sample(alaw_decode_sample(0xD5))  # through linear PCM (G.711 tables)
        assert relayed.payload == bytes([expected]) * 160
        stats = media.leg_stats("a")
        assert stats["packets_received"] == 1 and stats["transcoded"] == 1
    finally:
        trunk.close()
        phone.close()


async def test_a_held_leg_hears_ringback_when_asked_for_it(media: AnchoredMedia) -> None:
    """A queue DID with ``waiting = "ringback"``: the caller hears 440 + 480 Hz (media.ringback_tone
    north_america), not the hold music; an unknown sound is refused."""
    caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    caller.bind(("127.0.0.1", 0))
    caller.setblocking(False)
    try:
        await media.open_leg("a", "call")
        await media.open_leg("wait", "call")
        media.answer("a", offer_sdp(caller.getsockname()[1], "0 101"))
        media.bridge("a", "wait")
        with pytest.raises(MediaError):
            media.hold("a", "silence")
        media.hold("a", "ringback")
        loop = asyncio.get_running_loop()
        samples: list[int] = []
        while len(samples) < 800:  # 100 ms of the first, "on" part of the cadence
            packet = RtpPacket.parse(await asyncio.wait_for(loop.sock_recv(caller, 2048), 5))
            assert packet.payload_type == 0
            samples.extend(ULAW_TO_LINEAR[code] for code in packet.payload)

        def power(frequency: float) -> float:
            return goertzel_power(samples[:800], 2 * math.cos(2 * math.pi * frequency / 8000))

        assert min(power(440), power(480)) > 100 * max(power(350), power(620), power(1000))
    finally:
        caller.close()
