"""The agent's page (softphone_web/agent/, served at ``/agent/``) and the one read it needs.

The page signs in through ``/api/v1/login``, sets presence with ``PUT /api/v1/agents/me/status``, takes
offers live from the ``/agent`` socket.io namespace and acts on them with the work-item routes. On
(re)load it asks ``GET /api/v1/agents/me/work`` for everything at once: the agent's status and
capacity, the statuses an admin defined, and each item offered to or held by the agent with its
payload and the two deadlines the page counts down (the push timeout of an offer, the end of
after-call work), read from the item's routing configuration. ``server_time`` lets the page correct
for a browser clock that is off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from cti_server.api.auth import requires
from cti_server.api.openapi import documented
from cti_server.api.presence import my_agent
from cti_server.api.validation import Schema
from cti_server.api.work_items import engine_of
from cti_server.routing.engine import RoutingEngine
from cti_server.routing.model import ItemState, NotFound, RoutingConfig, WorkItem

AGENT_PAGE_DIR = Path(__file__).resolve().parents[2] / "softphone_web" / "agent"
"""softphone_web/agent: index.html, agent.js, agent.css (plain HTML and JS, no CDN, no build step)."""

routes = web.RouteTableDef()


async def _config_of(engine: RoutingEngine, item: WorkItem,
                     seen: dict[str, RoutingConfig | None]) -> RoutingConfig | None:
    if item.queue not in seen:
        try:
            queue = await engine.backend.get_queue(item.queue)
            seen[item.queue] = await engine.backend.get_routing_config(queue.routing_config)
        except NotFound:
            seen[item.queue] = None
    return seen[item.queue]


def _deadlines(item: WorkItem, config: RoutingConfig | None) -> dict[str, float | None]:
    offer_deadline = wrap_up_deadline = None
    if config is not None and item.state is ItemState.OFFERED and item.offers and config.push_timeout_s > 0:
        offer_deadline = item.offers[-1].offered_at + config.push_timeout_s
    if config is not None and item.state is ItemState.ASSIGNED and item.ended_at is not None:
        wrap_up_deadline = item.ended_at + config.after_call_work_s
    return {"offer_deadline": offer_deadline, "wrap_up_deadline": wrap_up_deadline}


_DEADLINE: Schema = {"type": ["number", "null"], "description": "epoch seconds (server clock)"}
MY_WORK: Schema = {
    "type": "object",
    "properties": {
        "agent": {"type": "object", "description": "status, status_since, capacity, used, items"},
        "statuses": {"type": "array", "items": {"type": "string"}},
        "items": {"type": "array", "items": {"type": "object", "properties": {
            "offer_deadline": {**_DEADLINE, "description": "an offer goes to the next agent then"},
            "wrap_up_deadline": {**_DEADLINE, "description": "after-call work ends then"},
        }, "description": "the work item (GET /api/v1/work-items/{id}) and its deadlines"}},
        "server_time": {"type": "number", "description": "now on the server clock, epoch seconds"},
    },
}


@routes.get("/api/v1/agents/me/work")
@documented("Your status, statuses to choose from, and the work offered to or held by you",
            tags=("routing",), response=MY_WORK, errors=(401, 403, 404))
@requires("agent", "supervisor")
async def my_work(request: web.Request) -> web.Response:
    """Your status and capacity, the statuses to choose from, and your offered and held items."""
    engine = engine_of(request)
    agent = await my_agent(request)
    configs: dict[str, RoutingConfig | None] = {}
    items: list[dict[str, Any]] = []
    for item_id in agent.items:
        try:
            item = await engine.get_item(item_id)
        except NotFound:
            continue  # closed between the two reads
        if item.agent != agent.id:
            continue
        items.append({**item.to_dict(), **_deadlines(item, await _config_of(engine, item, configs))})
    statuses = [s.name for s in await engine.backend.list_statuses()]
    return web.json_response({"agent": agent.to_dict(), "statuses": statuses, "items": items,
                              "server_time": engine.clock.now()})


async def agent_page(request: web.Request) -> web.FileResponse:
    """The agent's page; it holds no data itself and signs in through ``/api/v1/login``."""
    return web.FileResponse(AGENT_PAGE_DIR / "index.html")


async def agent_redirect(request: web.Request) -> web.Response:
    """``/agent`` -> ``/agent/``."""
    raise web.HTTPFound("/agent/")


def setup(app: web.Application) -> None:
    """Add ``/api/v1/agents/me/work`` and the page (``/agent/``, assets under ``/agent/static/``).

    Call after ``work_items.setup`` (the routing service and its error mapping)."""
    app.add_routes(routes)
    app.router.add_get("/agent", agent_redirect)
    app.router.add_get("/agent/", agent_page)
    app.router.add_static("/agent/static/", AGENT_PAGE_DIR, name="agent_static")
