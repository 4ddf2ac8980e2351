"""In-band DTMF detection (ITU-T Q.23 frequencies, Q.24 reception rules) with the Goertzel algorithm on
decoded 8 kHz 16-bit PCM, for legs whose peer sends key presses as tones instead of RFC 4733 events.

Sans-IO: ``feed(pcm)`` returns the digits that started in it. Blocks of 205 samples (25.6 ms, the usual
choice: bins fall close to the eight frequencies). A digit needs one row and one column tone holding most
of the block's energy, within the allowed twist, in two consecutive blocks (a tone of at least ~40 ms, as
Q.24 requires), and is reported once until a block without it.
"""

from __future__ import annotations

import math
import sys
from array import array

ROW_FREQUENCIES = (697.0, 770.0, 852.0, 941.0)
COLUMN_FREQUENCIES = (1209.0, 1336.0, 1477.0, 1633.0)
KEYPAD = ("123A", "456B", "789C", "*0#D")
SAMPLE_RATE = 8000
BLOCK_SIZE = 205

_MIN_RMS = 150.0  # about -37 dBm0 for G.711 full scale: quieter blocks are silence
_MIN_TONE_SHARE = 0.7  # the two tones together hold at least this share of the block's energy
_MAX_TWIST = 6.3  # 8 dB between the row and column tone powers
_MAX_NEIGHBOUR = 0.3  # the second strongest of a group must be this much weaker than the strongest


def _coefficient(frequency: float) -> float:
    return 2.0 * math.cos(2.0 * math.pi * frequency / SAMPLE_RATE)


_ROW_COEFFICIENTS = tuple(_coefficient(f) for f in ROW_FREQUENCIES)
_COLUMN_COEFFICIENTS = tuple(_coefficient(f) for f in COLUMN_FREQUENCIES)


def goertzel_power(samples: array[int] | list[float], coefficient: float) -> float:
    """Squared magnitude of one DFT bin, coefficient = 2 cos(2 pi f / fs) (Goertzel's recurrence)."""
    s1 = s2 = 0.0
    for sample in samples:
        s1, s2 = sample + coefficient * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coefficient * s1 * s2


def classify_block(samples: array[int]) -> str | None:
    """The DTMF digit present in one block, or None."""
    energy = float(sum(s * s for s in samples))
    count = len(samples)
    if count == 0 or math.sqrt(energy / count) < _MIN_RMS:
        return None
    rows = [goertzel_power(samples, c) for c in _ROW_COEFFICIENTS]
    columns = [goertzel_power(samples, c) for c in _COLUMN_COEFFICIENTS]
    row = max(range(4), key=rows.__getitem__)
    column = max(range(4), key=columns.__getitem__)
    row_power, column_power = rows[row], columns[column]
    # A pure tone of energy E gives a Goertzel power of about E * N / 2.
    if (row_power + column_power) < _MIN_TONE_SHARE * energy * count / 2:
        return None
    if not 1 / _MAX_TWIST <= row_power / max(column_power, 1e-9) <= _MAX_TWIST:
        return None
    if any(p > _MAX_NEIGHBOUR * row_power for i, p in enumerate(rows) if i != row):
        return None
    if any(p > _MAX_NEIGHBOUR * column_power for i, p in enumerate(columns) if i != column):
        return None
    return KEYPAD[row][column]


class InbandDtmfDetector:
    """Key presses in a stream of 8 kHz 16-bit little-endian PCM, each reported once."""

    def __init__(self) -> None:
        self._pending = array("h")
        self._candidate: str | None = None
        self._reported: str | None = None

    def feed(self, pcm: bytes) -> list[str]:
        """Add PCM; return the digits whose tone was confirmed in it."""
        samples = array("h")
        samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
        if sys.byteorder != "little":
            samples.byteswap()
        self._pending.extend(samples)
        digits: list[str] = []
        while len(self._pending) >= BLOCK_SIZE:
            block = self._pending[:BLOCK_SIZE]
            del self._pending[:BLOCK_SIZE]
            digit = classify_block(block)
            if digit is None or digit != self._candidate:
                if digit != self._reported:
                    self._reported = None
                self._candidate = digit
                continue
            if digit != self._reported:
                self._reported = digit
                digits.append(digit)
        return digits
