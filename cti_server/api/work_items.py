"""Work items over REST: integrators push non-voice work, agents accept, decline and finish it.

``POST /api/v1/work-items`` (integrator, supervisor, admin) queues a chat, email, case, message or
custom item in a queue of the caller's call center; ``GET`` / ``DELETE /api/v1/work-items/{id}`` read
or withdraw it. Agents ``POST .../{id}/accept``, ``.../decline`` (``{"reason": ...}``), ``.../end``
(conversation over: after-call work starts) and ``.../close`` (done). Voice items are not pushed here:
the call layer enqueues them through ``RoutingEngine.enqueue``.

``setup(app)`` also owns the routing service's lifetime (started and stopped with the app) and maps
routing errors to JSON: bad input 400 naming the field, unknown ids 404, wrong state 409.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cti_server.api.auth import principal_of, requires
from cti_server.api.errors import api_error, read_json_object
from cti_server.api.keys import BUS_KEY, CONFIG_KEY
from cti_server.api.openapi import documented
from cti_server.routing.engine import RoutingEngine
from cti_server.routing.model import NotFound, RoutingConflict, RoutingInputError, WorkItem
from cti_server.routing.service import RoutingService

ROUTING_KEY = web.AppKey("routing", RoutingService)
"""``app[ROUTING_KEY]``: this process's routing service; ``.engine`` is the routing engine."""

routes = web.RouteTableDef()

_PUSHABLE_FIELDS = ("id", "channel", "queue", "size", "priority", "skills", "record", "data", "call_center")


def engine_of(request: web.Request) -> RoutingEngine:
    """The routing engine behind this app."""
    return request.app[ROUTING_KEY].engine


def own_call_center(request: web.Request, wanted: Any = None) -> str:
    """The call center a request acts in: the principal's, or for an admin the ``call_center`` given."""
    principal = principal_of(request)
    if principal.call_center_id is not None:
        if wanted is not None and wanted != principal.call_center_id:
            raise api_error(403, "that call center is not yours", field="call_center")
        return principal.call_center_id
    if not isinstance(wanted, str) or not wanted:
        raise api_error(400, "an admin must name the call center", field="call_center")
    return wanted


async def check_item_visible(request: web.Request, item: WorkItem) -> None:
    """404 unless the principal may see ``item`` (same call center; agents only their own work)."""
    principal = principal_of(request)
    if not principal.is_admin and item.call_center != principal.call_center_id:
        raise api_error(404, f"no work item {item.id}")
    if principal.role == "agent" and item.agent != principal.id:
        raise api_error(404, f"no work item {item.id}")


WORK_ITEM_PUSH = {
    "type": "object",
    "required": ["channel", "queue"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "description": "your id for the item (default: generated)"},
        "channel": {"type": "string", "description": "chat, email, case, message or a custom name"},
        "queue": {"type": "string", "description": "a queue of your call center"},
        "size": {"type": "integer", "minimum": 1, "description": "capacity units it takes (default 1)"},
        "priority": {"type": "integer", "minimum": 0, "maximum": 99, "description": "higher goes first"},
        "skills": {"type": "object", "description": "skill -> minimum level an agent needs",
                   "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 100}},
        "record": {"type": "string", "description": "the CRM record the work concerns"},
        "data": {"type": "object", "description": "anything the agent's screen should show"},
        "call_center": {"type": "string", "description": "admins only: the call center"},
    },
}


@routes.post("/api/v1/work-items")
@documented("Push a work item (chat, email, case, message, custom) into a queue", tags=("routing",),
            request=WORK_ITEM_PUSH, status=201, errors=(400, 401, 403))
@requires("integrator", "supervisor", "admin")
async def push_work_item(request: web.Request) -> web.Response:
    """Queue a non-voice work item; 201 with the item (already offered if an agent was free)."""
    body = await read_json_object(request)
    unknown = sorted(set(body) - set(_PUSHABLE_FIELDS))
    if unknown:
        raise api_error(400, f"unknown field (known: {', '.join(_PUSHABLE_FIELDS)})", field=unknown[0])
    call_center = own_call_center(request, body.get("call_center"))
    for name in ("channel", "queue"):
        if name not in body:
            raise api_error(400, "is required", field=name)
    if body["channel"] == "voice":
        raise api_error(400, "voice items come from calls, not from the API", field="channel")
    engine = engine_of(request)
    try:
        queue = await engine.backend.get_queue(str(body["queue"]))
    except NotFound:
        raise api_error(400, f"no queue {body['queue']!r}", field="queue") from None
    if queue.call_center != call_center:
        raise api_error(400, f"no queue {body['queue']!r} in this call center", field="queue")
    item = WorkItem(id=body.get("id") or uuid.uuid4().hex, channel=body["channel"], queue=queue.id,
                    call_center=call_center, size=body.get("size", 1), priority=body.get("priority", 0),
                    skills=body.get("skills") or {}, record=body.get("record"), data=body.get("data") or {})
    stored = await engine.enqueue(item)
    return web.json_response(stored.to_dict(), status=201)


