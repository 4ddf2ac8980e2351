"""Media timeout, sans-IO: which answered legs have received no RTP for ``timeout`` seconds.

The media endpoints count the RTP packets they receive (``cti_server.media.endpoint.RtpCounters``); the
B2BUA looks at those counts every ``interval`` seconds and hands them here with whether media is expected
on the leg now (an answered call, not on hold: a held or inactive leg may rightly send nothing, RFC 3264
section 8.4). A leg whose count has not moved for ``timeout`` seconds while media was expected is
reported once; the B2BUA then ends the call with BYE on both legs (reason ``media_timeout``). Legs not
handed in a check are forgotten, so legs that ended or were replaced by a transfer need no bookkeeping.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

#: Never look less often than this (seconds), whatever the timeout.
MAX_INTERVAL = 1.0


@dataclass(slots=True)
class _Seen:
    packets: int
    since: float
    reported: bool = False


class MediaWatchdog(Generic[K]):
    """Silence detection over packet counts; ``timeout`` 0 turns it off."""

    def __init__(self, timeout: float) -> None:
        if timeout < 0:
            raise ValueError("timeout must be >= 0")
        self.timeout = timeout
        self._seen: dict[K, _Seen] = {}

    @property
    def enabled(self) -> bool:
        return self.timeout > 0

    @property
    def interval(self) -> float:
        """How often to check: a quarter of the timeout, at most ``MAX_INTERVAL``."""
        return min(MAX_INTERVAL, self.timeout / 4)

    def check(self, now: float, legs: Iterable[tuple[K, int | None, bool]]) -> list[K]:
        """``legs`` are ``(leg, packets received so far or None, media expected now)``.

        Returns the legs silent for ``timeout`` seconds while media was expected, each once (again only
        after packets flowed and stopped anew). A leg without a count, or not expecting media, starts
        its silence over.
        """
        if not self.enabled:
            return []
        silent: list[K] = []
        seen: dict[K, _Seen] = {}
        for leg, packets, expected in legs:
            last = self._seen.get(leg)
            if packets is None or not expected or last is None or packets != last.packets:
                seen[leg] = _Seen(packets if packets is not None else -1, now)
                continue
            seen[leg] = last
            if not last.reported and now - last.since >= self.timeout:
                last.reported = True
                silent.append(leg)
        self._seen = seen
        return silent

    def __len__(self) -> int:
        return len(self._seen)


__all__ = ["MediaWatchdog"]
