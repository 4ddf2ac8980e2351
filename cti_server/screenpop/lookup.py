"""The caller lookup on the call path: number -> matching contacts -> a ScreenPop, within a deadline.

The call must never wait on the store longer than ``screenpop.deadline_ms``. The lookup runs as its own
task; when the deadline passes first, the caller gets a pop marked ``late`` at once (a search with the
number filled in) and the task may run on for ``late_result_ms`` more: if it finishes, a
``screenpop.resolved`` event carries the real answer for the call, else it is cancelled. Nothing here
awaits a cancelled task, so a store that ignores cancellation cannot hold the call either.

Events (cti_server/events, topic ``screenpop.*``): ``screenpop.popped`` for every call lookup (late or
not) and ``screenpop.resolved`` for a late one that finished. Both carry ``ScreenPop.to_dict()``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from cti_server.config import ScreenPopConfig
from cti_server.events import Event, EventBus
from cti_server.screenpop.phone import try_normalize
from cti_server.screenpop.rules import (
    ContactMatch,
    ScreenPop,
    ScreenPopRules,
    build_pop,
    unfinished_pop,
)
from cti_server.shutdown import DEFAULT_GRACE, settle

log = structlog.get_logger(__name__)

POPPED = "screenpop.popped"
RESOLVED = "screenpop.resolved"


class UnknownCallCenter(LookupError):
    """The call center named for a lookup does not exist."""


@dataclass(frozen=True)
class CallCenterProfile:
    """What the lookup needs to know about a call center: its id, phone region and rules."""

    id: str
    region: str
    rules: ScreenPopRules


class ContactDirectory(Protocol):
    """Where contacts are found by number: the CRM store (``StoreContactDirectory``) or a test double."""

    async def profile(self, call_center: str) -> CallCenterProfile:
        """The call center by id or by name; raises UnknownCallCenter."""
        ...

    async def find_by_number(self, call_center_id: str, number: str, limit: int) -> list[ContactMatch]:
        """Up to ``limit`` contacts of the call center with ``number`` (E.164) among their numbers."""
        ...


class ScreenPopLookup:
    """Answers "who is calling" for a call center within the configured deadline."""

    def __init__(
        self,
        directory: ContactDirectory,
        config: ScreenPopConfig,
        bus: EventBus | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self.config = config
        self.bus = bus
        self._clock = clock
        self._profiles: dict[str, tuple[float, CallCenterProfile | None]] = {}
        self._profile_reads: dict[str, asyncio.Task[CallCenterProfile]] = {}
        self._late: set[asyncio.Task[ScreenPop]] = set()
        self.stats: dict[str, int] = {"lookups": 0, "late": 0, "errors": 0, "resolved_late": 0}

    async def lookup(
        self,
        call_center: str,
        caller: str,
        *,
        call_id: str | None = None,
        publish: bool = True,
        deadline_ms: int | None = None,
    ) -> ScreenPop:
        """The pop for ``caller`` (any caller-id text) in ``call_center`` (id or name).

        Returns by ``deadline_ms`` (default: the configured deadline) whatever the store does. With
        ``publish`` the pop goes on the bus as ``screenpop.popped`` (the call path does this; the REST
        API does not, so an integrator's query does not look like a call).
        """
        self.stats["lookups"] += 1
        started = self._clock()
        deadline = (deadline_ms if deadline_ms is not None else self.config.deadline_ms) / 1000
        task = asyncio.ensure_future(self._resolve(call_center, caller, call_id, started))
        try:
            done, _pending = await asyncio.wait({task}, timeout=deadline)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task in done:
            pop = self._finished(task, call_center, caller, call_id, started)
        else:
            pop = self._late_pop(task, call_center, caller, call_id, started, publish)
        log.info(
            "screenpop",
            call_id=call_id,
            call_center=call_center,
            outcome=pop.outcome,
            action=pop.action,
            matches=len(pop.matches),
            late=pop.late,
            elapsed_ms=round(pop.elapsed_ms, 2),
        )
        if publish:
            self._publish(POPPED, pop)
        return pop

    async def stop(self, grace: float = DEFAULT_GRACE) -> None:
        """Server shutdown: late lookups still running get ``grace`` seconds, then are cancelled (a store
        read cancelled half-way can leave SQLAlchemy's connection close hanging: see shutdown.py)."""
        late = list(self._late)
        self._late.clear()
        await settle(late, grace, what="late screen pops")

    async def profile(self, call_center: str) -> CallCenterProfile:
        """The call center's profile, cached for ``profile_cache_seconds`` (an unknown one too)."""
        now = self._clock()
        cached = self._profiles.get(call_center)
        if cached is not None and now - cached[0] < self.config.profile_cache_seconds:
            if cached[1] is None:
                raise UnknownCallCenter(call_center)
            return cached[1]
        # One store read per call center at a time: calls arriving meanwhile wait for the same answer.
        reading = self._profile_reads.get(call_center)
        if reading is None:
            reading = asyncio.ensure_future(self._read_profile(call_center, now))
            self._profile_reads[call_center] = reading
            reading.add_done_callback(lambda done: self._profile_read(call_center, done))
        return await asyncio.shield(reading)

    async def _read_profile(self, call_center: str, now: float) -> CallCenterProfile:
        try:
            profile = await self.directory.profile(call_center)
        except UnknownCallCenter:
            self._profiles[call_center] = (now, None)
            raise
        self._profiles[call_center] = (now, profile)
        return profile

    def _profile_read(self, call_center: str, done: asyncio.Task[CallCenterProfile]) -> None:
        if self._profile_reads.get(call_center) is done:
            del self._profile_reads[call_center]
        if not done.cancelled():
            done.exception()  # retrieved here: a reader that gave up (deadline) must not leave it unread

    def forget_profile(self, call_center: str | None = None) -> None:
        """Drop cached profiles (all, or one call center's) after an admin changed rules or region."""
        if call_center is None:
            self._profiles.clear()
        else:
            self._profiles.pop(call_center, None)

    async def _resolve(self, call_center: str, caller: str, call_id: str | None, started: float) -> ScreenPop:
        profile = await self.profile(call_center)
        number = try_normalize(caller, profile.region) if caller else None
        matches: list[ContactMatch] = []
        if number is not None:
            limit = self.config.max_matches + 1  # one more tells "more_matches"
            matches = await self.directory.find_by_number(profile.id, number, limit)
        return build_pop(
            profile.rules,
            call_center_id=profile.id,
            caller=caller,
            number=number,
            matches=matches,
            max_matches=self.config.max_matches,
            call_id=call_id,
            elapsed_ms=(self._clock() - started) * 1000,
        )

    def _finished(
        self,
        task: asyncio.Task[ScreenPop],
        call_center: str,
        caller: str,
        call_id: str | None,
        started: float,
    ) -> ScreenPop:
        exc = task.exception()
        if exc is None:
            return task.result()
        # An unknown call center or a store error must not stop the call: it gets a search pop.
        self.stats["errors"] += 1
        log.warning("screenpop_lookup_failed", call_id=call_id, call_center=call_center, error=repr(exc))
        return unfinished_pop(
            call_center_id=call_center,
            caller=caller,
            number=self._number_guess(call_center, caller),
            late=False,
            error=type(exc).__name__,
            call_id=call_id,
            elapsed_ms=(self._clock() - started) * 1000,
        )

    def _late_pop(
        self,
        task: asyncio.Task[ScreenPop],
        call_center: str,
        caller: str,
        call_id: str | None,
        started: float,
        publish: bool,
    ) -> ScreenPop:
        self.stats["late"] += 1
        self._late.add(task)
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.config.late_result_ms / 1000, task.cancel)

        def finished(done: asyncio.Task[ScreenPop]) -> None:
            timer.cancel()
            self._late.discard(done)
            if done.cancelled():
                return
            exc = done.exception()
            if exc is not None:
                log.warning("screenpop_late_lookup_failed", call_id=call_id, error=repr(exc))
                return
            self.stats["resolved_late"] += 1
            if publish:
                self._publish(RESOLVED, done.result())

        task.add_done_callback(finished)
        return unfinished_pop(
            call_center_id=self._cached_id(call_center),
            caller=caller,
            number=self._number_guess(call_center, caller),
            late=True,
            call_id=call_id,
            elapsed_ms=(self._clock() - started) * 1000,
        )

    def _cached_id(self, call_center: str) -> str:
        cached = self._profiles.get(call_center)
        return cached[1].id if cached and cached[1] else call_center

    def _number_guess(self, call_center: str, caller: str) -> str | None:
        """The E.164 number for an unfinished pop, read with the cached region if there is one."""
        cached = self._profiles.get(call_center)
        region = cached[1].region if cached and cached[1] else self.config.default_region
        return try_normalize(caller, region) if caller else None

    def _publish(self, topic: str, pop: ScreenPop) -> None:
        if self.bus is None:
            return
        self.bus.publish(Event(topic, pop.to_dict(), call_center=pop.call_center_id))
