"""RTCP (RFC 3550 section 6): SR, RR, SDES and BYE packets in compound datagrams, and the receiver
statistics of appendix A (A.1 sequence validation, A.3 loss, A.8 interarrival jitter).

Sans-IO: ``parse_compound`` takes bytes and returns packet objects, ``serialize_compound`` does the
reverse, and ``ReceiverStatistics`` is fed (sequence number, RTP timestamp, arrival time) by its caller,
which owns the clock.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cti_server.media.rtp import RTP_VERSION

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204

SDES_END = 0
SDES_CNAME = 1
SDES_NAME = 2
SDES_TOOL = 6

_HEADER = struct.Struct("!BBH")
_REPORT_BLOCK = struct.Struct("!IBBHIIII")
_SENDER_INFO = struct.Struct("!IIIII")
NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)


class RtcpParseError(ValueError):
    """Bytes that are not valid RTCP per RFC 3550 section 6; ``field`` names what is wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"RTCP {field}: {reason}")
        self.field = field


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """A reception report block (RFC 3550 section 6.4.1) about one source."""

    ssrc: int
    fraction_lost: int
    packets_lost: int
    highest_sequence: int
    jitter: int
    last_sr: int = 0
    delay_since_last_sr: int = 0

    def serialize(self) -> bytes:
        """The packet on the wire (RFC 3550 section 6)."""
        lost = self.packets_lost & 0xFFFFFF  # 24-bit two's complement (may be negative: duplicates)
        return _REPORT_BLOCK.pack(
            self.ssrc, self.fraction_lost, lost >> 16, lost & 0xFFFF, self.highest_sequence,
            self.jitter, self.last_sr, self.delay_since_last_sr,
        )

    @classmethod
    def parse(cls, data: bytes, offset: int) -> ReportBlock:
        """The report block at ``offset`` of an SR/RR body."""
        unpacked = _REPORT_BLOCK.unpack_from(data, offset)
        ssrc, fraction, lost_high, lost_low, highest, jitter, lsr, dlsr = unpacked
        lost = (lost_high << 16) | lost_low
        if lost & 0x800000:
            lost -= 1 << 24
        return cls(ssrc, fraction, lost, highest, jitter, lsr, dlsr)


@dataclass(frozen=True, slots=True)
class SenderReport:
    """SR: sender info and reception reports (RFC 3550 section 6.4.1). ``ntp_timestamp`` is 64-bit."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()

    def serialize(self) -> bytes:
        """The packet on the wire (RFC 3550 section 6)."""
        body = struct.pack("!I", self.ssrc) + _SENDER_INFO.pack(
            self.ntp_timestamp >> 32, self.ntp_timestamp & 0xFFFFFFFF, self.rtp_timestamp,
            self.packet_count, self.octet_count,
        )
        return _packet(RTCP_SR, len(self.reports), body + b"".join(r.serialize() for r in self.reports))


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RR: reception reports from a participant that does not send (RFC 3550 section 6.4.2)."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()

    def serialize(self) -> bytes:
        """The packet on the wire (RFC 3550 section 6)."""
        body = struct.pack("!I", self.ssrc) + b"".join(r.serialize() for r in self.reports)
        return _packet(RTCP_RR, len(self.reports), body)


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """One SDES chunk: a source and its items as (type, value) pairs (RFC 3550 section 6.5)."""

    ssrc: int
    items: tuple[tuple[int, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES packet (RFC 3550 section 6.5); CNAME is item type 1."""

    chunks: tuple[SdesChunk, ...] = ()

    def serialize(self) -> bytes:
        """The packet on the wire (RFC 3550 section 6)."""
        body = bytearray()
        for chunk in self.chunks:
            body += struct.pack("!I", chunk.ssrc)
            for item_type, value in chunk.items:
                if len(value) > 255:
                    raise ValueError(f"SDES item {item_type} is {len(value)} octets, at most 255")
                body += bytes([item_type, len(value)]) + value
            # A null item ends the chunk; pad with nulls to the next 32-bit boundary (at least one).
            body += bytes(4 - len(body) % 4)
        return _packet(RTCP_SDES, len(self.chunks), bytes(body))

    def cname(self, ssrc: int) -> bytes | None:
        """The CNAME item of ``ssrc``, if present."""
        for chunk in self.chunks:
            if chunk.ssrc == ssrc:
                for item_type, value in chunk.items:
                    if item_type == SDES_CNAME:
                        return value
        return None


@dataclass(frozen=True, slots=True)
class Bye:
    """BYE: the listed sources are leaving, with an optional reason (RFC 3550 section 6.6)."""

    sources: tuple[int, ...] = ()
    reason: str = ""

    def serialize(self) -> bytes:
        """The packet on the wire (RFC 3550 section 6)."""
        body = b"".join(struct.pack("!I", s) for s in self.sources)
        if self.reason:
            text = self.reason.encode("utf-8")[:255]
            body += bytes([len(text)]) + text
            body += bytes(-len(body) % 4)
        return _packet(RTCP_BYE, len(self.sources), body)


