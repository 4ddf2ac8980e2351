"""The screen-pop server component: pops for inbound calls, the call-log writer and the webhook worker.

Built by ``build_components`` (cti_server/server.py) from the objects the web app already holds (the
lookup under ``SCREENPOP_KEY``, the dispatcher under ``WEBHOOKS_KEY``), so the REST API and the call
path share one lookup and one profile cache.

Calls: on ``call.offered`` of an inbound call whose data carries no ``screenpop`` yet, the caller is
looked up (deadline-bound, off the SIP path) and ``screenpop.popped`` goes out with the call's
``call_id``; the pop is kept until ``call.ended`` so the call log records it. A calls layer that looks
up itself (``app[SCREENPOP_KEY].lookup(...)``) and puts ``screenpop`` on its events is used as is.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

import structlog
from aiohttp import web

from cti_server.events import Event, EventBus, Subscription
from cti_server.screenpop.call_logs import CallLogWriter
from cti_server.screenpop.lookup import ScreenPopLookup
from cti_server.shutdown import DEFAULT_GRACE
from cti_server.store import Store
from cti_server.webhooks.delivery import WebhookDispatcher

log = structlog.get_logger(__name__)

MAX_OPEN_CALLS = 100_000
"""Pops kept for calls that have not ended (the oldest are dropped past this)."""


class CallScreenPops:
    """Looks up the caller of every inbound call and remembers the pop until the call ends."""

    def __init__(self, lookup: ScreenPopLookup, bus: EventBus) -> None:
        self.lookup = lookup
        self.bus = bus
        self.pops: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._subscriptions: list[Subscription] = []

    async def start(self) -> None:
        self._subscriptions = [
            self.bus.subscribe("call.offered", self.on_call_offered),
            self.bus.subscribe("screenpop.resolved", self.on_resolved),
        ]

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            self.bus.unsubscribe(subscription)
        self._subscriptions = []

    async def on_call_offered(self, event: Event) -> None:
        data = event.data
        call_id = data.get("call_id")
        call_center = event.call_center or data.get("call_center")
        if data.get("direction") != "inbound" or not call_id or not call_center or "screenpop" in data:
            return
        caller = data.get("caller")
        number = str(caller.get("number") or "") if isinstance(caller, dict) else str(caller or "")
        if isinstance(caller, dict) and caller.get("private"):
            number = ""
        pop = await self.lookup.lookup(str(call_center), number, call_id=str(call_id))
        self._keep(str(call_id), pop.to_dict())

    async def on_resolved(self, event: Event) -> None:
        call_id = event.data.get("call_id")
        if isinstance(call_id, str) and call_id in self.pops:
            self.pops[call_id] = event.data

    def take(self, call_id: str) -> dict[str, Any] | None:
        """The pop of a call that ended (forgotten afterwards)."""
        return self.pops.pop(call_id, None)

    def _keep(self, call_id: str, pop: dict[str, Any]) -> None:
        self.pops[call_id] = pop
        while len(self.pops) > MAX_OPEN_CALLS:
            self.pops.popitem(last=False)


class ScreenPopComponent:
    """Starts the call pops, the call-log writer and the webhook dispatcher; stops them in reverse."""

    def __init__(
        self, store: Store, bus: EventBus, lookup: ScreenPopLookup, webhooks: WebhookDispatcher,
        *, grace: float = DEFAULT_GRACE,
    ) -> None:
        self.grace = grace  # server.shutdown_grace: how long stop lets store reads in flight finish
        self.lookup = lookup
        self.webhooks = webhooks
        self.call_pops = CallScreenPops(lookup, bus)
        self.call_logs = CallLogWriter(
            store, lookup.directory, bus, pop_for_call=self.call_pops.take, profile=lookup.profile
        )

    async def start(self) -> None:
        await self.call_pops.start()
        await self.call_logs.start()
        await self.webhooks.start()
        log.info("screenpop_started", deadline_ms=self.lookup.config.deadline_ms)

    async def stop(self) -> None:
        await self.webhooks.stop(self.grace)
        await self.call_logs.stop()
        await self.call_pops.stop()
        await self.lookup.stop(self.grace)
        await asyncio.sleep(0)


def component_for_app(app: web.Application) -> ScreenPopComponent:
    """The component over the lookup and dispatcher ``create_app`` put in ``app`` (an aiohttp Application)."""
    from cti_server.api.keys import BUS_KEY, CONFIG_KEY, STORE_KEY
    from cti_server.api.screenpop import SCREENPOP_KEY
    from cti_server.api.webhooks import WEBHOOKS_KEY

    return ScreenPopComponent(app[STORE_KEY], app[BUS_KEY], app[SCREENPOP_KEY], app[WEBHOOKS_KEY],
                              grace=app[CONFIG_KEY].server.shutdown_grace)
