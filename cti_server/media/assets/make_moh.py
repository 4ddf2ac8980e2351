"""Generate moh.wav, the music on hold shipped with the server: a calm music-box waltz in C major.

8 kHz mono 16-bit PCM (what G.711 carries), about 9.6 seconds, looping cleanly (it starts and ends on
silence and on the tonic). Standard library only; run it to rebuild the file:

    python cti_server/media/assets/make_moh.py [output.wav]
"""

from __future__ import annotations

import math
import sys
import wave
from array import array
from pathlib import Path

RATE = 8000
BEAT = 0.4  # seconds per beat: 150 bpm in 3/4, one bar = 1.2 s
VOLUME = 0.28

# (note, beats) per bar; "-" is a rest. Eight bars, I - vi - IV - V - I - IV - V - I.
MELODY = [
    [("E5", 1), ("G5", 1), ("C6", 1)],
    [("A5", 2), ("G5", 1)],
    [("F5", 1), ("A5", 1), ("C6", 1)],
    [("B5", 2), ("G5", 1)],
    [("E5", 1), ("D5", 1), ("C5", 1)],
    [("F5", 1), ("E5", 1), ("D5", 1)],
    [("D5", 1), ("G5", 1), ("F5", 1)],
    [("E5", 2), ("-", 1)],
]
BASS = ["C3", "A2", "F2", "G2", "C3", "F2", "G2", "C3"]
CHORD_TONES = {"C3": ("E4", "G4"), "A2": ("C4", "E4"), "F2": ("A3", "C4"), "G2": ("B3", "D4")}

_SEMITONES = {"C": -9, "D": -7, "E": -5, "F": -4, "G": -2, "A": 0, "B": 2}


def frequency(note: str) -> float:
    """Equal temperament, A4 = 440 Hz."""
    return 440.0 * 2 ** ((_SEMITONES[note[0]] + 12 * (int(note[1:]) - 4)) / 12)


def add_tone(buffer: list[float], start: float, length: float, note: str, level: float) -> None:
    """A plucked, music-box-like tone: fundamental plus soft harmonics, quick attack, long decay."""
    f = frequency(note)
    first = int(start * RATE)
    count = int((length + 0.6) * RATE)
    for i in range(count):
        index = first + i
        if index >= len(buffer):
            break
        t = i / RATE
        envelope = min(1.0, t / 0.01) * math.exp(-3.2 * t)
        sample = (math.sin(2 * math.pi * f * t) + 0.3 * math.sin(4 * math.pi * f * t)
                  + 0.08 * math.sin(6 * math.pi * f * t))
        buffer[index] += level * envelope * sample


def render() -> array[int]:
    """The melody as 16-bit samples at 8 kHz, peak-normalized to VOLUME."""
    bar = 3 * BEAT
    total = len(MELODY) * bar
    buffer = [0.0] * int(total * RATE)
    for number, notes in enumerate(MELODY):
        beat = 0
        for note, beats in notes:
            if note != "-":
                add_tone(buffer, number * bar + beat * BEAT, beats * BEAT, note, 0.55)
            beat += beats
        bass = BASS[number]
        add_tone(buffer, number * bar, bar, bass, 0.35)
        for offset, tone in enumerate(CHORD_TONES[bass], start=1):
            add_tone(buffer, number * bar + offset * BEAT, BEAT, tone, 0.18)
    # Fade the last 50 ms so the loop point does not click.
    fade = int(0.05 * RATE)
    for i in range(fade):
        buffer[-1 - i] *= i / fade
    peak = max(abs(v) for v in buffer) or 1.0
    return array("h", (int(32767 * VOLUME * v / peak) for v in buffer))


def main(argv: list[str]) -> None:
    """Write the WAV to argv[1] or next to this script."""
    target = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent / "moh.wav"
    samples = render()
    if sys.byteorder != "little":
        samples.byteswap()
    with wave.open(str(target), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(samples.tobytes())


if __name__ == "__main__":
    main(sys.argv)
