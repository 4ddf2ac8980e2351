"""RTP port allocation over the configured range: an even port for RTP and the next odd one for RTCP
(RFC 3550 section 11), each pair handed out once until it is released.

Free pairs wait in a FIFO, so a released pair goes to the back and is not reused at once (late packets
of the previous call do not land in the next one). Allocate and release are O(1). With ``start_at_random``
the FIFO begins at a random pair of the range: a restarted server (or a second one on the same host
sharing the range) does not start on the very ports the last one used.
"""

from __future__ import annotations

import random
from collections import deque


class PortsExhausted(RuntimeError):
    """Every RTP port pair of the range is in use."""


class RtpPortAllocator:
    """Even RTP ports in ``[port_min, port_max]``; port + 1 is its RTCP port and must be in range too."""

    def __init__(self, port_min: int, port_max: int, *, start_at_random: bool = False) -> None:
        first = port_min + (port_min % 2)
        if first + 1 > port_max:
            raise ValueError(f"RTP port range {port_min}-{port_max} holds no even/odd pair")
        self.port_min = port_min
        self.port_max = port_max
        self._free: deque[int] = deque(range(first, port_max, 2))
        if start_at_random:
            self._free.rotate(-random.randrange(len(self._free)))
        self._in_use: set[int] = set()

    @property
    def capacity(self) -> int:
        """How many port pairs the range holds."""
        return len(self._free) + len(self._in_use)

    @property
    def in_use(self) -> int:
        """How many port pairs are allocated now."""
        return len(self._in_use)

    def allocate(self) -> int:
        """An even RTP port not in use; raise PortsExhausted when none is left."""
        if not self._free:
            raise PortsExhausted(
                f"all {self.capacity} RTP port pairs of {self.port_min}-{self.port_max} are in use"
            )
        port = self._free.popleft()
        self._in_use.add(port)
        return port

    def release(self, port: int) -> None:
        """Give ``port`` back; releasing a port that is not allocated is an error (double release)."""
        if port not in self._in_use:
            raise ValueError(f"RTP port {port} is not allocated")
        self._in_use.remove(port)
        self._free.append(port)
