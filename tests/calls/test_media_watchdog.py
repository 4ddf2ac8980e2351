"""The media watchdog (sans-IO): silence on an answered leg is reported once after the timeout."""

from __future__ import annotations

import pytest

from cti_server.calls.media_session import Direction
from cti_server.calls.media_watchdog import MAX_INTERVAL, MediaWatchdog


def test_silent_leg_is_reported_once_after_the_timeout() -> None:
    dog: MediaWatchdog[str] = MediaWatchdog(10.0)
    assert dog.check(0.0, [("a", 5, True), ("b", 0, True)]) == []
    assert dog.check(5.0, [("a", 9, True), ("b", 0, True)]) == []  # a talks, b silent since 0
    assert dog.check(10.0, [("a", 12, True), ("b", 0, True)]) == ["b"]
    assert dog.check(11.0, [("a", 15, True), ("b", 0, True)]) == []  # reported once
    assert dog.check(16.0, [("a", 15, True), ("b", 1, True)]) == []
    assert dog.check(21.0, [("a", 15, True), ("b", 1, True)]) == ["a"]  # a silent since 11


def test_legs_not_expecting_media_start_their_silence_over() -> None:
    dog: MediaWatchdog[str] = MediaWatchdog(10.0)
    dog.check(0.0, [("held", 3, True)])
    assert dog.check(9.0, [("held", 3, False)]) == []  # put on hold: nothing expected
    assert dog.check(30.0, [("held", 3, False)]) == []
    assert dog.check(31.0, [("held", 3, True)]) == []  # resumed: silence counts from the last held look
    assert dog.check(39.5, [("held", 3, True)]) == []
    assert dog.check(40.0, [("held", 3, True)]) == ["held"]


def test_unknown_counts_and_forgotten_legs() -> None:
    dog: MediaWatchdog[str] = MediaWatchdog(2.0)
    dog.check(0.0, [("gone", 0, True), ("closed", None, True)])
    assert len(dog) == 2
    assert dog.check(5.0, [("closed", None, True)]) == []  # no endpoint: never silent
    assert len(dog) == 1  # "gone" was not handed in: forgotten
    assert dog.check(6.0, [("gone", 0, True)]) == []  # a new watch, not 6 s of silence


def test_disabled_and_interval() -> None:
    off: MediaWatchdog[str] = MediaWatchdog(0.0)
    assert not off.enabled and off.check(100.0, [("a", 0, True)]) == []
    assert MediaWatchdog[str](60.0).interval == MAX_INTERVAL
    assert MediaWatchdog[str](0.4).interval == pytest.approx(0.1)
    with pytest.raises(ValueError):
        MediaWatchdog[str](-1.0)


def test_which_offered_directions_promise_rtp() -> None:
    assert [d.value for d in Direction if d.peer_sends] == ["sendrecv", "sendonly"]
    assert not Direction.RECVONLY.is_hold and not Direction.RECVONLY.peer_sends  # listens: not a hold
