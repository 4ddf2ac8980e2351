"""Failed-login counting per username and client address: password guessing gets a 429 and a wait."""

from __future__ import annotations

from collections import OrderedDict

from aiohttp import web


class LoginFailures:
    """Wrong-password counts per (username, client address), to slow down password guessing.

    After ``max_failures`` failures inside ``lockout`` seconds, that pair is refused until the oldest
    counted failure is ``lockout`` seconds old. A success clears the pair. The caller passes the clock.
    At most ``max_entries`` pairs are remembered (the oldest are forgotten first).
    """

    def __init__(self, max_failures: int, lockout: float, max_entries: int = 100_000) -> None:
        self.max_failures = max_failures
        self.lockout = lockout
        self.max_entries = max_entries
        self._failures: OrderedDict[tuple[str, str], list[float]] = OrderedDict()

    def _recent(self, key: tuple[str, str], now: float) -> list[float]:
        times = [t for t in self._failures.get(key, []) if now - t < self.lockout]
        if times:
            self._failures[key] = times
        else:
            self._failures.pop(key, None)
        return times

    def retry_after(self, username: str, address: str, now: float) -> float:
        """Seconds until this pair may try again (0: it may try now)."""
        times = self._recent((username, address), now)
        if len(times) < self.max_failures:
            return 0.0
        return max(0.0, times[0] + self.lockout - now)

    def failed(self, username: str, address: str, now: float) -> None:
        """Count one wrong password."""
        key = (username, address)
        self._failures.setdefault(key, []).append(now)
        self._failures.move_to_end(key)
        while len(self._failures) > self.max_entries:
            self._failures.popitem(last=False)

    def succeeded(self, username: str, address: str) -> None:
        """Forget the pair's failures."""
        self._failures.pop((username, address), None)


LOGIN_FAILURES_KEY = web.AppKey("login_failures", LoginFailures)
