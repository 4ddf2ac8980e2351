"""The RTP stream we send to one leg: one SSRC with continuous sequence numbers and timestamps
(RFC 3550 section 5.1) whatever feeds it.

A call leg hears different sources over its life: the other party, that party again with a new SSRC
after a re-INVITE, music on hold, another call's leg after a transfer. The leg's jitter buffer should
see one stream, with the marker bit set where a new source starts (RFC 3551 section 4.1).
"""

from __future__ import annotations

import random
from collections.abc import Callable

Clock = Callable[[], float]


class OutgoingStream:
    """The RTP stream we send to one leg (RFC 3550 section 5.1): SSRC, sequence and timestamp kept
    continuous across changes of source.

    The first source is forwarded with the identity mapping (its own SSRC, no offsets). When another
    source takes over, the offsets are set so that its first packet follows the last one sent: the next
    sequence number, and a timestamp advanced by the wall-clock time since (at least one frame).
    """

    def __init__(self, clock: Clock, clock_rate: int = 8000, frame_samples: int = 160) -> None:
        self.clock = clock
        self.clock_rate = clock_rate
        self.frame_samples = frame_samples
        self.ssrc: int | None = None
        self.source: object = None
        self.seq_offset = 0
        self.ts_offset = 0
        self.last_seq = 0
        self.last_ts = 0
        self.last_time = 0.0
        self.marker_pending = False
        self.source_changes = 0
        self.passthrough: bytes | None = None
        """The SSRC (4 bytes, as in the RTP header) whose packets go out unchanged: the first source,
        forwarded with its own SSRC, no offsets and no marker to set; None once another source took
        over. The relay's hot path compares the header's bytes with it and parses nothing else."""
        self.last_forwarded: bytes | None = None
        """The last packet sent when it went out unchanged: its header holds the last sequence number
        and timestamp (``last_position``), read only when needed. Whoever sets ``last_seq`` and
        ``last_ts`` sets this to None."""

    def switch_source(self, source: object, first_seq: int, first_ts: int, ssrc: int | None) -> None:
        """``source`` now feeds the stream, starting with a packet of ``first_seq`` / ``first_ts``."""
        if self.ssrc is None:
            self.ssrc = ssrc if ssrc is not None else random.getrandbits(32)
            self.seq_offset = (0 if ssrc is not None else random.getrandbits(16))
            self.ts_offset = (0 if ssrc is not None else random.getrandbits(32))
            self.passthrough = None if ssrc is None else ssrc.to_bytes(4, "big")
        else:
            self.passthrough = None
            last_seq, last_ts = self.last_position()
            elapsed = round((self.clock() - self.last_time) * self.clock_rate)
            self.seq_offset = (last_seq + 1 - first_seq) & 0xFFFF
            self.ts_offset = (last_ts + max(self.frame_samples, elapsed) - first_ts) & 0xFFFFFFFF
            self.marker_pending = True
            self.source_changes += 1
        self.source = source

    def sent(self, seq: int, ts: int) -> None:
        """Record the packet just sent (the relay's hot path does this inline)."""
        self.last_seq = seq
        self.last_ts = ts
        self.last_forwarded = None
        self.last_time = self.clock()

    def last_position(self) -> tuple[int, int]:
        """Sequence number and timestamp of the last packet sent."""
        packet = self.last_forwarded
        if packet is None:
            return self.last_seq, self.last_ts
        return int.from_bytes(packet[2:4], "big"), int.from_bytes(packet[4:8], "big")
