"""WAV reading, frame splitting, the shipped hold music and the paced player."""

from __future__ import annotations

import asyncio
import math
import struct
import wave
from pathlib import Path

import pytest

from cti_server.config import MediaConfig
from cti_server.media.g711 import PCMA, PCMU
from cti_server.media.moh import DEFAULT_MOH_FILE, MusicOnHold, PacedPlayer
from cti_server.media.wav import WavFormatError, pcm_to_frames, read_wav_pcm


def write_wav(path: Path, samples: list[int], rate: int = 8000, channels: int = 1, width: int = 2) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        if width == 2:
            wav.writeframes(struct.pack(f"<{len(samples)}h", *samples))
        else:
            wav.writeframes(bytes(samples))
    return path


def test_shipped_moh_is_8khz_mono_16bit_small_and_not_silent() -> None:
    assert DEFAULT_MOH_FILE.stat().st_size < 200_000
    with wave.open(str(DEFAULT_MOH_FILE), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
    moh = MusicOnHold.from_config(MediaConfig())
    assert 3.0 < moh.duration < 12.0
    samples = struct.unpack(f"<{len(moh.pcm) // 2}h", moh.pcm)
    rms = math.sqrt(sum(s * s for s in samples) / len(samples))
    assert 500 < rms < 12000
    frames = moh.frames("PCMU")
    assert {len(f) for f in frames} == {160}
    assert len(frames) == math.ceil(len(samples) / 160)
    assert moh.frames("PCMU") is frames  # encoded once per codec and ptime
    assert {len(f) for f in moh.frames("PCMA", 30)} == {240}


def test_mono_16bit_8khz_is_read_as_is(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "a.wav", [0, 1000, -1000, 32767])
    assert read_wav_pcm(path) == struct.pack("<4h", 0, 1000, -1000, 32767)


def test_stereo_is_mixed_and_16khz_resampled(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "s.wav", [100, 300] * 8, channels=2)
    assert read_wav_pcm(path) == struct.pack("<8h", *[200] * 8)
    ramp = list(range(0, 1600, 100))  # 16 samples at 16 kHz -> 8 at 8 kHz, every other sample
    path16 = write_wav(tmp_path / "r.wav", ramp, rate=16000)
    assert struct.unpack("<8h", read_wav_pcm(path16)) == tuple(range(0, 1600, 200))


def test_8bit_unsigned_is_widened(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "u8.wav", [128, 255, 0], width=1)
    assert struct.unpack("<3h", read_wav_pcm(path)) == (0, 127 << 8, -128 << 8)


def test_unsupported_files_name_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(WavFormatError) as info:
        read_wav_pcm(write_wav(tmp_path / "w24.wav", [0] * 6, width=3))
    assert info.value.field == "sample width"
    garbage = tmp_path / "g.wav"
    garbage.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(WavFormatError) as info:
        read_wav_pcm(garbage)
    assert info.value.field == "format"


def test_frames_are_padded_with_silence() -> None:
    frames = pcm_to_frames(bytes(2 * 170), PCMA, 20)
    assert [len(f) for f in frames] == [160, 160]
    assert frames[1] == PCMA.encode(bytes(320))
    assert pcm_to_frames(bytes(320), PCMU, 10) == [b"\xff" * 80] * 2


async def test_paced_player_loops_frames_in_order() -> None:
    sent: list[bytes] = []
    done = asyncio.Event()

    def send(frame: bytes) -> None:
        sent.append(frame)
        if len(sent) == 7:
            done.set()

    player = PacedPlayer([b"1", b"2", b"3"], 1, send)
    player.start()
    await asyncio.wait_for(done.wait(), 5)
    player.stop()
    assert sent[:7] == [b"1", b"2", b"3", b"1", b"2", b"3", b"1"]
    assert not player.playing
    with pytest.raises(ValueError):
        PacedPlayer([], 20, send)
