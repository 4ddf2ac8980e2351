"""G.711 (ITU-T Recommendation G.711) mu-law and A-law: sample encode/decode and byte-wise transcoding.

PCM is 16-bit signed little-endian, 8 kHz mono. Decoding maps each code to the 16-bit value of its
quantization level (G.711 tables 1a/2a scaled to 16 bits); encoding picks the interval the sample falls in.
Transcoding mu-law <-> A-law is ``payload.translate(table)`` with a 256-entry table built once at import,
so the relay pays no per-sample Python work. ``audioop`` is not used (removed in Python 3.13).
"""

from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass
from functools import cache

_ULAW_BIAS = 0x84
_ULAW_CLIP = 32635


def ulaw_decode_sample(code: int) -> int:
    """The 16-bit linear value of mu-law ``code`` (G.711 section 3: all bits are sent inverted)."""
    inverted = ~code & 0xFF
    exponent = (inverted >> 4) & 0x07
    mantissa = inverted & 0x0F
    magnitude = (((mantissa << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return -magnitude if inverted & 0x80 else magnitude


def ulaw_encode_sample(sample: int) -> int:
    """The mu-law code of 16-bit linear ``sample`` (clipped to the G.711 range)."""
    if sample < 0:
        magnitude, sign = -sample, 0x80
    else:
        magnitude, sign = sample, 0x00
    magnitude = min(magnitude, _ULAW_CLIP) + _ULAW_BIAS
    exponent = max(0, magnitude.bit_length() - 8)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def alaw_decode_sample(code: int) -> int:
    """The 16-bit linear value of A-law ``code`` (G.711 section 2: even bits are sent inverted)."""
    value = code ^ 0x55
    segment = (value >> 4) & 0x07
    magnitude = ((value & 0x0F) << 4) + 8
    if segment:
        magnitude += 0x100
    if segment > 1:
        magnitude <<= segment - 1
    return magnitude if value & 0x80 else -magnitude


def alaw_encode_sample(sample: int) -> int:
    """The A-law code of 16-bit linear ``sample`` (13-bit magnitude, clipped to the G.711 range)."""
    # Symmetric about zero like G.711's decision values: the magnitude picks the interval.
    mask = 0xD5 if sample >= 0 else 0x55
    value = abs(sample) >> 3
    segment = max(0, value.bit_length() - 5)  # segment ends at 0x1F, 0x3F, 0x7F ... 0xFFF
    if segment > 7:
        return 0x7F ^ mask
    shift = 1 if segment < 2 else segment
    return ((segment << 4) | ((value >> shift) & 0x0F)) ^ mask


ULAW_TO_LINEAR: tuple[int, ...] = tuple(ulaw_decode_sample(c) for c in range(256))
"""Decoded 16-bit value of every mu-law code."""
ALAW_TO_LINEAR: tuple[int, ...] = tuple(alaw_decode_sample(c) for c in range(256))
"""Decoded 16-bit value of every A-law code."""
ULAW_TO_ALAW: bytes = bytes(alaw_encode_sample(v) for v in ULAW_TO_LINEAR)
"""``mulaw_payload.translate(ULAW_TO_ALAW)`` transcodes a mu-law payload to A-law."""
ALAW_TO_ULAW: bytes = bytes(ulaw_encode_sample(v) for v in ALAW_TO_LINEAR)
"""``alaw_payload.translate(ALAW_TO_ULAW)`` transcodes an A-law payload to mu-law."""

_LITTLE_ENDIAN = sys.byteorder == "little"


def _pcm_bytes_table(levels: tuple[int, ...]) -> tuple[bytes, ...]:
    return tuple(level.to_bytes(2, "little", signed=True) for level in levels)


_ULAW_PCM = _pcm_bytes_table(ULAW_TO_LINEAR)
_ALAW_PCM = _pcm_bytes_table(ALAW_TO_LINEAR)


@cache
def _encode_table(law: str) -> bytes:
    # Indexed by the 16-bit sample read as unsigned: 64 KiB, built the first time a law is encoded.
    encode = ulaw_encode_sample if law == "PCMU" else alaw_encode_sample
    return bytes(encode(u - 0x10000 if u & 0x8000 else u) for u in range(0x10000))


def _samples_unsigned(pcm: bytes) -> array[int]:
    if len(pcm) % 2:
        raise ValueError(f"16-bit PCM must have an even number of bytes, got {len(pcm)}")
    samples = array("H")
    samples.frombytes(pcm)
    if not _LITTLE_ENDIAN:
        samples.byteswap()
    return samples


@dataclass(frozen=True, slots=True)
class G711Codec:
    """One G.711 law with its static RTP payload type (RFC 3551 section 6): PCMU = 0, PCMA = 8."""

    name: str
    payload_type: int
    clock_rate: int = 8000

    def decode(self, payload: bytes) -> bytes:
        """G.711 codes to 16-bit little-endian PCM (two bytes per code)."""
        table = _ULAW_PCM if self.name == "PCMU" else _ALAW_PCM
        return b"".join(map(table.__getitem__, payload))

    def encode(self, pcm: bytes) -> bytes:
        """16-bit little-endian PCM to G.711 codes (one byte per sample)."""
        return bytes(map(_encode_table(self.name).__getitem__, _samples_unsigned(pcm)))


PCMU = G711Codec("PCMU", 0)
PCMA = G711Codec("PCMA", 8)
CODECS: dict[str, G711Codec] = {"PCMU": PCMU, "PCMA": PCMA}
"""The codecs the relay understands, by their RTP encoding name (RFC 3551 section 6)."""


def transcode_table(source: str, target: str) -> bytes | None:
    """The ``bytes.translate`` table from codec ``source`` to ``target``; None when they are the same."""
    if source == target:
        return None
    if (source, target) == ("PCMU", "PCMA"):
        return ULAW_TO_ALAW
    if (source, target) == ("PCMA", "PCMU"):
        return ALAW_TO_ULAW
    raise ValueError(f"no G.711 transcoding from {source!r} to {target!r}")
