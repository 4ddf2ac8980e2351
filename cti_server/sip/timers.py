"""RFC 3261 section 17 timer values (table 4 of RFC 3261, plus timers L and M of RFC 6026).

The durations are derived once per transport kind from T1, T2 and T4 (``config.sip.timers``). On a
reliable transport (TCP, TLS) the retransmission timers A, E and G are unused and the "wait for
retransmissions" timers D, I, J and K are zero, as RFC 3261 17.1.1.2, 17.1.2.2, 17.2.1 and 17.2.2 say.
"""

from __future__ import annotations

from dataclasses import dataclass

from cti_server.config import SipTimersConfig


@dataclass(frozen=True, slots=True)
class TimerValues:
    """Durations in seconds of timers A to M for one transport kind (RFC 3261 table 4, RFC 6026)."""

    t1: float
    t2: float
    t4: float
    reliable: bool

    @classmethod
    def from_config(cls, config: SipTimersConfig, *, reliable: bool) -> TimerValues:
        """The timer set for ``config`` on a reliable (TCP/TLS) or unreliable (UDP) transport."""
        return cls(config.t1, config.t2, config.t4, reliable)

    @property
    def a(self) -> float:
        """INVITE request retransmit interval, first value; doubles each time (17.1.1.2). 0 = unused."""
        return 0.0 if self.reliable else self.t1

    @property
    def b(self) -> float:
        """INVITE client transaction timeout: 64*T1 (17.1.1.2)."""
        return 64 * self.t1

    @property
    def d(self) -> float:
        """Wait time for response retransmits in INVITE Completed: >32 s on UDP, 0 reliable (17.1.1.2)."""
        return 0.0 if self.reliable else max(32.0, 64 * self.t1)

    @property
    def e(self) -> float:
        """Non-INVITE request retransmit interval, first value; doubles up to T2 (17.1.2.2). 0 = unused."""
        return 0.0 if self.reliable else self.t1

    @property
    def f(self) -> float:
        """Non-INVITE client transaction timeout: 64*T1 (17.1.2.2)."""
        return 64 * self.t1

    @property
    def g(self) -> float:
        """INVITE final response retransmit interval, first value; doubles up to T2 (17.2.1). 0 = unused."""
        return 0.0 if self.reliable else self.t1

    @property
    def h(self) -> float:
        """Wait time for ACK receipt: 64*T1 (17.2.1)."""
        return 64 * self.t1

    @property
    def i(self) -> float:
        """Wait time for ACK retransmits: T4 on UDP, 0 reliable (17.2.1)."""
        return 0.0 if self.reliable else self.t4

    @property
    def j(self) -> float:
        """Wait time for non-INVITE request retransmits: 64*T1 on UDP, 0 reliable (17.2.2)."""
        return 0.0 if self.reliable else 64 * self.t1

    @property
    def k(self) -> float:
        """Wait time for non-INVITE response retransmits: T4 on UDP, 0 reliable (17.1.2.2)."""
        return 0.0 if self.reliable else self.t4

    @property
    def l(self) -> float:  # noqa: E743 - the RFC names it L
        """Wait time for INVITE request retransmits after a 2xx was sent: 64*T1 (RFC 6026 8.7)."""
        return 64 * self.t1

    @property
    def m(self) -> float:
        """Wait time for 2xx retransmits in the INVITE client Accepted state: 64*T1 (RFC 6026 8.4)."""
        return 64 * self.t1
