"""media.receive_buffer_ms: an RTP socket queues about that much audio, and a relay that falls behind
drops what comes beyond it instead of delaying every later packet (SO_RCVBUF, Linux).

The relay runs on the event loop here, so a burst sent without yielding to the loop finds it unable to
read, as an overloaded relay would be. No timing is asserted: a sentinel sent after the backlog was
served marks the end of what the relay let through.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import sys

import pytest

from cti_server.config import MediaConfig
from cti_server.media.endpoint import MediaSocketPoller, RtpEndpoint, receive_buffer_size
from cti_server.media.ports import RtpPortAllocator
from cti_server.media.relay import LegMedia, RtpRelay

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_RCVBUF sizes are Linux's")

HOST = "127.0.0.1"
TIMEOUT = 5.0
BACKLOG = 50  # one second of 20 ms packets
SENTINEL = 9999


def packet(seq: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, 160 * seq, 0xCA11) + b"\xff" * 160


async def relayed_after_backlog(receive_buffer: int) -> list[int]:
    """Sequence numbers the callee gets of a one-second burst sent while the relay cannot read."""
    base = random.randrange(30000, 60000, 2)
    allocator = RtpPortAllocator(base, base + 99)
    a = await RtpEndpoint.open(HOST, allocator, call_id="rcvbuf", leg="a", rtcp_interval=0,
                               receive_buffer=receive_buffer)
    b = await RtpEndpoint.open(HOST, allocator, call_id="rcvbuf", leg="b", rtcp_interval=0,
                               receive_buffer=receive_buffer)
    caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    callee = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    caller.bind((HOST, 0))
    callee.bind((HOST, 0))
    callee.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    callee.setblocking(False)
    a.set_remote(caller.getsockname(), frozenset({0}))
    b.set_remote(callee.getsockname(), frozenset({0}))
    relay = RtpRelay(a, LegMedia(), b, LegMedia(), call_id="rcvbuf")
    loop = asyncio.get_running_loop()
    try:
        caller.sendto(packet(0), a.local_address)  # latches leg a: later packets reach its connected socket
        assert await asyncio.wait_for(loop.sock_recv(callee, 2048), TIMEOUT) == packet(0)
        for seq in range(1, BACKLOG + 1):  # no await: the relay cannot read meanwhile
            caller.sendto(packet(seq), a.local_address)
        await asyncio.sleep(0.2)  # the relay serves what the kernel kept
        caller.sendto(packet(SENTINEL), a.local_address)
        received = []
        while True:
            data = await asyncio.wait_for(loop.sock_recv(callee, 2048), TIMEOUT)
            seq = struct.unpack_from("!H", data, 2)[0]
            if seq == SENTINEL:
                return received
            received.append(seq)
    finally:
        relay.close()
        a.close()
        b.close()
        caller.close()
        callee.close()


@pytest.fixture(autouse=True)
def relay_on_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MediaSocketPoller, "threaded", False)


async def test_a_backlog_is_cut_to_about_the_configured_audio() -> None:
    config = MediaConfig()
    assert config.receive_buffer_ms == 100
    received = await relayed_after_backlog(receive_buffer_size(config.receive_buffer_ms, config.ptime))
    # About 100 ms of 20 ms packets (the kernel's charge per datagram varies a little): the oldest ones,
    # in order; the rest of the second was dropped, not queued.
    assert 3 <= len(received) <= 10
    assert received == list(range(1, len(received) + 1))


async def test_without_a_receive_buffer_the_kernel_default_queues_the_whole_second() -> None:
    assert await relayed_after_backlog(receive_buffer_size(0, 20)) == list(range(1, BACKLOG + 1))


def test_receive_buffer_size_grows_with_the_audio_it_holds() -> None:
    assert receive_buffer_size(0, 20) == 0
    assert receive_buffer_size(100, 20) == 5 * receive_buffer_size(20, 20)
    assert receive_buffer_size(100, 10) == 2 * receive_buffer_size(100, 20)
