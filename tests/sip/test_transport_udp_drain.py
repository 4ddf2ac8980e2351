"""The UDP listener reads a burst of queued datagrams in one event-loop turn (RFC 3261 18.1.1 / 18.2.1:
each datagram is one message), in arrival order, and more than one batch still arrives complete."""

from __future__ import annotations

import asyncio
import socket

import pytest

from cti_server.sip.stats import SipStats
from cti_server.sip.transport import UDP_DRAIN_BATCH, Flow, UdpEndpoint


async def test_burst_is_read_in_order_and_completely() -> None:
    received: list[tuple[bytes, tuple[str, int]]] = []
    stats = SipStats()
    loop = asyncio.get_running_loop()
    transport, endpoint = await loop.create_datagram_endpoint(
        lambda: UdpEndpoint(lambda data, flow: received.append((data, flow.remote)), stats),
        local_addr=("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sender.bind(("127.0.0.1", 0))
        count = UDP_DRAIN_BATCH * 2 + 5
        for i in range(count):  # all queued before the loop runs again
            sender.sendto(b"message %d" % i, endpoint.local)
        for _ in range(200):
            if len(received) == count:
                break
            await asyncio.sleep(0.01)
        assert [data for data, _ in received] == [b"message %d" % i for i in range(count)]
        assert {remote for _, remote in received} == {sender.getsockname()}
        assert stats["udp_datagrams_in"] == count
    finally:
        sender.close()
        endpoint.close()
        transport.close()
    await asyncio.sleep(0)
    assert endpoint._drain is None


async def test_answer_from_a_drained_datagram_goes_back_to_its_sender() -> None:
    loop = asyncio.get_running_loop()

    def echo(data: bytes, flow: Flow) -> None:
        flow.send(b"re:" + data)

    transport, endpoint = await loop.create_datagram_endpoint(
        lambda: UdpEndpoint(echo, SipStats()), local_addr=("127.0.0.1", 0))
    peers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    try:
        for index, peer in enumerate(peers):
            peer.bind(("127.0.0.1", 0))
            peer.settimeout(2.0)
            peer.sendto(b"%d" % index, endpoint.local)
        answers = []
        for peer in peers:
            answers.append(await loop.run_in_executor(None, peer.recv, 100))
        assert answers == [b"re:0", b"re:1", b"re:2"]
    finally:
        for peer in peers:
            peer.close()
        transport.close()


def test_uvloop_reads_bursts_itself() -> None:
    uvloop = pytest.importorskip("uvloop")  # a runtime dependency; skipped only where not installed
    received: list[bytes] = []

    async def burst() -> UdpEndpoint:
        loop = asyncio.get_running_loop()
        transport, endpoint = await loop.create_datagram_endpoint(
            lambda: UdpEndpoint(lambda data, flow: received.append(data), SipStats()),
            local_addr=("127.0.0.1", 0))
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for i in range(40):
                sender.sendto(b"%d" % i, endpoint.local)
            for _ in range(200):
                if len(received) == 40:
                    break
                await asyncio.sleep(0.01)
        finally:
            sender.close()
            endpoint.close()
            transport.close()
        return endpoint

    endpoint = uvloop.run(burst())
    assert endpoint._drain is None  # libuv already reads up to 32 datagrams per wake-up
    assert received == [b"%d" % i for i in range(40)]
