"""RTCP compound packets (RFC 3550 section 6) and receiver statistics (appendix A.1, A.3, A.8)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cti_server.media.rtcp import (
    SDES_CNAME,
    Bye,
    ReceiverReport,
    ReceiverStatistics,
    ReportBlock,
    RtcpParseError,
    SdesChunk,
    SenderReport,
    SourceDescription,
    UnknownRtcpPacket,
    ntp_middle,
    ntp_timestamp,
    parse_compound,
    serialize_compound,
)


def test_compound_sr_sdes_bye_round_trip() -> None:
    block = ReportBlock(ssrc=7, fraction_lost=25, packets_lost=-3, highest_sequence=70000, jitter=40,
                        last_sr=0x12345678, delay_since_last_sr=65536)
    packets = [
        SenderReport(ssrc=1, ntp_timestamp=ntp_timestamp(1_700_000_000.5), rtp_timestamp=160,
                     packet_count=10, octet_count=1600, reports=(block,)),
        SourceDescription((SdesChunk(1, ((SDES_CNAME, b"cti@host"),)), SdesChunk(2, ()))),
        Bye((1, 2), "call ended"),
    ]
    data = serialize_compound(packets)
    assert len(data) % 4 == 0
    assert data[1] == 200
    parsed = parse_compound(data)
    assert parsed == packets
    sdes = parsed[1]
    assert isinstance(sdes, SourceDescription)
    assert sdes.cname(1) == b"cti@host"
    assert sdes.cname(2) is None


def test_receiver_report_and_unknown_type_round_trip() -> None:
    packets = [ReceiverReport(9, (ReportBlock(1, 0, 0, 5, 0),)), UnknownRtcpPacket(204, 1, b"name1234")]
    assert parse_compound(serialize_compound(packets)) == packets


def test_sdes_chunk_ending_on_word_boundary_gets_a_full_null_word() -> None:
    # SSRC (4) + CNAME header (2) + 2 octets = 8: the terminating null needs a whole extra word.
    data = SourceDescription((SdesChunk(5, ((SDES_CNAME, b"ab"),)),)).serialize()
    assert len(data) == 4 + 12
    assert parse_compound(data) == [SourceDescription((SdesChunk(5, ((SDES_CNAME, b"ab"),)),))]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b"\x80", "header"),
        (b"\x40\xc9\x00\x00", "version"),
        (b"\x80\xc9\x00\x05\x00\x00\x00\x01", "length"),
        (b"\x81\xc9\x00\x01\x00\x00\x00\x01", "rr"),
        (b"\x81\xc8\x00\x01\x00\x00\x00\x01", "sr"),
        (b"\x81\xca\x00\x01\x00\x00\x00\x01", "sdes"),
        (b"\x82\xcb\x00\x01\x00\x00\x00\x01", "bye"),
        (b"\x80\xc9\x00\x01\x00\x00\x00\x01\x80", "header"),
    ],
)
def test_malformed_compound_names_the_field(data: bytes, field: str) -> None:
    with pytest.raises(RtcpParseError) as info:
        parse_compound(data)
    assert info.value.field == field


@given(st.binary(max_size=120))
def test_parse_never_raises_anything_but_rtcp_parse_error(data: bytes) -> None:
    try:
        parse_compound(data)
    except RtcpParseError:
        pass


def _feed(stats: ReceiverStatistics, seqs: list[int], start_ts: int = 0) -> None:
    for i, seq in enumerate(seqs):
        stats.receive(seq, start_ts + 160 * i, i * 0.02)


def test_statistics_probation_then_counts_with_wrap() -> None:
    stats = ReceiverStatistics()
    seqs = [(65530 + i) & 0xFFFF for i in range(20)]
    _feed(stats, seqs)
    # A.1: the first packet is probation; counting starts with the second.
    assert stats.received == 19
    assert stats.expected == 19
    assert stats.lost == 0
    assert stats.extended_highest_sequence == 65536 + 13
    assert stats.jitter == 0


def test_statistics_loss_and_fraction_lost() -> None:
    stats = ReceiverStatistics()
    seqs = [s for s in range(100, 201) if s % 10 != 5]  # lose 10 of 101
    for seq in seqs:
        stats.receive(seq, seq * 160, seq * 0.02)
    assert stats.expected == 100  # 101..200 after probation of 100
    assert stats.lost == 10
    block = stats.report_block(ssrc=42, now=5.0)
    assert block.packets_lost == 10
    assert block.fraction_lost == (10 << 8) // 100
    assert block.highest_sequence == 200
    # The next interval has no new loss.
    for seq in range(201, 211):
        stats.receive(seq, seq * 160, seq * 0.02)
    assert stats.report_block(ssrc=42, now=6.0).fraction_lost == 0


def test_jitter_follows_rfc3550_a8() -> None:
    stats = ReceiverStatistics()
    # Arrivals alternate 10 ms early/late around a steady 20 ms: |D| = 160 samples after the first pair.
    arrivals = [i * 0.02 + (0.01 if i % 2 else 0.0) for i in range(50)]
    expected = 0.0
    last_transit: float | None = None
    for i, arrival in enumerate(arrivals):
        stats.receive(1000 + i, 160 * i, arrival)
        if i == 0:
            continue  # probation
        transit = arrival * 8000 - 160 * i
        if last_transit is not None:
            expected += (abs(transit - last_transit) - expected) / 16
        last_transit = transit
    assert stats.jitter_estimate == pytest.approx(expected)
    assert 70 < stats.jitter <= 80  # converges towards |D| = 80 samples
    assert stats.jitter_seconds == pytest.approx(expected / 8000)


def test_duplicates_and_reordering_count_as_received() -> None:
    stats = ReceiverStatistics()
    _feed(stats, [1, 2, 3, 5, 4, 5])
    assert stats.expected == 4  # 2..5
    assert stats.received == 5
    assert stats.lost == -1  # a duplicate makes the cumulative loss negative, as RFC 3550 allows


def test_large_jump_needs_confirmation() -> None:
    stats = ReceiverStatistics()
    _feed(stats, [1, 2, 3])
    assert stats.receive(40000, 0, 1.0) is False
    assert stats.receive(40001, 160, 1.02) is True
    assert stats.expected == 1  # restarted at the confirmed sequence


def test_lsr_and_dlsr_from_last_sender_report() -> None:
    stats = ReceiverStatistics()
    _feed(stats, [1, 2, 3])
    ntp = ntp_timestamp(1_700_000_000.0)
    stats.receive_sender_report(SenderReport(1, ntp, 0, 0, 0), arrival_time=10.0)
    block = stats.report_block(ssrc=1, now=10.5)
    assert block.last_sr == ntp_middle(ntp)
    assert block.delay_since_last_sr == 32768
