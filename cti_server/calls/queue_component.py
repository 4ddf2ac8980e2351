"""The server component that joins calls, screen pops and routing along the path of an inbound call.

Built in ``server.build_components`` after the calls component: the screen pop rides on the call
(``screenpop_hook``) and queue DIDs go through the routing engine (``queue_calls``). The routing
engine lives in the web app (``app[ROUTING_KEY]``, started with it), so it is looked up per call.
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from cti_server.calls.b2bua import B2bua
from cti_server.calls.model import Call
from cti_server.calls.queue_calls import QueueCalls
from cti_server.calls.screenpop_hook import CallScreenPopHook
from cti_server.routing.engine import RoutingEngine
from cti_server.screenpop.lookup import UnknownCallCenter
from cti_server.store.tenancy import User


class InboundCallPath:
    """Owns the screen-pop hook and the queue calls of one B2BUA."""

    def __init__(self, pops: CallScreenPopHook, queue_calls: QueueCalls) -> None:
        self.pops = pops
        self.queue_calls = queue_calls

    @classmethod
    def attach(cls, b2bua: B2bua, app: web.Application) -> InboundCallPath:
        """Hook into ``b2bua`` with the store, screen-pop lookup and routing service of ``app``."""
        from cti_server.api.keys import BUS_KEY, CONFIG_KEY, STORE_KEY
        from cti_server.api.screenpop import SCREENPOP_KEY
        from cti_server.api.work_items import ROUTING_KEY

        bus = app[BUS_KEY]
        store = app[STORE_KEY]
        lookup = app[SCREENPOP_KEY]

        def call_of(call_id: str) -> Call | None:
            session = b2bua.sessions.get(call_id)
            return None if session is None else session.call

        def engine() -> RoutingEngine:
            return app[ROUTING_KEY].engine

        async def sip_user_of(user_id: str) -> str | None:
            async with store.session() as db:
                user = await db.scalar(select(User).where(User.id == user_id))
            return None if user is None or not user.active else user.sip_username

        async def call_center_id_of(call_center: str) -> str:
            try:
                return (await lookup.profile(call_center)).id
            except UnknownCallCenter:
                return call_center  # routing may know the call center by the DID's name

        pops = CallScreenPopHook(bus, call_of)
        wait_s = lookup.config.deadline_ms / 1000
        # A shared routing backend: steps taken on other processes are heard by reading item states.
        shared = app[CONFIG_KEY].routing.backend == "redis"
        queue_calls = QueueCalls(b2bua, bus, engine, sip_user_of, call_center_id_of, pops, pop_wait_s=wait_s,
                                 shared_routing=shared)
        return cls(pops, queue_calls)

    async def start(self) -> None:
        await self.pops.start()
        await self.queue_calls.start()

    async def stop(self) -> None:
        await self.queue_calls.stop()
        await self.pops.stop()
