"""RFC 4733 telephone-events: payload, detector (each key press once) and generator."""

from __future__ import annotations

import pytest

from cti_server.media.dtmf import (
    DtmfDetector,
    DtmfDigit,
    TelephoneEvent,
    TelephoneEventError,
    event_code,
    telephone_event_frames,
)


def test_payload_round_trip_and_bits() -> None:
    event = TelephoneEvent(event=11, end=True, volume=10, duration=800)
    assert event.serialize() == bytes([11, 0x80 | 10, 0x03, 0x20])
    assert TelephoneEvent.parse(event.serialize()) == event
    assert event.digit == "#"
    assert TelephoneEvent(16).digit is None  # flash is not a digit


@pytest.mark.parametrize(
    ("event", "field"),
    [(TelephoneEvent(256), "event"), (TelephoneEvent(1, volume=64), "volume"),
     (TelephoneEvent(1, duration=70000), "duration")],
)
def test_serialize_names_bad_field(event: TelephoneEvent, field: str) -> None:
    with pytest.raises(TelephoneEventError) as info:
        event.serialize()
    assert info.value.field == field


def test_parse_rejects_short_payload_and_bad_digit() -> None:
    with pytest.raises(TelephoneEventError, match="payload"):
        TelephoneEvent.parse(b"\x01\x02")
    with pytest.raises(TelephoneEventError, match="event"):
        event_code("x")
    assert [event_code(d) for d in "09*#aD"] == [0, 9, 10, 11, 12, 15]


def test_generator_start_updates_and_three_ends() -> None:
    frames = telephone_event_frames("5", duration_ms=100, ptime_ms=20)
    events = [TelephoneEvent.parse(f.payload) for f in frames]
    assert [f.marker for f in frames] == [True] + [False] * 6
    assert [f.offset_ms for f in frames] == [0, 20, 40, 60, 80, 100, 120]
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert {e.event for e in events} == {5}
    with pytest.raises(TelephoneEventError):
        telephone_event_frames("1", duration_ms=10, ptime_ms=20)


def _digits(detector: DtmfDetector, packets: list[tuple[int, bytes]]) -> list[DtmfDigit]:
    out: list[DtmfDigit] = []
    for timestamp, payload in packets:
        out.extend(detector.receive(timestamp, payload))
    return out


def _event(digit: str, timestamp: int, **kwargs: int) -> list[tuple[int, bytes]]:
    return [(timestamp, f.payload) for f in telephone_event_frames(digit, **kwargs)]


def test_each_key_press_reported_once_despite_three_end_packets() -> None:
    detector = DtmfDetector()
    digits = _digits(detector, _event("1", 1000) + _event("2", 3000) + _event("2", 5000))
    assert [(d.digit, d.timestamp, d.duration) for d in digits] == [
        ("1", 1000, 800), ("2", 3000, 800), ("2", 5000, 800)
    ]
    assert detector.flush() == []


def test_duplicates_and_reordering_do_not_repeat_a_digit() -> None:
    detector = DtmfDetector()
    packets = _event("9", 160)
    noisy = [packets[0], packets[2], packets[1], packets[1], packets[4], packets[3], packets[5],
             packets[4], packets[6], packets[6]]
    digits = _digits(detector, noisy)
    assert [(d.digit, d.duration) for d in digits] == [("9", 800)]
    # A retransmitted end that arrives after the next event started is ignored too.
    assert _digits(detector, [*_event("0", 2000)[:2], packets[6]]) == []
    assert [d.digit for d in detector.flush()] == ["0"]


def test_lost_end_packets_reported_when_the_next_event_begins() -> None:
    detector = DtmfDetector()
    first = [p for p in _event("4", 100) if not TelephoneEvent.parse(p[1]).end]
    digits = _digits(detector, first + _event("7", 2000))
    assert [(d.digit, d.duration) for d in digits] == [("4", 640), ("7", 800)]


def test_event_whose_start_was_lost_is_still_reported() -> None:
    detector = DtmfDetector()
    only_end = [p for p in _event("*", 500) if TelephoneEvent.parse(p[1]).end]
    assert [d.digit for d in _digits(detector, only_end)] == ["*"]


def test_long_event_in_segments_is_one_digit() -> None:
    detector = DtmfDetector()
    first_segment = (100, TelephoneEvent(3, duration=0xFFFF).serialize())
    second = (100 + 0xFFFF, TelephoneEvent(3, end=True, duration=800).serialize())
    digits = _digits(detector, [first_segment, second, second, second])
    assert [(d.digit, d.timestamp, d.duration) for d in digits] == [("3", 100, 0xFFFF + 800)]


def test_garbage_and_non_digit_events_are_counted_or_ignored() -> None:
    detector = DtmfDetector()
    assert detector.receive(1, b"\x01") == []
    assert detector.invalid_payloads == 1
    assert detector.receive(2, TelephoneEvent(16, end=True).serialize()) == []