@routes.get("/api/v1/work-items/{item_id}")
@requires("integrator", "supervisor", "admin", "agent")
async def get_work_item(request: web.Request) -> web.Response:
    """One work item with its state and offer history."""
    item = await engine_of(request).get_item(request.match_info["item_id"])
    await check_item_visible(request, item)
    return web.json_response(item.to_dict())


@routes.delete("/api/v1/work-items/{item_id}")
@requires("integrator", "supervisor", "admin")
async def withdraw_work_item(request: web.Request) -> web.Response:
    """Withdraw a queued or offered item (``?reason=``; default ``withdrawn``); 409 once assigned."""
    engine = engine_of(request)
    item = await engine.get_item(request.match_info["item_id"])
    await check_item_visible(request, item)
    withdrawn = await engine.withdraw(item.id, request.query.get("reason", "withdrawn")[:200])
    return web.json_response(withdrawn.to_dict())


AgentStep = Callable[[RoutingEngine, str, str, dict[str, Any]], Awaitable[WorkItem]]


async def _agent_step(request: web.Request, step: AgentStep) -> web.Response:
    engine = engine_of(request)
    principal = principal_of(request)
    item_id = request.match_info["item_id"]
    body = await read_json_object(request) if request.can_read_body else {}
    item = await engine.get_item(item_id)
    if item.call_center != principal.call_center_id or item.agent != principal.id:
        raise api_error(409, f"work item {item_id} is not yours")
    return web.json_response((await step(engine, item_id, principal.id, body)).to_dict())


@routes.post("/api/v1/work-items/{item_id}/accept")
@requires("agent")
async def accept_work_item(request: web.Request) -> web.Response:
    """Accept the item offered to you; 409 if it is not (or no longer) offered to you."""
    return await _agent_step(request, lambda e, i, a, _b: e.accept(i, a))


@routes.post("/api/v1/work-items/{item_id}/decline")
@requires("agent")
async def decline_work_item(request: web.Request) -> web.Response:
    """Decline the item offered to you (``{"reason": "..."}``); it goes to the next agent."""

    async def decline(engine: RoutingEngine, item_id: str, agent: str, body: dict[str, Any]) -> WorkItem:
        reason = body.get("reason", "")
        if not isinstance(reason, str) or len(reason) > 200:
            raise api_error(400, "must be a string of at most 200 characters", field="reason")
        return await engine.decline(item_id, agent, reason)

    return await _agent_step(request, decline)


@routes.post("/api/v1/work-items/{item_id}/end")
@requires("agent")
async def end_work_item(request: web.Request) -> web.Response:
    """The conversation is over: after-call work starts (or the item closes when there is none)."""
    return await _agent_step(request, lambda e, i, _a, _b: e.end_conversation(i))


@routes.post("/api/v1/work-items/{item_id}/close")
@requires("agent")
async def close_work_item(request: web.Request) -> web.Response:
    """Done with the item (ends after-call work early); frees its capacity."""
    return await _agent_step(request, lambda e, i, _a, _b: e.close(i, "completed"))


@web.middleware
async def routing_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Answer routing errors as JSON: bad input 400 (with the field), unknown 404, wrong state 409."""
    try:
        return await handler(request)
    except RoutingInputError as exc:
        raise api_error(400, str(exc).split(": ", 1)[-1], field=exc.field) from None
    except NotFound as exc:
        raise api_error(404, str(exc)) from None
    except RoutingConflict as exc:
        raise api_error(409, str(exc)) from None


def setup(app: web.Application) -> None:
    """Routes of routing (work items, presence, supervisor, admin CRUD), error mapping and the routing
    service (started and stopped with ``app``)."""
    if ROUTING_KEY not in app:
        app[ROUTING_KEY] = RoutingService(app[CONFIG_KEY].routing, app[BUS_KEY])
    from cti_server.api import presence, routing_admin, supervisor

    app.middlewares.append(routing_errors)
    for table in (routes, presence.routes, supervisor.routes, routing_admin.routes):
        app.add_routes(table)

    async def start(app: web.Application) -> None:
        await app[ROUTING_KEY].start()

    async def stop(app: web.Application) -> None:
        await app[ROUTING_KEY].stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
