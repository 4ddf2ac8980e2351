"""Symmetric RTP latching rules (RFC 4961), sans-IO."""

from __future__ import annotations

from cti_server.media.endpoint import SymmetricRtpLatch

SIGNALLED = ("192.0.2.10", 4000)
NAT = ("198.51.100.7", 61000)


def test_latches_on_first_valid_packet_and_sends_there() -> None:
    latch = SymmetricRtpLatch(signalled=SIGNALLED, payload_types=frozenset({0, 101}))
    assert latch.destination == SIGNALLED
    assert latch.accept(NAT, 0, 0xAAAA)
    assert latch.destination == NAT


def test_does_not_latch_on_unexpected_payload_type() -> None:
    latch = SymmetricRtpLatch(signalled=SIGNALLED, payload_types=frozenset({0}))
    assert not latch.accept(NAT, 34, 0xAAAA)
    assert latch.destination == SIGNALLED


def test_after_latching_other_sources_are_rejected_unless_same_ssrc() -> None:
    latch = SymmetricRtpLatch(signalled=SIGNALLED, payload_types=frozenset({0}))
    assert latch.accept(NAT, 0, 0xAAAA)
    assert not latch.accept(("203.0.113.66", 5000), 0, 0xBBBB)  # a stranger
    assert latch.destination == NAT
    moved = ("198.51.100.7", 61002)  # the NAT rebinding moved the phone's port: same SSRC
    assert latch.accept(moved, 0, 0xAAAA)
    assert latch.destination == moved
    assert latch.relatches == 1
    assert not latch.accept(NAT, 8, 0xAAAA)  # same SSRC but not a negotiated payload type


def test_same_source_may_change_ssrc() -> None:
    latch = SymmetricRtpLatch()
    assert latch.accept(NAT, 0, 1)
    assert latch.accept(NAT, 0, 2)
    assert latch.ssrc == 2


def test_reinvite_to_a_new_address_releases_the_latch_and_same_address_keeps_it() -> None:
    latch = SymmetricRtpLatch(signalled=SIGNALLED, payload_types=frozenset({0}))
    latch.accept(NAT, 0, 1)
    latch.expect(SIGNALLED, frozenset({0, 8}))  # hold/resume, same address: keep
    assert latch.destination == NAT
    new = ("192.0.2.20", 4100)
    latch.expect(new, frozenset({0}))
    assert latch.destination == new
    assert latch.accept(("203.0.113.1", 7000), 0, 9)  # the first packet latches again
    assert latch.destination == ("203.0.113.1", 7000)


def test_disabled_sends_to_signalled_and_accepts_everything() -> None:
    latch = SymmetricRtpLatch(enabled=False, signalled=SIGNALLED, payload_types=frozenset({0}))
    assert latch.accept(NAT, 0, 1)
    assert latch.accept(("203.0.113.1", 7000), 0, 2)
    assert latch.destination == SIGNALLED
