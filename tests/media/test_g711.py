"""G.711 against reference values computed here from the formulas of ITU-T G.711 tables 1a and 2a."""

from __future__ import annotations

import bisect
import struct

import pytest

from cti_server.media import g711


def reference_ulaw_level(code: int) -> int:
    """G.711 table 2a: every bit is sent inverted; segment s in bits 2-4, step q in bits 5-8;
    decoder output (2^s)(2q + 33) - 33 in units of 1/8159 full scale, x4 for 16-bit."""
    bits = code ^ 0xFF
    s, q = (bits >> 4) & 7, bits & 15
    level = 4 * ((1 << s) * (2 * q + 33) - 33)
    return -level if bits & 0x80 else level


def reference_alaw_level(code: int) -> int:
    """G.711 table 1a: even bits are sent inverted; sign bit 1 is positive; output 2q + 1 in
    segment 0 and (2q + 33) 2^(s-1) above, in units of 1/4096 full scale, x8 for 16-bit."""
    bits = code ^ 0x55
    s, q = (bits >> 4) & 7, bits & 15
    level = 8 * ((2 * q + 1) if s == 0 else (2 * q + 33) << (s - 1))
    return level if bits & 0x80 else -level


def _intervals(lower_bound_of: dict[tuple[int, int], int]) -> tuple[list[int], list[tuple[int, int]]]:
    ordered = sorted((lo, key) for key, lo in lower_bound_of.items())
    return [lo for lo, _ in ordered], [key for _, key in ordered]


# Lower decision value of each (segment, step) interval in 16-bit units.
_ULAW_LOWS, _ULAW_KEYS = _intervals(
    {(s, q): max(0, 4 * ((1 << s) * (2 * q + 32) - 33)) for s in range(8) for q in range(16)}
)
_ALAW_LOWS, _ALAW_KEYS = _intervals(
    {(s, q): 8 * (2 * q if s == 0 else (2 * q + 32) << (s - 1)) for s in range(8) for q in range(16)}
)


def reference_ulaw_encode(sample: int) -> int:
    s, q = _ULAW_KEYS[bisect.bisect_right(_ULAW_LOWS, abs(sample)) - 1]
    negative = 0x80 if sample < 0 else 0
    return (negative | (s << 4) | q) ^ 0xFF


def reference_alaw_encode(sample: int) -> int:
    s, q = _ALAW_KEYS[bisect.bisect_right(_ALAW_LOWS, abs(sample)) - 1]
    sign = 0x80 if sample >= 0 else 0
    return (sign | (s << 4) | q) ^ 0x55


def test_reference_formulas_match_known_codes() -> None:
    # Well-known anchor points of the G.711 tables, so the reference itself is checked.
    assert reference_ulaw_level(0xFF) == 0
    assert reference_ulaw_level(0x80) == 32124
    assert reference_ulaw_level(0x00) == -32124
    assert reference_alaw_level(0xD5) == 8
    assert reference_alaw_level(0xAA) == 32256
    assert reference_alaw_level(0x2A) == -32256


@pytest.mark.parametrize("code", range(256))
def test_decode_every_code_matches_g711(code: int) -> None:
    assert g711.ULAW_TO_LINEAR[code] == reference_ulaw_level(code)
    assert g711.ALAW_TO_LINEAR[code] == reference_alaw_level(code)


def test_encode_every_16bit_sample_matches_g711_decision_intervals() -> None:
    ulaw_wrong = [x for x in range(-32768, 32768) if g711.ulaw_encode_sample(x) != reference_ulaw_encode(x)]
    alaw_wrong = [x for x in range(-32768, 32768) if g711.alaw_encode_sample(x) != reference_alaw_encode(x)]
    assert ulaw_wrong == []
    assert alaw_wrong == []


@pytest.mark.parametrize("code", range(256))
def test_transcoding_tables_follow_reference(code: int) -> None:
    assert g711.ULAW_TO_ALAW[code] == reference_alaw_encode(reference_ulaw_level(code))
    assert g711.ALAW_TO_ULAW[code] == reference_ulaw_encode(reference_alaw_level(code))


def test_payload_transcoding_is_translate() -> None:
    payload = bytes(range(256))
    alaw = payload.translate(g711.ULAW_TO_ALAW)
    assert alaw == bytes(reference_alaw_encode(reference_ulaw_level(c)) for c in payload)
    assert g711.transcode_table("PCMU", "PCMA") is g711.ULAW_TO_ALAW
    assert g711.transcode_table("PCMA", "PCMU") is g711.ALAW_TO_ULAW
    assert g711.transcode_table("PCMU", "PCMU") is None
    with pytest.raises(ValueError, match="G722"):
        g711.transcode_table("PCMU", "G722")


@pytest.mark.parametrize("codec", [g711.PCMU, g711.PCMA])
def test_codec_decode_and_encode_whole_payloads(codec: g711.G711Codec) -> None:
    reference = reference_ulaw_level if codec.name == "PCMU" else reference_alaw_level
    payload = bytes(range(256))
    pcm = codec.decode(payload)
    assert struct.unpack("<256h", pcm) == tuple(reference(c) for c in payload)
    # Encoding the decoded levels gives the codes back (mu-law's negative zero becomes positive zero).
    expected = bytes(0xFF if (codec.name == "PCMU" and c == 0x7F) else c for c in payload)
    assert codec.encode(pcm) == expected


def test_encode_rejects_odd_length_pcm() -> None:
    with pytest.raises(ValueError, match="even number of bytes"):
        g711.PCMU.encode(b"\x00\x01\x02")
