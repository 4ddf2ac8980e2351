"""``GET /api/v1/sip/stats``: the SIP stack's counters and live transaction counts, read while running.

The counters are those of the whole process (every call center's traffic), so only admins read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from aiohttp import web

from cti_server.api.auth import requires


class SipStatsSource(Protocol):
    """What the route reads from ``SipComponent``."""

    @property
    def stats(self) -> Mapping[str, int]: ...

    @property
    def transactions(self) -> Mapping[str, int]: ...


SIP_STACK_KEY = web.AppKey("sip_stack", SipStatsSource)
"""Set by the server when the SIP stack runs (see ``server.build_components``)."""

routes = web.RouteTableDef()


@routes.get("/api/v1/sip/stats")
@requires("admin")
async def sip_stats(request: web.Request) -> web.Response:
    """``{"counters": {...}, "transactions": {"server": n, "client": n, "invite_2xx": n}}``;
    503 when no SIP stack runs in this process."""
    stack = request.app.get(SIP_STACK_KEY)
    if stack is None:
        raise web.HTTPServiceUnavailable(text="the SIP stack is not running")
    return web.json_response({"counters": dict(stack.stats), "transactions": dict(stack.transactions)})
