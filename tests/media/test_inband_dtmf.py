"""In-band DTMF by Goertzel, on tones generated here from the Q.23 frequency table."""

from __future__ import annotations

import math
import random
import struct

import pytest

from cti_server.media.inband_dtmf import InbandDtmfDetector

FREQUENCIES = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}


def tone(frequencies: tuple[float, ...], ms: int, amplitude: float = 6000.0) -> list[float]:
    n = 8 * ms
    return [sum(amplitude * math.sin(2 * math.pi * f * i / 8000) for f in frequencies) for i in range(n)]


def pcm(samples: list[float]) -> bytes:
    return struct.pack(f"<{len(samples)}h", *(max(-32768, min(32767, int(s))) for s in samples))


def detect(samples: list[float], chunk: int = 160) -> list[str]:
    detector = InbandDtmfDetector()
    data = pcm(samples)
    digits: list[str] = []
    for offset in range(0, len(data), 2 * chunk):
        digits.extend(detector.feed(data[offset : offset + 2 * chunk]))
    return digits


def test_all_sixteen_digits_in_sequence() -> None:
    keys = "123A456B789C*0#D"
    samples: list[float] = []
    for key in keys:
        samples += tone(FREQUENCIES[key], 70) + [0.0] * 8 * 50
    assert "".join(detect(samples)) == keys


def test_a_held_key_is_one_digit_and_a_repeat_after_silence_is_two() -> None:
    held = tone(FREQUENCIES["5"], 400)
    assert detect(held) == ["5"]
    twice = tone(FREQUENCIES["5"], 80) + [0.0] * 400 + tone(FREQUENCIES["5"], 80)
    assert detect(twice) == ["5", "5"]


def test_twisted_but_allowed_and_noisy_tones_still_detected() -> None:
    rng = random.Random(7)
    low, high = FREQUENCIES["9"]
    samples = [a + 0.6 * b + rng.gauss(0, 150) for a, b in zip(tone((low,), 100), tone((high,), 100),
                                                                 strict=True)]
    assert detect(samples) == ["9"]


@pytest.mark.parametrize(
    "samples",
    [
        tone((1000.0,), 300),  # a single tone (dial-tone-like) is not a digit
        tone(FREQUENCIES["1"], 20),  # too short for Q.24
        tone(FREQUENCIES["1"], 200, amplitude=40),  # too quiet
        [random.Random(3).gauss(0, 4000) for _ in range(8 * 300)],  # noise
        tone((697, 1209, 1336), 200),  # three tones
    ],
)
def test_non_digits_are_not_detected(samples: list[float]) -> None:
    assert detect(samples) == []
