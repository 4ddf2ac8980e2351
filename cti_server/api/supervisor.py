"""The supervisor's view over REST: live queues and agents, time-window figures, and interventions.

Supervisors see their own call center; admins see every call center (or one, with ``?call_center=``).
Live updates of the same picture arrive on the ``/supervisor`` socket.io namespace.
"""

from __future__ import annotations

from aiohttp import web

from cti_server.api.auth import principal_of, requires
from cti_server.api.errors import api_error, field_value, read_json_object
from cti_server.api.work_items import ROUTING_KEY, check_item_visible, engine_of
from cti_server.routing.figures import agent_figures, queue_figures, window_figures
from cti_server.routing.model import NotFound

routes = web.RouteTableDef()


def report_scope(request: web.Request) -> str | None:
    """The call center to report on: the supervisor's own; for an admin ``?call_center=`` or all."""
    principal = principal_of(request)
    if principal.is_admin:
        return request.query.get("call_center") or None
    return principal.call_center_id


def _time(request: web.Request, name: str, default: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise api_error(400, "must be seconds since the epoch, e.g. 1764130000", field=name) from None


@routes.get("/api/v1/supervisor/queues")
@requires("supervisor", "admin")
async def list_queue_figures(request: web.Request) -> web.Response:
    """Per queue: waiting, offered, longest wait, and ASA / service level / abandon rate of the window."""
    engine = engine_of(request)
    window_s = request.app[ROUTING_KEY].config.figures_window_s
    figures = await queue_figures(engine.backend, engine.clock.now(), window_s, report_scope(request))
    return web.json_response({"queues": [f.to_dict() for f in figures], "window_s": window_s})


@routes.get("/api/v1/supervisor/agents")
@requires("supervisor", "admin")
async def list_agent_figures(request: web.Request) -> web.Response:
    """Per agent: status and time in it, current work, capacity used."""
    engine = engine_of(request)
    figures = await agent_figures(engine.backend, engine.clock.now(), report_scope(request))
    return web.json_response({"agents": [f.to_dict() for f in figures]})


@routes.get("/api/v1/supervisor/figures")
@requires("supervisor", "admin")
async def figures_for_window(request: web.Request) -> web.Response:
    """Per queue over ``?from=&to=`` (epoch seconds; default the last hour): ASA, service level,
    abandon rate, average handle time with talk, hold and after-call work."""
    now = engine_of(request).clock.now()
    end = _time(request, "to", now)
    start = _time(request, "from", end - 3600.0)
    if start >= end:
        raise api_error(400, "must be before to", field="from")
    figures = await window_figures(engine_of(request).backend, start, end, report_scope(request))
    return web.json_response({"from": start, "to": end, "queues": [f.to_dict() for f in figures]})


@routes.put("/api/v1/supervisor/agents/{agent_id}/status")
@requires("supervisor", "admin")
async def set_agent_status(request: web.Request) -> web.Response:
    """Change an agent's presence status (``{"status": "Break"}``)."""
    body = await read_json_object(request)
    status = field_value(body, "status", str, required=True)
    engine = engine_of(request)
    agent = await engine.backend.get_agent(request.match_info["agent_id"])
    scope = report_scope(request)
    if scope is not None and agent.call_center != scope:
        raise api_error(404, f"no agent {agent.id}")
    return web.json_response((await engine.set_agent_status(agent.id, status)).to_dict())


@routes.post("/api/v1/supervisor/work-items/{item_id}/move")
@requires("supervisor", "admin")
async def move_work_item(request: web.Request) -> web.Response:
    """Move a queued or offered item: ``{"queue": id}`` to another queue, ``{"agent": id}`` to one agent."""
    body = await read_json_object(request)
    queue = field_value(body, "queue", str)
    agent = field_value(body, "agent", str)
    if (queue is None) == (agent is None):
        raise api_error(400, "give exactly one of queue or agent", field="queue")
    engine = engine_of(request)
    item = await engine.get_item(request.match_info["item_id"])
    await check_item_visible(request, item)
    try:
        if queue is not None and (await engine.backend.get_queue(queue)).call_center != item.call_center:
            raise NotFound(queue)
    except NotFound:
        raise api_error(400, f"no queue {queue!r} in this call center", field="queue") from None
    try:
        if agent is not None and (await engine.backend.get_agent(agent)).call_center != item.call_center:
            raise NotFound(agent)
    except NotFound:
        raise api_error(400, f"no agent {agent!r} in this call center", field="agent") from None
    moved = await engine.move_item(item.id, queue=queue, agent=agent)
    return web.json_response(moved.to_dict())
