"""Shared wake-ups for the transaction timers: one ``loop.call_at`` per time slot instead of one per timer.

Every transaction arms a timer each time its next deadline moves (about seven per B2BUA call), and most
are let go unfired (timer A on the 180, E on the final response, G on the ACK). A ``loop.call_at`` and its
cancel cost about 9,000 instructions on uvloop; appending to the list of a slot costs a few hundred, and
letting a timer go costs nothing: the slot, when it comes, skips a holder whose ``handle`` is no longer
the entry it armed.

A deadline is rounded up to the end of its slot, so a timer fires a little late, never early (RFC 3261
timers are lower bounds): at most ``FINE`` seconds late when it is due within ``COARSE_AFTER`` seconds
(T1 retransmissions), at most ``COARSE`` seconds late when it is further away (timers B, D, F, H, J, K, L,
M: 5 to 32 s on UDP). Both slot sizes are powers of two, so ``slot * size`` is exact in floating point.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
from collections.abc import Callable
from typing import Any, Protocol

import structlog

log = structlog.get_logger(__name__)

FINE = 1 / 128
"""Slot size (seconds) of the timers due within ``COARSE_AFTER`` seconds."""
COARSE = 1 / 8
"""Slot size (seconds) of the timers due later."""
COARSE_AFTER = 1.0
_FINE_PER_COARSE = round(COARSE / FINE)


class Armed(Protocol):
    """What a timer is armed for: ``handle`` is the entry of its armed timer (None: none armed)."""

    handle: object | None


Entry = tuple[Armed, Callable[[Any], None]]


class TimerSlots:
    """Timers grouped in slots of one event loop; ``arm`` returns the entry to keep as ``holder.handle``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._slots: dict[int, list[Entry]] = {}  # slot number (in FINE units) -> its entries
        self._handles: dict[int, asyncio.TimerHandle] = {}
        self._context = contextvars.Context()  # not a copy of whoever armed the first timer of a slot

    def arm(self, holder: Armed, deadline: float, callback: Callable[[Any], None]) -> Entry:
        """Call ``callback(holder)`` at the end of the slot of ``deadline`` if ``holder.handle`` is then
        still the entry returned (set it to None, or arm again, to let this one go)."""
        if deadline - self._loop.time() < COARSE_AFTER:
            slot = math.ceil(deadline / FINE)
        else:
            slot = math.ceil(deadline / COARSE) * _FINE_PER_COARSE
        entry: Entry = (holder, callback)
        entries = self._slots.get(slot)
        if entries is None:
            self._slots[slot] = [entry]
            self._handles[slot] = self._loop.call_at(slot * FINE, self._fire, slot,
                                                     context=self._context)
        else:
            entries.append(entry)
        return entry

    def _fire(self, slot: int) -> None:
        entries = self._slots.pop(slot, ())
        self._handles.pop(slot, None)
        for entry in entries:
            holder, callback = entry
            if holder.handle is entry:
                try:
                    callback(holder)
                except Exception:
                    log.exception("sip_timer_failed")

    def __len__(self) -> int:
        """How many slots are waiting."""
        return len(self._slots)

    def close(self) -> None:
        """Cancel every slot: no timer armed so far fires."""
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()
        self._slots.clear()
