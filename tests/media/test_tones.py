"""Ringback tones (ITU-T E.180 Supplement 2): frequencies, cadence and level of each cycle."""

from __future__ import annotations

import math
from array import array

import pytest

from cti_server.config import RINGBACK_TONE_NAMES, ConfigError, MediaConfig
from cti_server.media.inband_dtmf import goertzel_power
from cti_server.media.moh import ringback_from_config
from cti_server.media.tones import RATE, RINGBACK_TONES, Tone


def samples_of(pcm: bytes) -> array[int]:
    samples = array("h")
    samples.frombytes(pcm)
    return samples


def power_at(block: array[int], frequency: float) -> float:
    return goertzel_power(block, 2 * math.cos(2 * math.pi * frequency / RATE)) / len(block) ** 2


def test_every_configurable_name_has_a_tone() -> None:
    assert set(RINGBACK_TONES) == set(RINGBACK_TONE_NAMES)
    with pytest.raises(ConfigError) as info:
        MediaConfig(ringback_tone="mars")
    assert info.value.key == "ringback_tone"


@pytest.mark.parametrize("name", sorted(RINGBACK_TONES))
def test_tone_is_on_and_off_as_its_cadence_says_at_its_frequencies(name: str) -> None:
    tone = RINGBACK_TONES[name]
    samples = samples_of(tone.pcm())
    assert len(samples) == round(sum(tone.cadence) * RATE)
    start = 0
    for index, seconds in enumerate(tone.cadence):
        segment = samples[start:start + round(seconds * RATE)]
        start += len(segment)
        if index % 2:
            assert not any(segment), f"{name}: off segment {index} is not silent"
            continue
        block = segment[:800]  # 100 ms
        wanted = [power_at(block, f) for f in tone.frequencies]
        stray = [power_at(block, f) for f in (300.0, 350.0, 620.0, 1000.0)]
        assert min(wanted) > 100 * max(stray), f"{name}: segment {index} lacks its frequencies"


def test_level_is_minus_19_dbm0_per_frequency() -> None:
    # One 1 kHz frequency at -19 dBm0: RMS = 22,812 / sqrt(2) * 10^(-19/20) (0 dBm0 per G.711).
    samples = samples_of(Tone((1000.0,), (1.0,)).pcm())
    rms = math.sqrt(sum(s * s for s in samples) / len(samples))
    assert rms == pytest.approx(22812 / math.sqrt(2) * 10 ** (-19 / 20), rel=0.01)
    both = samples_of(RINGBACK_TONES["north_america"].pcm())[:RATE]  # the first second is on
    rms_both = math.sqrt(sum(s * s for s in both) / len(both))
    assert rms_both == pytest.approx(math.sqrt(2) * rms, rel=0.02)  # two uncorrelated tones


def test_ringback_is_looped_as_g711_frames_of_the_configured_ptime() -> None:
    sound = ringback_from_config(MediaConfig(ringback_tone="uk", ptime=20))
    frames = sound.frames("PCMA")
    assert len(frames) == round(sum(RINGBACK_TONES["uk"].cadence) * 50)  # 3 s of 20 ms frames
    assert {len(f) for f in frames} == {160}
