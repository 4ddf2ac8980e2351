"""Admin CRUD of routing objects: routing configurations, queues, presence statuses, skills, agents.

``GET /api/v1/routing/<kind>`` lists (admins and supervisors; supervisors see their call center's
queues and agents), ``PUT /api/v1/routing/<kind>/{id}`` creates or replaces (admins), ``DELETE``
removes (409 while in use). Kinds: ``configs``, ``queues``, ``statuses``, ``skills``, ``agents``.
An agent's id is their user id; its profile is capacity, ``channel_caps``, ``skills``, ``queues``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from cti_server.api.auth import principal_of, requires
from cti_server.api.errors import api_error, read_json_object
from cti_server.api.work_items import engine_of
from cti_server.routing.engine import RoutingEngine
from cti_server.routing.model import Agent, PresenceStatus, Queue, RoutingConfig, Skill, build

routes = web.RouteTableDef()
_AGENT_PROFILE = ("call_center", "capacity", "channel_caps", "skills", "queues", "name")


@dataclass(frozen=True)
class _Kind:
    key: str  # the id field of the object
    parse: Callable[[dict[str, Any]], Any]
    put: Callable[[RoutingEngine, Any], Awaitable[Any]]
    listing: Callable[[RoutingEngine], Awaitable[list[Any]]]
    delete: Callable[[RoutingEngine, str], Awaitable[None]]
    scoped: bool = False  # objects carry a call_center


def _agent(body: dict[str, Any]) -> Agent:
    unknown = sorted(set(body) - {"id", *_AGENT_PROFILE})
    if unknown:
        raise api_error(400, f"unknown field (known: {', '.join(_AGENT_PROFILE)})", field=unknown[0])
    return build(Agent, body)


_KINDS: dict[str, _Kind] = {
    "configs": _Kind("id", RoutingConfig.from_dict, lambda e, o: e.backend.put_routing_config(o),
                     lambda e: e.backend.list_routing_configs(),
                     lambda e, i: e.backend.delete_routing_config(i)),
    "queues": _Kind("id", Queue.from_dict, lambda e, o: e.backend.put_queue(o),
                    lambda e: e.backend.list_queues(), lambda e, i: e.backend.delete_queue(i), scoped=True),
    "statuses": _Kind("name", PresenceStatus.from_dict, lambda e, o: e.backend.put_status(o),
                      lambda e: e.backend.list_statuses(), lambda e, i: e.backend.delete_status(i)),
    "skills": _Kind("name", Skill.from_dict, lambda e, o: e.backend.put_skill(o),
                    lambda e: e.backend.list_skills(), lambda e, i: e.backend.delete_skill(i)),
    "agents": _Kind("id", _agent, lambda e, o: e.register_agent(o),
                    lambda e: e.backend.list_agents(), lambda e, i: e.backend.delete_agent(i), scoped=True),
}


def _kind(request: web.Request) -> _Kind:
    kind = _KINDS.get(request.match_info["kind"])
    if kind is None:
        raise api_error(404, f"no routing objects called {request.match_info['kind']}")
    return kind


@routes.get("/api/v1/routing/{kind}")
@requires("admin", "supervisor")
async def list_objects(request: web.Request) -> web.Response:
    """Every object of the kind (a supervisor: their call center's queues and agents)."""
    kind = _kind(request)
    principal = principal_of(request)
    objects = await kind.listing(engine_of(request))
    if kind.scoped and not principal.is_admin:
        objects = [o for o in objects if o.call_center == principal.call_center_id]
    return web.json_response({request.match_info["kind"]: [o.to_dict() for o in objects]})


@routes.put("/api/v1/routing/{kind}/{id}")
@requires("admin")
async def put_object(request: web.Request) -> web.Response:
    """Create or replace one object; the id comes from the path."""
    kind = _kind(request)
    body = await read_json_object(request)
    ident = request.match_info["id"]
    if kind.key in body and body[kind.key] != ident:
        raise api_error(400, "differs from the id in the path", field=kind.key)
    obj = kind.parse({**body, kind.key: ident})
    stored = await kind.put(engine_of(request), obj)
    return web.json_response((stored or obj).to_dict())


@routes.delete("/api/v1/routing/{kind}/{id}")
@requires("admin")
async def delete_object(request: web.Request) -> web.Response:
    """Remove one object (409 while work or agents still use it)."""
    await _kind(request).delete(engine_of(request), request.match_info["id"])
    return web.json_response({"deleted": request.match_info["id"]})
