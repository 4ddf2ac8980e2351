"""Call-progress tones as 8 kHz 16-bit PCM: the ringback a caller waiting in a queue can hear instead
of music (``[[calls.dids]] waiting = "ringback"``).

Frequencies and cadences are the national ringing tones listed in ITU-T E.180 Supplement 2: North
America 440 + 480 Hz, 2 s on / 4 s off; the United Kingdom 400 + 450 Hz, 0.4 on / 0.2 off / 0.4 on /
2 off; the CEPT countries 425 Hz, 1 s on / 4 s off. Each frequency is at ``level_dbm0`` (default
-19 dBm0, the North American ringback level), 0 dBm0 being a sine of amplitude 22,812 in 16-bit PCM
(G.711's 3.14 dBm0 full-scale sine at 32,124, ITU-T G.711 table 5/6).
"""

from __future__ import annotations

import math
import sys
from array import array
from dataclasses import dataclass

RATE = 8000
ZERO_DBM0_AMPLITUDE = 22812.0


@dataclass(frozen=True)
class Tone:
    """Frequencies played together, switched by ``cadence``: seconds on, off, on, off... (one cycle)."""

    frequencies: tuple[float, ...]
    cadence: tuple[float, ...]
    level_dbm0: float = -19.0

    def pcm(self) -> bytes:
        """One cycle of the tone as 16-bit little-endian mono PCM at 8 kHz."""
        amplitude = ZERO_DBM0_AMPLITUDE * 10 ** (self.level_dbm0 / 20)
        steps = [2 * math.pi * f / RATE for f in self.frequencies]
        samples = array("h")
        n = 0
        for index, seconds in enumerate(self.cadence):
            count = round(seconds * RATE)
            if index % 2:
                samples.frombytes(bytes(2 * count))
            else:
                samples.extend(round(amplitude * sum(math.sin(step * i) for step in steps))
                               for i in range(n, n + count))
            n += count
        if sys.byteorder == "big":
            samples.byteswap()
        return samples.tobytes()


RINGBACK_TONES: dict[str, Tone] = {
    "north_america": Tone((440.0, 480.0), (2.0, 4.0)),
    "uk": Tone((400.0, 450.0), (0.4, 0.2, 0.4, 2.0)),
    "europe": Tone((425.0,), (1.0, 4.0)),
}
"""``media.ringback_tone`` names one of these."""

__all__ = ["RINGBACK_TONES", "Tone"]
