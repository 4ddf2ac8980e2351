"""RFC 4733 telephone-events for DTMF: payload format, a receiver that turns packets into digits exactly
once, and the packet sequence a sender emits for one digit.

Sans-IO: the detector is fed (RTP timestamp, payload) of each telephone-event packet and returns the
digits that completed; the generator returns payloads with their send offsets, and the caller stamps them
into RTP packets (one RTP timestamp for the whole event, a new sequence number per packet).
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from cti_server.media.rtp import ts_diff

DTMF_DIGITS = "0123456789*#ABCD"
"""Event codes 0-15 of RFC 4733 section 3.2, in order."""
MAX_DURATION = 0xFFFF
_PAYLOAD = struct.Struct("!BBH")


class TelephoneEventError(ValueError):
    """A telephone-event payload or digit that RFC 4733 does not allow; ``field`` names what is wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"telephone-event {field}: {reason}")
        self.field = field


def event_code(digit: str) -> int:
    """The RFC 4733 event code of a DTMF digit (``"0"``-``"9"``, ``"*"``, ``"#"``, ``"A"``-``"D"``)."""
    code = DTMF_DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if code < 0:
        raise TelephoneEventError("event", f"{digit!r} is not a DTMF digit")
    return code


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """The 4-octet telephone-event payload (RFC 4733 section 2.3).

    ``volume`` is the power level in -dBm0 (0-63); ``duration`` is in RTP timestamp units since the
    event began (the RTP timestamp of the packet).
    """

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        """Parse the first event of a payload (further 4-octet blocks are RFC 2198 redundancy, unused)."""
        if len(payload) < 4:
            raise TelephoneEventError("payload", f"{len(payload)} bytes, a telephone-event needs 4")
        event, flags, duration = _PAYLOAD.unpack_from(payload)
        return cls(event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration)

    def serialize(self) -> bytes:
        """The 4-octet payload (RFC 4733 section 2.3); raise TelephoneEventError for out-of-range fields."""
        if not 0 <= self.event <= 255:
            raise TelephoneEventError("event", f"expected 0-255, got {self.event}")
        if not 0 <= self.volume <= 63:
            raise TelephoneEventError("volume", f"expected 0-63, got {self.volume}")
        if not 0 <= self.duration <= MAX_DURATION:
            raise TelephoneEventError("duration", f"expected 0-65535, got {self.duration}")
        return _PAYLOAD.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)

    @property
    def digit(self) -> str | None:
        """The DTMF digit of this event, or None for other events (flash, tones...)."""
        return DTMF_DIGITS[self.event] if self.event < len(DTMF_DIGITS) else None


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """One detected key press: ``timestamp`` is the RTP timestamp that identifies the event and
    ``duration`` its length in timestamp units (RFC 4733 section 2.5.2)."""

    digit: str
    timestamp: int
    duration: int
    volume: int


class DtmfDetector:
    """Receiver of RFC 4733 DTMF events (section 2.5.2): reports each key press exactly once.

    All packets of one event carry the same RTP timestamp, so an event is identified by it. A digit is
    reported at its first end packet; the two retransmitted end packets and late updates of an event
    already reported are ignored. If the end packets of an event are all lost, the digit is reported when
    the next event begins, or by ``flush`` when the stream stops. Events that reached the 0xFFFF duration
    limit continue in a new segment with a new timestamp (section 2.5.1.3) and stay one digit.
    """

    def __init__(self, recent_events: int = 8) -> None:
        self._timestamp: int | None = None
        self._event: TelephoneEvent | None = None
        self._start_timestamp = 0
        self._segments_duration = 0
        self._finished: deque[int] = deque(maxlen=recent_events)
        self.invalid_payloads = 0

    def receive(self, timestamp: int, payload: bytes) -> list[DtmfDigit]:
        """Account one telephone-event packet; return the digits that completed with it."""
        try:
            event = TelephoneEvent.parse(payload)
        except TelephoneEventError:
            self.invalid_payloads += 1
            return []
        if event.digit is None:
            return []
        if timestamp in self._finished or (self._finished and ts_diff(timestamp, self._finished[-1]) < 0):
            return []  # retransmitted end packet or a late packet of an event already reported
        done: list[DtmfDigit] = []
        if self._timestamp is not None and timestamp != self._timestamp:
            current = self._event
            assert current is not None
            if ts_diff(timestamp, self._timestamp) < 0:
                return []  # older than the event in progress: reordered, already superseded
            if current.event == event.event and current.duration == MAX_DURATION:
                # Long event continues in a new segment (RFC 4733 section 2.5.1.3).
                self._segments_duration += MAX_DURATION
                self._timestamp = timestamp
            else:
                done.append(self._finish())
        if self._timestamp is None:
            self._timestamp = timestamp
            self._start_timestamp = timestamp
            self._segments_duration = 0
        if self._event is None or event.duration >= self._event.duration or event.end:
            self._event = event
        if event.end:
            done.append(self._finish())
        return done

    def flush(self) -> list[DtmfDigit]:
        """Report an event whose end packets never came (the stream stopped or was switched)."""
        return [self._finish()] if self._timestamp is not None else []

    def _finish(self) -> DtmfDigit:
        event = self._event
        timestamp = self._timestamp
        assert event is not None and timestamp is not None and event.digit is not None
        self._finished.append(timestamp)
        self._timestamp = None
        self._event = None
        return DtmfDigit(event.digit, self._start_timestamp, self._segments_duration + event.duration,
                         event.volume)


@dataclass(frozen=True, slots=True)
class TelephoneEventFrame:
    """One packet of a generated event: send it ``offset_ms`` after the event starts, with the RTP
    marker bit set when ``marker`` (first packet only, RFC 4733 section 2.5.1.1)."""

    offset_ms: int
    marker: bool
    payload: bytes


def telephone_event_frames(
    digit: str, duration_ms: int = 100, ptime_ms: int = 20, volume: int = 10, clock_rate: int = 8000
) -> list[TelephoneEventFrame]:
    """The packets a sender emits for one key press (RFC 4733 section 2.5.1): a start packet with the
    marker bit, an update every ``ptime_ms`` with the growing duration, and the end packet sent three
    times with the final duration."""
    code = event_code(digit)
    if duration_ms < ptime_ms or ptime_ms <= 0:
        raise TelephoneEventError("duration", f"{duration_ms} ms is shorter than one packet of {ptime_ms} ms")
    samples_per_packet = clock_rate * ptime_ms // 1000
    count = -(-duration_ms // ptime_ms)
    frames = []
    for index in range(count + 2):
        last = index >= count - 1
        duration = min(samples_per_packet * min(index + 1, count), MAX_DURATION)
        payload = TelephoneEvent(code, end=last, volume=volume, duration=duration).serialize()
        frames.append(TelephoneEventFrame(index * ptime_ms, index == 0, payload))
    return frames
