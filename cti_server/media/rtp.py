"""RTP data packets (RFC 3550 section 5.1) and sequence/timestamp arithmetic modulo 2^16 / 2^32.

``RtpPacket.parse`` / ``serialize`` handle the whole fixed header, the CSRC list, a header extension
(section 5.3.1) and padding. The relay's hot path does not build packets: it reads the 12-byte fixed
header with ``FIXED_HEADER.unpack_from`` and rewrites fields in place, see ``cti_server.media.relay``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

RTP_VERSION = 2
FIXED_HEADER = struct.Struct("!BBHII")
"""The fixed header: V/P/X/CC byte, M/PT byte, sequence number, timestamp, SSRC (RFC 3550 5.1)."""
FIXED_HEADER_SIZE = FIXED_HEADER.size

SEQUENCE_MODULO = 1 << 16
TIMESTAMP_MODULO = 1 << 32


class RtpParseError(ValueError):
    """Bytes that are not an RTP packet per RFC 3550 section 5.1; ``field`` names what is wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"RTP {field}: {reason}")
        self.field = field


@dataclass(slots=True)
class RtpPacket:
    """One RTP data packet (RFC 3550 section 5.1).

    ``padding`` is the number of padding octets at the end of the packet, the count octet included
    (0 = no P bit). ``extension_profile`` is None when the packet has no header extension (X bit clear);
    ``extension`` holds its data, a multiple of 4 octets.
    """

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension_profile: int | None = None
    extension: bytes = b""
    padding: int = 0

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one datagram; raise RtpParseError naming the field for anything malformed."""
        if len(data) < FIXED_HEADER_SIZE:
            raise RtpParseError("header", f"packet is {len(data)} bytes, the fixed header needs 12")
        first, second, sequence_number, timestamp, ssrc = FIXED_HEADER.unpack_from(data)
        if first >> 6 != RTP_VERSION:
            raise RtpParseError("version", f"expected 2, got {first >> 6}")
        csrc_count = first & 0x0F
        offset = FIXED_HEADER_SIZE + 4 * csrc_count
        if len(data) < offset:
            raise RtpParseError("csrc", f"CSRC count {csrc_count} runs past the end of the packet")
        csrc = struct.unpack_from(f"!{csrc_count}I", data, FIXED_HEADER_SIZE)
        extension_profile: int | None = None
        extension = b""
        if first & 0x10:
            if len(data) < offset + 4:
                raise RtpParseError("extension", "header extension is truncated")
            extension_profile, words = struct.unpack_from("!HH", data, offset)
            offset += 4
            if len(data) < offset + 4 * words:
                raise RtpParseError("extension", f"extension length {words} words runs past the end")
            extension = bytes(data[offset : offset + 4 * words])
            offset += 4 * words
        end = len(data)
        padding = 0
        if first & 0x20:
            padding = data[-1]
            if padding == 0 or end - padding < offset:
                raise RtpParseError("padding", f"padding count {padding} is invalid for this packet")
            end -= padding
        return cls(
            payload_type=second & 0x7F,
            sequence_number=sequence_number,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=bytes(data[offset:end]),
            marker=bool(second & 0x80),
            csrc=tuple(csrc),
            extension_profile=extension_profile,
            extension=extension,
            padding=padding,
        )

    def serialize(self) -> bytes:
        """The packet as sent on the wire (RFC 3550 section 5.1)."""
        if not 0 <= self.payload_type <= 127:
            raise ValueError(f"RTP payload_type must be 0-127, got {self.payload_type}")
        if len(self.csrc) > 15:
            raise ValueError(f"RTP allows at most 15 CSRCs, got {len(self.csrc)}")
        if len(self.extension) % 4:
            raise ValueError("RTP header extension length must be a multiple of 4 octets")
        if not 0 <= self.padding <= 255:
            raise ValueError(f"RTP padding must be 0-255 octets, got {self.padding}")
        first = (RTP_VERSION << 6) | len(self.csrc)
        if self.padding:
            first |= 0x20
        if self.extension_profile is not None:
            first |= 0x10
        parts = [
            FIXED_HEADER.pack(
                first,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence_number & 0xFFFF,
                self.timestamp & 0xFFFFFFFF,
                self.ssrc & 0xFFFFFFFF,
            ),
            struct.pack(f"!{len(self.csrc)}I", *self.csrc),
        ]
        if self.extension_profile is not None:
            parts.append(struct.pack("!HH", self.extension_profile, len(self.extension) // 4))
            parts.append(self.extension)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes([self.padding]))
        return b"".join(parts)


def seq_add(sequence_number: int, delta: int) -> int:
    """``sequence_number + delta`` modulo 2^16."""
    return (sequence_number + delta) & 0xFFFF


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` between two sequence numbers, in [-32768, 32767] (wrap-aware)."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


def seq_newer(a: int, b: int) -> bool:
    """True when sequence number ``a`` comes after ``b`` (RFC 3550 A.1, serial number arithmetic)."""
    return seq_diff(a, b) > 0


def ts_add(timestamp: int, delta: int) -> int:
    """``timestamp + delta`` modulo 2^32."""
    return (timestamp + delta) & 0xFFFFFFFF


def ts_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` between two RTP timestamps, in [-2^31, 2^31) (wrap-aware)."""
    return ((a - b + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def is_rtp_header(data: bytes) -> bool:
    """Cheap check for the relay's fast path: long enough, version 2, and not an RTCP packet type
    (RFC 5761 section 4: second octet 192-223 means RTCP when multiplexed)."""
    return len(data) >= FIXED_HEADER_SIZE and data[0] >> 6 == RTP_VERSION and not 192 <= data[1] <= 223
