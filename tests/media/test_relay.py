"""The relay's sans-IO parts: one direction's packet rewriting, transcoding, DTMF, taps; stream continuity."""

from __future__ import annotations

import math
import struct

from cti_server.media.dtmf import DtmfDigit, TelephoneEvent, telephone_event_frames
from cti_server.media.g711 import PCMU
from cti_server.media.relay import LegMedia, RelayDirection
from cti_server.media.rtp import RtpPacket
from cti_server.media.stream import OutgoingStream
from tests.media.test_g711 import reference_alaw_encode, reference_alaw_level, reference_ulaw_level

PCMU_TE = LegMedia("PCMU", 0, dtmf_payload_type=101)
PCMA_TE = LegMedia("PCMA", 8, dtmf_payload_type=96)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def rtp(seq: int, ts: int, ssrc: int = 0x1111, pt: int = 0, payload: bytes = bytes(range(160)),
        marker: bool = False) -> bytes:
    return RtpPacket(pt, seq, ts, ssrc, payload, marker).serialize()


def direction(source: LegMedia, target: LegMedia, clock: FakeClock | None = None,
              digits: list[tuple[str, DtmfDigit]] | None = None) -> RelayDirection:
    stream = OutgoingStream(clock or FakeClock())
    return RelayDirection("a", source, target, stream,
                          on_digit=(lambda leg, d: digits.append((leg, d))) if digits is not None else None)


def test_same_codec_forwards_the_datagram_untouched() -> None:
    relay = direction(PCMU_TE, LegMedia("PCMU", 0, dtmf_payload_type=101))
    data = rtp(1, 160)
    assert relay.process(data) is data
    assert relay.forwarded == 1
    assert relay.transcoded == 0


def test_pcmu_to_pcma_transcodes_against_the_g711_reference() -> None:
    relay = direction(PCMU_TE, PCMA_TE)
    payload = bytes(range(256))[:160]
    out = relay.process(rtp(7, 1120, payload=payload))
    assert out is not None
    packet = RtpPacket.parse(out)
    assert packet.payload_type == 8
    assert (packet.sequence_number, packet.timestamp, packet.ssrc) == (7, 1120, 0x1111)
    assert packet.payload == bytes(reference_alaw_encode(reference_ulaw_level(c)) for c in payload)
    assert relay.transcoded == 1


def test_general_header_path_keeps_csrc_and_does_not_transcode_padding() -> None:
    relay = direction(PCMU_TE, PCMA_TE)
    data = RtpPacket(0, 9, 99, 0x1111, b"\xff\x00", csrc=(5,), padding=4).serialize()
    out = relay.process(data)
    assert out is not None
    packet = RtpPacket.parse(out)
    assert packet.csrc == (5,)
    assert packet.padding == 4
    assert packet.payload == bytes([reference_alaw_encode(0), reference_alaw_encode(-32124)])


def test_dynamic_payload_types_are_mapped_and_digits_reported_once() -> None:
    digits: list[tuple[str, DtmfDigit]] = []
    relay = direction(PCMU_TE, PCMA_TE, digits=digits)
    outputs = []
    for i, frame in enumerate(telephone_event_frames("7")):
        out = relay.process(rtp(100 + i, 8000, pt=101, payload=frame.payload, marker=frame.marker))
        assert out is not None
        outputs.append(RtpPacket.parse(out))
    assert {p.payload_type for p in outputs} == {96}
    assert {p.timestamp for p in outputs} == {8000}  # one event keeps one timestamp
    assert [p.marker for p in outputs][:2] == [True, False]
    assert [TelephoneEvent.parse(p.payload).end for p in outputs][-3:] == [True] * 3
    assert [(leg, d.digit) for leg, d in digits] == [("a", "7")]


def test_dtmf_toward_a_leg_without_telephone_event_is_detected_but_not_sent() -> None:
    digits: list[tuple[str, DtmfDigit]] = []
    relay = direction(PCMU_TE, LegMedia("PCMA", 8), digits=digits)
    frames = telephone_event_frames("#")
    results = [relay.process(rtp(i, 0, pt=101, payload=f.payload)) for i, f in enumerate(frames)]
    assert results == [None] * len(results)
    assert [d.digit for _, d in digits] == ["#"]


def test_unknown_payload_types_and_short_packets_are_dropped() -> None:
    relay = direction(PCMU_TE, PCMA_TE)
    assert relay.process(rtp(1, 0, pt=18)) is None
    assert relay.process(b"\x80\x00") is None
    assert relay.dropped == 2


