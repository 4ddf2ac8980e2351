"""RTP port allocator: even ports, RTCP = RTP + 1 in range, exhaustion, never the same port twice."""

from __future__ import annotations

import pytest

from cti_server.media.ports import PortsExhausted, RtpPortAllocator


def test_allocates_even_ports_with_rtcp_in_range_until_exhausted() -> None:
    allocator = RtpPortAllocator(20001, 20010)  # odd start: first pair is 20002/20003; 20010 has no RTCP
    ports = [allocator.allocate() for _ in range(4)]
    assert ports == [20002, 20004, 20006, 20008]
    assert allocator.capacity == 4
    with pytest.raises(PortsExhausted, match="4 RTP port pairs"):
        allocator.allocate()


def test_never_hands_out_a_port_in_use_and_reuses_released_last() -> None:
    allocator = RtpPortAllocator(30000, 30099)
    held = {allocator.allocate() for _ in range(30)}
    assert len(held) == 30
    released = sorted(held)[:10]
    for port in released:
        allocator.release(port)
        held.remove(port)
    fresh = [allocator.allocate() for _ in range(allocator.capacity - allocator.in_use)]
    assert not set(fresh) & held
    assert fresh[-10:] == released  # FIFO: released ports come back last
    assert len(set(fresh) | held) == allocator.capacity


def test_double_release_and_bad_range_are_errors() -> None:
    allocator = RtpPortAllocator(40000, 40003)
    port = allocator.allocate()
    allocator.release(port)
    with pytest.raises(ValueError, match="not allocated"):
        allocator.release(port)
    with pytest.raises(ValueError, match="no even/odd pair"):
        RtpPortAllocator(40001, 40002)


def test_random_start_still_hands_out_every_pair_once() -> None:
    allocator = RtpPortAllocator(30000, 30099, start_at_random=True)
    ports = [allocator.allocate() for _ in range(50)]
    assert sorted(ports) == list(range(30000, 30100, 2))


def test_random_start_differs_between_allocators() -> None:
    firsts = {RtpPortAllocator(20000, 29999, start_at_random=True).allocate() for _ in range(20)}
    assert len(firsts) > 1
    assert all(20000 <= p <= 29998 and p % 2 == 0 for p in firsts)
