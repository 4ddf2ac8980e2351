"""Overload shedding for new calls: refuse early and cheaply instead of collapsing (RFC 3261 21.5.4).

A B2BUA past its capacity that keeps taking every INVITE falls behind on all of them: its answers come
late, every peer retransmits (INVITE, 200 OK, BYE), and the retransmissions eat the CPU the calls
needed, so almost no call completes. Answering the excess INVITEs ``503 Service Unavailable`` with
``Retry-After`` costs a fraction of a call and keeps the calls already admitted on time.

Two limits, either 0 (off):

- ``max_rate``: new calls per second, a token bucket holding at most one second's worth (a burst of
  ``max_rate`` calls, at least one, is admitted at once, then ``max_rate`` per second);
- ``max_in_setup``: calls whose caller has not had a final answer yet (the B2BUA is still ringing the
  callee). When the server falls behind, answers come later and this count climbs with the backlog
  (Little's law), so it sheds load on any machine without knowing its speed.

Sans-IO: the caller passes the time and the count; nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

RATE = "rate"
IN_SETUP = "in_setup"


@dataclass(slots=True)
class CallAdmission:
    """Decides whether a new call is taken (``admit`` returns None) or shed (the limit's name)."""

    max_rate: float = 0.0
    max_in_setup: int = 0
    _tokens: float = 0.0
    _last: float | None = None

    def admit(self, now: float, in_setup: int) -> str | None:
        """None when a new call arriving at ``now`` (seconds, any monotonic clock) with ``in_setup``
        calls already being set up may proceed; else ``"in_setup"`` or ``"rate"``, the limit it hit.
        A shed call takes no token."""
        if self.max_in_setup and in_setup >= self.max_in_setup:
            return IN_SETUP
        rate = self.max_rate
        if not rate:
            return None
        last = self._last
        burst = rate if rate > 1.0 else 1.0
        tokens = burst if last is None else min(burst, self._tokens + (now - last) * rate)
        self._last = now
        if tokens < 1.0:
            self._tokens = tokens
            return RATE
        self._tokens = tokens - 1.0
        return None
