"""The screen pop rides on the call: the caller lookup's answer is put on the call model and its events.

The lookup itself runs off the SIP path (``screenpop.component.CallScreenPops`` starts it on
``call.offered`` with its deadline, ``screenpop.deadline_ms``) and answers with ``screenpop.popped``
(and, for a late one, ``screenpop.resolved``). This hook takes those answers by ``call_id``, stores
the JSON-safe pop on ``Call.screenpop`` (so every later ``call.*`` event, ``call.ended`` included,
carries it for the call-log writer) and publishes ``call.screenpop`` with the call's snapshot (a failed
lookup, e.g. a call center missing from the store, is no pop and publishes nothing). Nothing
here waits on the store: the call goes on whether the pop has come or not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from cti_server.calls.model import Call
from cti_server.events import Event, EventBus, Subscription

log = structlog.get_logger(__name__)

POP_TOPICS = ("screenpop.popped", "screenpop.resolved")


class CallScreenPopHook:
    """Puts ``screenpop.*`` answers on the live call they belong to (``calls_by_id`` is the B2BUA's)."""

    def __init__(self, bus: EventBus, call_of: Callable[[str], Call | None]) -> None:
        self.bus = bus
        self.call_of = call_of
        self._subscriptions: list[Subscription] = []
        self._waiters: dict[str, asyncio.Event] = {}

    async def start(self) -> None:
        """Subscribe to the lookup's answers."""
        self._subscriptions = [self.bus.subscribe(topic, self.on_pop) for topic in POP_TOPICS]

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            self.bus.unsubscribe(subscription)
        self._subscriptions = []

    def on_pop(self, event: Event) -> None:
        """A pop for a call: keep it on the call and tell subscribers (``call.screenpop``)."""
        call_id = event.data.get("call_id")
        if not isinstance(call_id, str):
            return
        waiter = self._waiters.pop(call_id, None)
        if waiter is not None:
            waiter.set()
        call = self.call_of(call_id)
        if call is None or call.state == "ended":
            return
        if event.data.get("error"):
            # No pop to show (the DID's call center is not in the store, the store failed): the call
            # goes on without one and the call-log writer looks the number up again at the end.
            log.info("call_screenpop_failed", call=call_id, error=event.data.get("error"))
            return
        call.screenpop = dict(event.data)
        snapshot = call.to_dict()
        self.bus.publish(Event("call.screenpop", snapshot, call_center=call.call_center,
                               timestamp=event.timestamp))
        log.info("call_screenpop", call=call_id, outcome=event.data.get("outcome"),
                 late=event.data.get("late"))

    async def wait_for_pop(self, call: Call, wait_s: float) -> dict[str, object] | None:
        """The call's pop, waiting at most ``wait_s`` seconds for it (None when it has not come)."""
        if call.screenpop is not None:
            return call.screenpop
        waiter = self._waiters.setdefault(call.call_id, asyncio.Event())
        try:
            async with asyncio.timeout(wait_s):
                await waiter.wait()
        except TimeoutError:
            pass
        finally:
            self._waiters.pop(call.call_id, None)
        return call.screenpop
