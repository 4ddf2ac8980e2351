"""The supervisor's page (softphone_web/supervisor/, served at ``/supervisor/``) and the one read it needs.

The page signs in through ``/api/v1/login`` (supervisors and admins), reads the live picture from
``GET /api/v1/supervisor/queues`` and ``/agents``, the queue names from ``/api/v1/routing/queues`` and
the admin-defined statuses from ``/api/v1/routing/statuses``, and follows the ``/supervisor`` socket.io
namespace (``queue.figures``, ``agent.*``, ``work_item.*``), reading REST again after an event. It
changes an agent's status and moves an item with the supervisor routes. What those routes did not give
is the list of items a supervisor can move: ``GET /api/v1/supervisor/work-items`` lists the queued and
offered items of the call center (an admin: every one, or ``?call_center=``), in waiting order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from cti_server.api.auth import requires
from cti_server.api.errors import api_error
from cti_server.api.openapi import QueryParameter, documented
from cti_server.api.supervisor import report_scope
from cti_server.api.validation import Schema
from cti_server.api.work_items import engine_of
from cti_server.routing.backend import item_order_score
from cti_server.routing.model import ItemState, NotFound, WorkItem

SUPERVISOR_PAGE_DIR = Path(__file__).resolve().parents[2] / "softphone_web" / "supervisor"
"""softphone_web/supervisor: index.html, supervisor.js, supervisor.css (plain HTML and JS, no build step)."""

MOVABLE = frozenset({ItemState.QUEUED, ItemState.OFFERED})
"""The states ``POST /api/v1/supervisor/work-items/{id}/move`` accepts."""
LABEL_FIELDS = ("subject", "caller", "from_number", "phone", "number")
"""Fields of an item's data whose first string value names the item in the list."""
LABEL_LENGTH = 80
PER_QUEUE = 50
"""Items listed per queue unless ``?per_queue=`` says otherwise (the first ones to be served)."""
MAX_PER_QUEUE = 500

routes = web.RouteTableDef()


def _label(item: WorkItem) -> str | None:
    for name in LABEL_FIELDS:
        value = item.data.get(name)
        if isinstance(value, str) and value:
            return value[:LABEL_LENGTH]
    return None


def _per_queue(request: web.Request) -> int:
    raw = request.query.get("per_queue", str(PER_QUEUE))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PER_QUEUE:
        raise api_error(400, f"must be an integer from 1 to {MAX_PER_QUEUE}", field="per_queue")
    return int(raw)


WAITING_ITEMS: Schema = {
    "type": "object",
    "properties": {
        "items": {"type": "array", "items": {"type": "object", "properties": {
            "queued_at": {"type": "number", "description": "epoch seconds the item (last) joined its queue"},
            "label": {"type": ["string", "null"], "description": "data.subject, else the caller's number"},
        }, "description": "the item's summary (as in work_item.* events) with queued_at and label"}},
        "server_time": {"type": "number", "description": "now on the server clock, epoch seconds"},
    },
}


@routes.get("/api/v1/supervisor/work-items")
@documented("Queued and offered work items of your call center (the ones a supervisor can move), "
            "in waiting order per queue", tags=("routing",), response=WAITING_ITEMS,
            query=(QueryParameter("queue", "only this queue"),
                   QueryParameter("per_queue", f"at most this many per queue, the first to be served "
                                  f"(default {PER_QUEUE}, at most {MAX_PER_QUEUE})", {"type": "integer"}),
                   QueryParameter("call_center", "admins only: this call center (default every one)")),
            errors=(400, 401, 403))
@requires("supervisor", "admin")
async def waiting_items(request: web.Request) -> web.Response:
    """Queued and offered items of the call center, by queue, then in the order they are served."""
    per_queue = _per_queue(request)
    engine = engine_of(request)
    scope = report_scope(request)
    wanted = request.query.get("queue") or None
    queues = sorted(q.id for q in await engine.backend.list_queues()
                    if (scope is None or q.call_center == scope) and (wanted is None or q.id == wanted))
    items: list[dict[str, Any]] = []
    for queue_id in queues:
        try:
            # Reads only the first per_queue waiting items and those on offer, not every open item.
            found = await engine.backend.movable_items(queue_id, per_queue)
        except NotFound:
            continue  # deleted since it was listed
        found = [item for item in found
                 if item.state in MOVABLE and (scope is None or item.call_center == scope)]
        found.sort(key=lambda item: item_order_score(item.priority, item.created))
        items.extend({**item.summary(), "queued_at": item.queued_at, "label": _label(item)}
                     for item in found[:per_queue])
    return web.json_response({"items": items, "server_time": engine.clock.now()})


async def supervisor_page(request: web.Request) -> web.FileResponse:
    """The supervisor's page; it holds no data itself and signs in through ``/api/v1/login``."""
    return web.FileResponse(SUPERVISOR_PAGE_DIR / "index.html")


async def supervisor_redirect(request: web.Request) -> web.Response:
    """``/supervisor`` -> ``/supervisor/``."""
    raise web.HTTPFound("/supervisor/")


def setup(app: web.Application) -> None:
    """Add ``/api/v1/supervisor/work-items`` and the page (``/supervisor/``, assets under
    ``/supervisor/static/``). Call after ``work_items.setup`` (the routing service and its errors)."""
    app.add_routes(routes)
    app.router.add_get("/supervisor", supervisor_redirect)
    app.router.add_get("/supervisor/", supervisor_page)
    app.router.add_static("/supervisor/static/", SUPERVISOR_PAGE_DIR, name="supervisor_static")
