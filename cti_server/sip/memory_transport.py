"""Transports without sockets: the stack driven in memory (tests and benchmarks).

``SipComponent`` sends through ``udp_flow(remote).send(data)``; with ``MemoryTransports`` in place of its
``SipTransports`` every datagram it sends lands in ``MemoryFlow.sent`` (or nowhere, with ``keep=False``),
and requests are fed to it as bytes.
"""

from __future__ import annotations

Address = tuple[str, int]


class MemoryFlow:
    """A UDP flow that keeps what the stack sends (``keep=False``: drops it, for long benchmark runs)."""

    transport = "udp"
    reliable = False
    remote: Address = ("127.0.0.1", 5061)
    local: Address = ("127.0.0.1", 5060)
    is_closed = False

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> None:
        if self.keep:
            self.sent.append(data)


class MemoryTransports:
    """Hands every UDP destination the one ``flow``; the local address is 127.0.0.1:5060."""

    def __init__(self, flow: MemoryFlow) -> None:
        self.flow = flow

    def udp_flow(self, remote: Address) -> MemoryFlow:
        return self.flow

    def local_address(self, transport: str) -> Address:
        return MemoryFlow.local

    async def stop(self) -> None:
        return None
