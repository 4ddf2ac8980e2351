"""RTP packets (RFC 3550 section 5.1) and wrap-around arithmetic."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cti_server.media.rtp import (
    RtpPacket,
    RtpParseError,
    is_rtp_header,
    seq_add,
    seq_diff,
    seq_newer,
    ts_add,
    ts_diff,
)


def test_parse_minimal_packet_fields() -> None:
    data = bytes([0x80, 0x80 | 8]) + (513).to_bytes(2, "big") + (160000).to_bytes(4, "big")
    data += (0xDEADBEEF).to_bytes(4, "big") + b"\xd5" * 160
    packet = RtpPacket.parse(data)
    assert packet.payload_type == 8
    assert packet.marker is True
    assert packet.sequence_number == 513
    assert packet.timestamp == 160000
    assert packet.ssrc == 0xDEADBEEF
    assert packet.payload == b"\xd5" * 160
    assert packet.csrc == ()
    assert packet.extension_profile is None
    assert packet.padding == 0
    assert packet.serialize() == data


def test_csrc_extension_and_padding_round_trip() -> None:
    packet = RtpPacket(
        payload_type=0, sequence_number=65535, timestamp=0xFFFFFFFF, ssrc=1, payload=b"abc",
        marker=False, csrc=(10, 20, 30), extension_profile=0xBEDE, extension=b"\x10\x01\x00\x00", padding=5,
    )
    data = packet.serialize()
    assert data[0] == 0x80 | 0x20 | 0x10 | 3
    assert len(data) == 12 + 12 + 4 + 4 + 3 + 5
    assert data[-1] == 5
    assert RtpPacket.parse(data) == packet


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b"\x80\x00\x00", "header"),
        (b"\x40" + bytes(11), "version"),
        (bytes([0x83]) + bytes(11) + bytes(8), "csrc"),
        (bytes([0x90]) + bytes(11) + b"\x00\x00", "extension"),
        (bytes([0x90]) + bytes(11) + b"\x00\x00\x00\x05" + bytes(4), "extension"),
        (bytes([0xA0]) + bytes(11) + b"ab\x00", "padding"),
        (bytes([0xA0]) + bytes(11) + b"ab\x09", "padding"),
    ],
)
def test_malformed_packets_name_the_field(data: bytes, field: str) -> None:
    with pytest.raises(RtpParseError) as info:
        RtpPacket.parse(data)
    assert info.value.field == field


def test_serialize_rejects_out_of_range_values() -> None:
    with pytest.raises(ValueError, match="payload_type"):
        RtpPacket(payload_type=128, sequence_number=0, timestamp=0, ssrc=0).serialize()
    with pytest.raises(ValueError, match="15 CSRCs"):
        RtpPacket(payload_type=0, sequence_number=0, timestamp=0, ssrc=0, csrc=tuple(range(16))).serialize()
    with pytest.raises(ValueError, match="multiple of 4"):
        RtpPacket(0, 0, 0, 0, extension_profile=1, extension=b"abc").serialize()


@given(
    st.integers(0, 127), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF),
    st.binary(max_size=64), st.booleans(), st.lists(st.integers(0, 0xFFFFFFFF), max_size=15),
    st.integers(0, 255),
)
def test_round_trip_any_packet(
    pt: int, seq: int, ts: int, ssrc: int, payload: bytes, marker: bool, csrc: list[int], padding: int
) -> None:
    packet = RtpPacket(pt, seq, ts, ssrc, payload, marker, tuple(csrc), padding=padding)
    assert RtpPacket.parse(packet.serialize()) == packet


@given(st.binary(max_size=80))
def test_parse_never_raises_anything_but_rtp_parse_error(data: bytes) -> None:
    try:
        RtpPacket.parse(data)
    except RtpParseError:
        pass


def test_sequence_arithmetic_wraps() -> None:
    assert seq_add(65535, 1) == 0
    assert seq_add(0, -1) == 65535
    assert seq_diff(0, 65535) == 1
    assert seq_diff(65535, 0) == -1
    assert seq_diff(100, 100) == 0
    assert seq_newer(2, 65000)
    assert not seq_newer(65000, 2)
    assert ts_add(0xFFFFFF60, 160) == 0
    assert ts_diff(0, 0xFFFFFF60) == 160
    assert ts_diff(0xFFFFFF60, 0) == -160


def test_is_rtp_header_tells_rtp_from_rtcp_and_garbage() -> None:
    rtp = RtpPacket(0, 1, 2, 3, b"x").serialize()
    assert is_rtp_header(rtp)
    assert not is_rtp_header(b"\x80\xc8" + bytes(10))  # RTCP SR
    assert not is_rtp_header(b"\x00" * 12)
    assert not is_rtp_header(rtp[:11])
