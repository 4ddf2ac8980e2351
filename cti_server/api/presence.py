"""Agent presence over REST: an agent reads their routing profile and work, and sets their status.

The routing agent id is the agent's user id; an admin creates the routing profile (capacity, skills,
queues) at ``PUT /api/v1/routing/agents/{user_id}`` before the agent can go available.
"""

from __future__ import annotations

from aiohttp import web

from cti_server.api.auth import principal_of, requires
from cti_server.api.errors import api_error, field_value, read_json_object
from cti_server.api.work_items import engine_of
from cti_server.routing.model import Agent, NotFound

routes = web.RouteTableDef()


async def my_agent(request: web.Request) -> Agent:
    """The principal's routing profile; 404 while an admin has not created it."""
    try:
        return await engine_of(request).backend.get_agent(principal_of(request).id)
    except NotFound:
        raise api_error(404, "you have no routing profile yet; an admin creates it") from None


@routes.get("/api/v1/agents/me/status")
@requires("agent", "supervisor")
async def get_my_status(request: web.Request) -> web.Response:
    """Your status, since when, capacity used and the items you hold."""
    agent = await my_agent(request)
    statuses = [s.name for s in await engine_of(request).backend.list_statuses()]
    return web.json_response({**agent.to_dict(), "statuses": statuses})


@routes.put("/api/v1/agents/me/status")
@requires("agent", "supervisor")
async def set_my_status(request: web.Request) -> web.Response:
    """Set your presence status (``{"status": "Available"}``); work is pushed at once if it allows."""
    body = await read_json_object(request)
    status = field_value(body, "status", str, required=True)
    await my_agent(request)
    agent = await engine_of(request).set_agent_status(principal_of(request).id, status)
    return web.json_response(agent.to_dict())