@dataclass(frozen=True, slots=True)
class UnknownRtcpPacket:
    """An RTCP packet type this module does not interpret (APP, feedback...), kept as its body."""

    packet_type: int
    count: int
    body: bytes

    def serialize(self) -> bytes:
        """The packet on the wire (RFC 3550 section 6)."""
        return _packet(self.packet_type, self.count, self.body)


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | UnknownRtcpPacket


def _packet(packet_type: int, count: int, body: bytes) -> bytes:
    if count > 31:
        raise ValueError(f"RTCP count field holds at most 31 items, got {count}")
    if len(body) % 4:
        raise ValueError("RTCP packet body must be a multiple of 32 bits")
    return _HEADER.pack((RTP_VERSION << 6) | count, packet_type, len(body) // 4) + body


def serialize_compound(packets: list[RtcpPacket] | tuple[RtcpPacket, ...]) -> bytes:
    """One compound datagram (RFC 3550 section 6.1): the packets back to back."""
    return b"".join(p.serialize() for p in packets)


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Parse a compound RTCP datagram; raise RtcpParseError naming the field for malformed input."""
    packets: list[RtcpPacket] = []
    offset = 0
    if len(data) < 4:
        raise RtcpParseError("header", f"datagram is {len(data)} bytes, an RTCP header needs 4")
    while offset < len(data):
        if len(data) - offset < 4:
            raise RtcpParseError("header", "trailing bytes shorter than an RTCP header")
        first, packet_type, words = _HEADER.unpack_from(data, offset)
        if first >> 6 != RTP_VERSION:
            raise RtcpParseError("version", f"expected 2, got {first >> 6}")
        end = offset + 4 + 4 * words
        if end > len(data):
            raise RtcpParseError("length", f"length {words} words runs past the end of the datagram")
        body = data[offset + 4 : end]
        if first & 0x20:  # padding, only allowed on the last packet of the compound
            if end != len(data) or not body or body[-1] == 0 or body[-1] > len(body):
                raise RtcpParseError("padding", "invalid padding")
            body = body[: -body[-1]]
        packets.append(_parse_one(packet_type, first & 0x1F, bytes(body)))
        offset = end
    return packets


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket:
    if packet_type == RTCP_SR:
        if len(body) < 24 + 24 * count:
            raise RtcpParseError("sr", f"body of {len(body)} bytes is too short for {count} reports")
        (ssrc,) = struct.unpack_from("!I", body)
        ntp_high, ntp_low, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(body, 4)
        reports = tuple(ReportBlock.parse(body, 24 + 24 * i) for i in range(count))
        return SenderReport(ssrc, (ntp_high << 32) | ntp_low, rtp_ts, packets, octets, reports)
    if packet_type == RTCP_RR:
        if len(body) < 4 + 24 * count:
            raise RtcpParseError("rr", f"body of {len(body)} bytes is too short for {count} reports")
        (ssrc,) = struct.unpack_from("!I", body)
        return ReceiverReport(ssrc, tuple(ReportBlock.parse(body, 4 + 24 * i) for i in range(count)))
    if packet_type == RTCP_SDES:
        return SourceDescription(tuple(_parse_sdes_chunks(body, count)))
    if packet_type == RTCP_BYE:
        if len(body) < 4 * count:
            raise RtcpParseError("bye", f"body of {len(body)} bytes is too short for {count} sources")
        sources = struct.unpack_from(f"!{count}I", body)
        reason = ""
        if len(body) > 4 * count:
            length = body[4 * count]
            raw = body[4 * count + 1 : 4 * count + 1 + length]
            if len(raw) != length:
                raise RtcpParseError("bye", "reason runs past the end of the packet")
            reason = raw.decode("utf-8", errors="replace")
        return Bye(tuple(sources), reason)
    return UnknownRtcpPacket(packet_type, count, body)


def _parse_sdes_chunks(body: bytes, count: int) -> list[SdesChunk]:
    chunks: list[SdesChunk] = []
    offset = 0
    for _ in range(count):
        if offset + 4 > len(body):
            raise RtcpParseError("sdes", "chunk runs past the end of the packet")
        (ssrc,) = struct.unpack_from("!I", body, offset)
        offset += 4
        items: list[tuple[int, bytes]] = []
        while True:
            if offset >= len(body):
                raise RtcpParseError("sdes", "chunk has no terminating null item")
            item_type = body[offset]
            if item_type == SDES_END:
                offset = (offset + 4) & ~3  # skip the null octet(s) to the 32-bit boundary
                break
            if offset + 2 > len(body) or offset + 2 + body[offset + 1] > len(body):
                raise RtcpParseError("sdes", f"item {item_type} runs past the end of the packet")
            length = body[offset + 1]
            items.append((item_type, body[offset + 2 : offset + 2 + length]))
            offset += 2 + length
        chunks.append(SdesChunk(ssrc, tuple(items)))
    return chunks


def ntp_timestamp(unix_time: float) -> int:
    """64-bit NTP timestamp (RFC 3550 section 4) for a Unix time in seconds."""
    return int((unix_time + NTP_EPOCH_OFFSET) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


def ntp_middle(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp, as used in LSR (RFC 3550 section 6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF


MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2
_SEQ_MOD = 1 << 16


@dataclass(slots=True)
class ReceiverStatistics:
    """What a receiver knows about one source (RFC 3550 appendix A.1, A.3, A.8).

    Feed every received packet to ``receive`` with its arrival time in seconds (any monotonic clock);
    read ``expected``, ``lost``, ``jitter`` (in timestamp units) and ``extended_highest_sequence``,
    or build the report block with ``report_block``. A source is valid after ``MIN_SEQUENTIAL``
    packets in sequence (A.1 probation); packets before that are not counted.
    """

    clock_rate: int = 8000
    probation: int = MIN_SEQUENTIAL
    max_seq: int = 0
    cycles: int = 0
    base_seq: int = 0
    bad_seq: int = _SEQ_MOD + 1
    received: int = 0
    expected_prior: int = 0
    received_prior: int = 0
    jitter_estimate: float = 0.0
    _last_transit: float | None = None
    _started: bool = False
    _last_sr: int = 0
    _last_sr_arrival: float = 0.0

    def receive(self, sequence_number: int, rtp_timestamp: int, arrival_time: float) -> bool:
        """Account one packet; False when A.1 rejects it (probation, big jump, duplicate source restart)."""
        if not self._started:
            self._init_seq(sequence_number)
            self.max_seq = (sequence_number - 1) & 0xFFFF
            self._started = True
        if not self._update_seq(sequence_number):
            return False
        self._update_jitter(rtp_timestamp, arrival_time)
        return True

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = _SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0
        self._last_transit = None
        self.jitter_estimate = 0.0

    def _update_seq(self, seq: int) -> bool:
        udelta = (seq - self.max_seq) & 0xFFFF
        if self.probation:
            if seq == (self.max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return True
            else:
                self.probation = MIN_SEQUENTIAL - 1
                self.max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += _SEQ_MOD  # sequence number wrapped
            self.max_seq = seq
        elif udelta <= _SEQ_MOD - MAX_MISORDER:
            # A very large jump: accept it only when the next packet confirms the new sequence.
            if seq == self.bad_seq:
                self._init_seq(seq)
            else:
                self.bad_seq = (seq + 1) & 0xFFFF
                return False
        # else: duplicate or reordered packet, counted as received
        self.received += 1
        return True

    def _update_jitter(self, rtp_timestamp: int, arrival_time: float) -> None:
        arrival = arrival_time * self.clock_rate
        transit = arrival - rtp_timestamp
        if self._last_transit is not None:
            d = transit - self._last_transit
            # RTP timestamps wrap at 2^32: fold the difference back into range.
            if d > 1 << 31:
                d -= 1 << 32
            elif d < -(1 << 31):
                d += 1 << 32
            self.jitter_estimate += (abs(d) - self.jitter_estimate) / 16.0
        self._last_transit = transit

    @property
    def extended_highest_sequence(self) -> int:
        """Cycles count in the high 16 bits, highest sequence number received in the low 16."""
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        """Packets expected since the first valid one (RFC 3550 A.3)."""
        if self.probation:
            return 0
        return self.extended_highest_sequence - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost, clamped to the 24-bit signed range of a report block."""
        return max(-0x800000, min(0x7FFFFF, self.expected - self.received))

    @property
    def jitter(self) -> int:
        """Interarrival jitter in timestamp units, as reported in RTCP (RFC 3550 A.8)."""
        return int(self.jitter_estimate)

    @property
    def jitter_seconds(self) -> float:
        """Interarrival jitter in seconds."""
        return self.jitter_estimate / self.clock_rate

    def receive_sender_report(self, report: SenderReport, arrival_time: float) -> None:
        """Remember the last SR from this source for LSR/DLSR (RFC 3550 section 6.4.1)."""
        self._last_sr = ntp_middle(report.ntp_timestamp)
        self._last_sr_arrival = arrival_time

    def report_block(self, ssrc: int, now: float) -> ReportBlock:
        """The report block about source ``ssrc``; resets the interval used for fraction lost."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        received_interval = self.received - self.received_prior
        self.expected_prior = expected
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = (lost_interval << 8) // expected_interval
        dlsr = int((now - self._last_sr_arrival) * 65536) if self._last_sr else 0
        return ReportBlock(
            ssrc=ssrc,
            fraction_lost=min(fraction, 255),
            packets_lost=self.lost,
            highest_sequence=self.extended_highest_sequence & 0xFFFFFFFF,
            jitter=self.jitter,
            last_sr=self._last_sr,
            delay_since_last_sr=dlsr & 0xFFFFFFFF,
        )
