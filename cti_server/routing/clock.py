"""Clocks for the routing engine: the caller owns time, so tests and the simulation never sleep."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Source of the current time in seconds (any epoch; only differences matter to routing)."""

    def now(self) -> float: ...


class SystemClock:
    """Wall-clock time (``time.time``), used by the running server so Redis nodes agree on it."""

    def now(self) -> float:
        return time.time()


class SimulatedClock:
    """A clock that moves only when told: tests and the simulation advance it explicitly."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def set(self, when: float) -> None:
        """Jump to ``when``; time never goes backwards."""
        if when < self._now:
            raise ValueError(f"simulated clock cannot go back from {self._now} to {when}")
        self._now = when

    def advance(self, seconds: float) -> None:
        """Move ``seconds`` forward."""
        self.set(self._now + seconds)