def test_taps_get_decoded_pcm_of_each_audio_packet() -> None:
    relay = direction(LegMedia("PCMA", 8), LegMedia("PCMA", 8))
    heard: list[tuple[str, bytes]] = []
    relay.taps.append(lambda leg, pcm: heard.append((leg, pcm)))
    relay.process(rtp(1, 0, pt=8, payload=b"\xd5\xaa"))
    assert heard == [("a", struct.pack("<2h", reference_alaw_level(0xD5), reference_alaw_level(0xAA)))]


def test_new_far_end_ssrc_keeps_the_outgoing_stream_continuous() -> None:
    clock = FakeClock()
    relay = direction(PCMU_TE, LegMedia("PCMU", 0), clock)
    for i in range(3):
        clock.now += 0.02
        relay.process(rtp(1000 + i, 5000 + 160 * i))
    clock.now += 1.0  # re-INVITE: the far end restarts with a new SSRC and random numbering after 1 s
    out = relay.process(rtp(40000, 999_999, ssrc=0x2222))
    assert out is not None
    packet = RtpPacket.parse(out)
    assert packet.ssrc == 0x1111
    assert packet.sequence_number == 1003
    assert packet.timestamp == 5000 + 320 + 8000
    assert packet.marker is True
    following = RtpPacket.parse(relay.process(rtp(40001, 999_999 + 160, ssrc=0x2222)) or b"")
    assert (following.sequence_number, following.timestamp, following.marker) == (1004, 5000 + 8480, False)


def test_the_stream_knows_where_passed_through_packets_left_it() -> None:
    clock = FakeClock()
    relay = direction(PCMU_TE, LegMedia("PCMU", 0), clock)
    for i in range(3):
        clock.now += 0.02
        data = rtp(1000 + i, 5000 + 160 * i)
        assert relay.process(data) is data
    # What RTCP sender reports and the next source's numbering start from.
    assert relay.stream.last_position() == (1002, 5320)
    assert relay.stream.last_time == clock.now
    assert relay.forwarded == 3


def test_first_source_back_after_hold_music_is_renumbered_not_passed_through() -> None:
    clock = FakeClock()
    relay = direction(PCMU_TE, LegMedia("PCMU", 0), clock)
    data = rtp(1000, 5000)
    assert relay.process(data) is data  # the first source goes out as it came
    stream = relay.stream
    stream.switch_source("player", 0, 0, None)  # music on hold takes the stream over for two frames
    stream.sent(1001, 5160)
    stream.sent(1002, 5320)
    clock.now += 0.04
    back = relay.process(rtp(1001, 5160))  # the far end again, with its own numbering
    assert back is not None
    packet = RtpPacket.parse(back)
    assert (packet.ssrc, packet.sequence_number, packet.marker) == (0x1111, 1003, True)
    assert packet.timestamp == 5320 + 320
    following = RtpPacket.parse(relay.process(rtp(1002, 5320)) or b"")
    assert (following.sequence_number, following.timestamp, following.marker) == (1004, 5800, False)


def test_muted_direction_still_detects_digits_but_forwards_nothing() -> None:
    digits: list[tuple[str, DtmfDigit]] = []
    relay = direction(PCMU_TE, PCMA_TE, digits=digits)
    relay.muted = True
    assert relay.process(rtp(1, 0)) is None
    for i, frame in enumerate(telephone_event_frames("1")):
        assert relay.process(rtp(2 + i, 160, pt=101, payload=frame.payload)) is None
    assert [d.digit for _, d in digits] == ["1"]


def test_stream_first_fed_by_a_player_picks_its_own_ssrc() -> None:
    stream = OutgoingStream(FakeClock())
    stream.switch_source("player", 0, 0, None)
    assert stream.ssrc is not None
    assert stream.marker_pending is False
    assert stream.source_changes == 0


def test_inband_tones_become_digits_on_a_leg_without_telephone_event() -> None:
    digits: list[tuple[str, DtmfDigit]] = []
    relay = RelayDirection("b", LegMedia("PCMU", 0), PCMU_TE, OutgoingStream(FakeClock()),
                           on_digit=lambda leg, d: digits.append((leg, d)), inband_dtmf=True)
    tone = [int(5000 * (math.sin(2 * math.pi * 852 * i / 8000) + math.sin(2 * math.pi * 1477 * i / 8000)))
            for i in range(8 * 100)] + [0] * 8 * 100
    payload = PCMU.encode(struct.pack(f"<{len(tone)}h", *tone))
    for i in range(0, len(payload), 160):
        assert relay.process(rtp(i // 160, i, payload=payload[i : i + 160])) is not None
    assert [(leg, d.digit) for leg, d in digits] == [("b", "9")]
    # A leg that has telephone-event is not searched for tones.
    assert RelayDirection("a", PCMU_TE, PCMA_TE, OutgoingStream(FakeClock()), inband_dtmf=True).inband is None

