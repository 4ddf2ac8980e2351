"""``/healthz``: liveness for load balancers and the test suite."""

from __future__ import annotations

import time

from aiohttp import web

routes = web.RouteTableDef()
_STARTED = time.monotonic()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """200 with ``{"status": "ok"}`` while the process serves requests."""
    return web.json_response({"status": "ok", "uptime_s": round(time.monotonic() - _STARTED, 3)})
