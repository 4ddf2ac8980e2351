"""TimerSlots: transaction timers share a loop wake-up per slot, fire late by at most a slot, never early."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from cti_server.sip.timer_slots import COARSE, FINE, TimerSlots


@dataclass
class _Handle:
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class _Loop:
    """Just enough of an event loop: the time, and the call_at calls made (run by ``advance``)."""

    now: float = 100.0
    calls: list[tuple[float, Any, tuple[Any, ...], _Handle]] = field(default_factory=list)

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Any, *args: Any, context: Any = None) -> _Handle:
        handle = _Handle()
        self.calls.append((when, callback, args, handle))
        return handle

    def advance(self, until: float) -> None:
        while True:
            due = sorted((c for c in self.calls if c[0] <= until), key=lambda c: c[0])
            if not due:
                break
            call = due[0]
            self.calls.remove(call)
            self.now = max(self.now, call[0])
            if not call[3].cancelled:
                call[1](*call[2])
        self.now = until


@dataclass(eq=False)
class _Holder:
    name: str
    handle: object | None = None
    fired_at: list[float] = field(default_factory=list)


def _slots() -> tuple[_Loop, TimerSlots]:
    loop = _Loop()
    return loop, TimerSlots(loop)  # type: ignore[arg-type]


@pytest.mark.parametrize(("delay", "slack"), [(0.5, FINE), (0.0, FINE), (0.013, FINE), (4.0, COARSE),
                                              (32.0, COARSE), (0.999, FINE), (1.0, COARSE)])
def test_a_timer_fires_after_its_deadline_and_at_most_a_slot_late(delay: float, slack: float) -> None:
    loop, slots = _slots()
    holder = _Holder("t")
    deadline = loop.now + delay
    holder.handle = slots.arm(holder, deadline, lambda h: h.fired_at.append(loop.now))
    loop.advance(deadline + 60)
    assert len(holder.fired_at) == 1
    assert deadline <= holder.fired_at[0] <= deadline + slack


def test_timers_of_one_slot_share_one_wake_up() -> None:
    loop, slots = _slots()
    holders = [_Holder(str(i)) for i in range(50)]
    start = loop.now + 32.001  # 132.001 .. 132.050 s: all in the slot ending at 132.125 s
    for i, holder in enumerate(holders):
        holder.handle = slots.arm(holder, start + i * 0.001, lambda h: h.fired_at.append(loop.now))
    assert len(loop.calls) == 1 and len(slots) == 1
    loop.advance(loop.now + 40)
    assert all(len(h.fired_at) == 1 for h in holders)


def test_a_timer_let_go_or_armed_again_does_not_fire_from_its_old_slot() -> None:
    loop, slots = _slots()
    dropped, moved = _Holder("dropped"), _Holder("moved")
    for holder in (dropped, moved):
        holder.handle = slots.arm(holder, loop.now + 0.5, lambda h: h.fired_at.append(loop.now))
    dropped.handle = None
    later = loop.now + 32
    moved.handle = slots.arm(moved, later, lambda h: h.fired_at.append(loop.now))
    loop.advance(loop.now + 1)
    assert dropped.fired_at == [] and moved.fired_at == []
    loop.advance(later + 1)
    assert dropped.fired_at == [] and len(moved.fired_at) == 1 and moved.fired_at[0] >= later


def test_a_failing_timer_does_not_stop_the_others_of_its_slot() -> None:
    loop, slots = _slots()
    first, second = _Holder("first"), _Holder("second")

    def fail(_holder: _Holder) -> None:
        raise RuntimeError("boom")

    first.handle = slots.arm(first, loop.now + 0.5, fail)
    second.handle = slots.arm(second, loop.now + 0.5, lambda h: h.fired_at.append(loop.now))
    loop.advance(loop.now + 1)
    assert len(second.fired_at) == 1


def test_close_cancels_every_slot() -> None:
    loop, slots = _slots()
    holder = _Holder("t")
    holder.handle = slots.arm(holder, loop.now + 0.5, lambda h: h.fired_at.append(loop.now))
    slots.close()
    loop.advance(loop.now + 60)
    assert holder.fired_at == [] and len(slots) == 0
