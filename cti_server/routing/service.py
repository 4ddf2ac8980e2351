"""The asyncio edge of routing: builds the backend from ``[routing]``, runs the timers, publishes figures.

The engine itself never sleeps; this driver wakes it when the earliest timer is due (or every
``timer_poll_s``, for timers another node set in a shared Redis) and publishes ``queue.figures``
events for supervisors every ``figures_interval_s``.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from cti_server.config import RoutingEngineConfig
from cti_server.events import Event, EventBus
from cti_server.routing.backend import RoutingBackend
from cti_server.routing.clock import Clock, SystemClock
from cti_server.routing.engine import RoutingEngine
from cti_server.routing.figures import queue_figures
from cti_server.routing.memory import MemoryRoutingBackend
from cti_server.routing.model import NotFound, RoutingConfig

log = structlog.get_logger(__name__)


async def open_backend(config: RoutingEngineConfig) -> RoutingBackend:
    """The backend ``config`` asks for (connected, for Redis)."""
    if config.backend == "redis":
        from cti_server.routing.redis_backend import RedisRoutingBackend

        return await RedisRoutingBackend.connect(
            config.redis_url, prefix=config.redis_prefix, scan_depth=config.scan_depth,
            history_retention_s=config.history_retention_s, finished_items_kept=config.finished_items_kept)
    return MemoryRoutingBackend(scan_depth=config.scan_depth, history_retention_s=config.history_retention_s,
                                finished_items_kept=config.finished_items_kept)


class RoutingService:
    """Owns the routing engine of this process and the tasks that drive its timers."""

    def __init__(self, config: RoutingEngineConfig, bus: EventBus, clock: Clock | None = None) -> None:
        self.config = config
        self.bus = bus
        self.clock = clock or SystemClock()
        self._engine: RoutingEngine | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def engine(self) -> RoutingEngine:
        """The running engine (after :meth:`start`)."""
        if self._engine is None:
            raise RuntimeError("routing service is not started")
        return self._engine

    async def start(self) -> None:
        """Open the backend, create the ``default`` routing configuration if absent, start the timers."""
        backend = await open_backend(self.config)
        self._engine = RoutingEngine(backend, self.clock, self.bus.publish)
        try:
            await backend.get_routing_config("default")
        except NotFound:
            await backend.put_routing_config(RoutingConfig(
                id="default", push_timeout_s=self.config.default_push_timeout_s,
                service_level_threshold_s=self.config.default_service_level_threshold_s))
        self._tasks.append(asyncio.create_task(self._run_timers(), name="routing-timers"))
        if self.config.figures_interval_s > 0:
            self._tasks.append(asyncio.create_task(self._publish_figures(), name="routing-figures"))
        log.info("routing_started", backend=self.config.backend)

    async def stop(self) -> None:
        """Stop the timer tasks and close the backend."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._engine is not None:
            await self._engine.backend.aclose()
            self._engine = None

    async def _run_timers(self) -> None:
        engine = self.engine
        while True:
            try:
                await engine.tick()
                deadline = await engine.next_deadline()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("routing_timer_failed")
                deadline = None
            delay = self.config.timer_poll_s
            if deadline is not None:
                delay = min(delay, max(deadline - self.clock.now(), 0.0))
            await asyncio.sleep(delay)

    async def _publish_figures(self) -> None:
        engine = self.engine
        while True:
            await asyncio.sleep(self.config.figures_interval_s)
            try:
                figures = await queue_figures(engine.backend, self.clock.now(), self.config.figures_window_s)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("routing_figures_failed")
                continue
            for queue in figures:
                self.bus.publish(Event("queue.figures", queue.to_dict(), call_center=queue.call_center))
