"""In-process publish/subscribe bus.

Publishers call ``publish(Event(...))``; subscribers register a callback for a topic pattern
(``"call.*"``, ``"work_item.offered"``, ``"*"``). Callbacks may be plain functions or coroutines;
a failing subscriber is logged and never stops delivery to the others or the publisher.
A Redis-backed bus for several nodes subscribes here and republishes (issue 6).
"""

from __future__ import annotations

import asyncio
import fnmatch
import inspect
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from cti_server.shutdown import settle

log = structlog.get_logger(__name__)

Handler = Callable[["Event"], Awaitable[None] | None]

MAX_SETTLE_ROUNDS = 5
"""Rounds of ``settle``: handlers that publish start handlers of their own, a chain a few deep."""

MAX_CACHED_TOPICS = 1024
"""Topics whose matching subscribers are remembered (past this the cache starts again)."""


@dataclass(frozen=True)
class Event:
    """Something that happened: ``topic`` like ``call.answered``, a JSON-safe ``data`` payload."""

    topic: str
    data: dict[str, Any] = field(default_factory=dict)
    call_center: str | None = None
    timestamp: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Subscription:
    """Handle returned by ``subscribe``; pass it to ``unsubscribe``."""

    id: int
    pattern: str
    handler: Handler


class EventBus:
    """Topic-pattern pub/sub in one process."""

    def __init__(self) -> None:
        self._subs: dict[int, Subscription] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        # Topic -> its subscribers in subscription order; topics are few, events many (a few per call).
        self._matching: dict[str, tuple[Subscription, ...]] = {}

    def subscribe(self, pattern: str, handler: Handler) -> Subscription:
        """Call ``handler`` for every event whose topic matches the glob ``pattern``."""
        sub = Subscription(next(self._ids), pattern, handler)
        self._subs[sub.id] = sub
        self._matching = {}
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.pop(sub.id, None)
        self._matching = {}

    def _subscribers(self, topic: str) -> tuple[Subscription, ...]:
        matching = self._matching.get(topic)
        if matching is None:
            matching = tuple(s for s in self._subs.values() if fnmatch.fnmatchcase(topic, s.pattern))
            if len(self._matching) >= MAX_CACHED_TOPICS:
                self._matching = {}
            self._matching[topic] = matching
        return matching

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to every matching subscriber; coroutine handlers run as tasks."""
        for sub in self._subscribers(event.topic):
            try:
                result = sub.handler(event)
            except Exception:
                log.exception("event_handler_failed", topic=event.topic, pattern=sub.pattern)
                continue
            if result is not None and inspect.isawaitable(result):
                task = asyncio.ensure_future(self._guard(result, event, sub))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _guard(self, awaitable: Awaitable[None], event: Event, sub: Subscription) -> None:
        try:
            await awaitable
        except Exception:
            log.exception("event_handler_failed", topic=event.topic, pattern=sub.pattern)

    async def drain(self) -> None:
        """Wait for the coroutine handlers started so far (tests use this)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def settle(self, grace: float) -> None:
        """Shutdown: let the running handlers finish for ``grace`` seconds (those they start too), then
        cancel the rest (``shutdown.settle``)."""
        for _round in range(MAX_SETTLE_ROUNDS):
            if not self._tasks:
                return
            await settle(list(self._tasks), grace, what="event handlers")
