"""WAV files (RIFF PCM, read with the stdlib ``wave`` module) to the 8 kHz mono 16-bit PCM that G.711
frames are encoded from.

8-bit and 16-bit PCM, mono or stereo (mixed down), at any sample rate (resampled to 8 kHz by linear
interpolation: fine for hold music, not a studio resampler). Anything else is rejected with a
``WavFormatError`` naming the property that is wrong.
"""

from __future__ import annotations

import sys
import wave
from array import array
from pathlib import Path

from cti_server.media.g711 import G711Codec

TARGET_RATE = 8000


class WavFormatError(ValueError):
    """A WAV file this module cannot play; ``field`` names the property (format, sample width...)."""

    def __init__(self, path: Path | str, field: str, reason: str) -> None:
        super().__init__(f"{path}: WAV {field}: {reason}")
        self.field = field


def read_wav_pcm(path: Path | str) -> bytes:
    """The file's audio as 16-bit little-endian mono PCM at 8 kHz."""
    try:
        with wave.open(str(path), "rb") as wav:
            channels = wav.getnchannels()
            width = wav.getsampwidth()
            rate = wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except wave.Error as exc:
        raise WavFormatError(path, "format", f"{exc} (expected uncompressed PCM)") from exc
    except EOFError as exc:
        raise WavFormatError(path, "format", "file is truncated") from exc
    if channels not in (1, 2):
        raise WavFormatError(path, "channels", f"expected mono or stereo, got {channels}")
    if width not in (1, 2):
        raise WavFormatError(path, "sample width", f"expected 8 or 16 bits, got {8 * width}")
    if rate <= 0:
        raise WavFormatError(path, "sample rate", f"invalid rate {rate}")
    samples = _to_int16(raw, width)
    if channels == 2:
        samples = array("h", ((samples[i] + samples[i + 1]) // 2 for i in range(0, len(samples) - 1, 2)))
    if not samples:
        raise WavFormatError(path, "data", "no audio frames")
    if rate != TARGET_RATE:
        samples = resample_linear(samples, rate, TARGET_RATE)
    if sys.byteorder != "little":
        samples.byteswap()
    return samples.tobytes()


def _to_int16(raw: bytes, width: int) -> array[int]:
    if width == 1:  # WAV 8-bit PCM is unsigned, centred on 128
        return array("h", ((b - 128) << 8 for b in raw))
    samples = array("h")
    samples.frombytes(raw[: len(raw) - len(raw) % 2])
    if sys.byteorder != "little":
        samples.byteswap()
    return samples


def resample_linear(samples: array[int], rate_in: int, rate_out: int) -> array[int]:
    """Resample by linear interpolation between neighbouring samples."""
    count = max(1, len(samples) * rate_out // rate_in)
    step = rate_in / rate_out
    out = array("h", bytes(2 * count))
    last = len(samples) - 1
    for i in range(count):
        position = i * step
        index = int(position)
        if index >= last:
            out[i] = samples[last]
            continue
        fraction = position - index
        out[i] = int(samples[index] + (samples[index + 1] - samples[index]) * fraction)
    return out


def pcm_to_frames(pcm: bytes, codec: G711Codec, ptime_ms: int = 20) -> list[bytes]:
    """Split 8 kHz 16-bit PCM into ``ptime_ms`` frames encoded with ``codec``; the last frame is padded
    with silence so every frame has the same length."""
    frame_bytes = 2 * TARGET_RATE * ptime_ms // 1000
    if not pcm:
        raise ValueError("no PCM audio to split into frames")
    padded = pcm + bytes(-len(pcm) % frame_bytes)
    encoded = codec.encode(padded)
    size = frame_bytes // 2
    return [encoded[i : i + size] for i in range(0, len(encoded), size)]
