"""Screen-pop REST API: ``GET /api/v1/screenpop?number=...`` answers "who is calling" with the rules applied.

The answer is the same ``ScreenPop`` object that rides on calls and their events (see
cti_server/screenpop/rules.py). It is not published on the bus: an integrator's question is not a call.
``setup(app)`` also puts the app's ``ScreenPopLookup`` under ``SCREENPOP_KEY`` for the calls layer.
"""

from __future__ import annotations

from aiohttp import web

from cti_server.api.auth import db_session, requires
from cti_server.api.crm_scope import CALL_CENTER_PARAMETER, CRM_ROLES, number_param, target_call_center
from cti_server.api.errors import api_error
from cti_server.api.keys import BUS_KEY, CONFIG_KEY, STORE_KEY
from cti_server.api.openapi import QueryParameter, documented
from cti_server.api.validation import Schema
from cti_server.screenpop.directory import StoreContactDirectory
from cti_server.screenpop.lookup import ScreenPopLookup
from cti_server.screenpop.rules import (
    MULTIPLE_MATCH_ACTIONS,
    NO_MATCH_ACTIONS,
    OUTCOMES,
    SINGLE_MATCH_ACTIONS,
)

routes = web.RouteTableDef()
SCREENPOP_KEY = web.AppKey("screenpop", ScreenPopLookup)

MATCH: Schema = {
    "type": "object",
    "properties": {
        "contact_id": {"type": "string"},
        "display_name": {"type": "string"},
        "matched_number": {"type": "string"},
        "number_label": {"type": ["string", "null"]},
        "email": {"type": ["string", "null"]},
        "account_id": {"type": ["string", "null"]},
        "account_name": {"type": ["string", "null"]},
    },
}
SCREEN_POP: Schema = {
    "type": "object",
    "properties": {
        "call_center_id": {"type": "string"},
        "call_id": {"type": ["string", "null"]},
        "caller": {"type": "string", "description": "the number as given"},
        "number": {"type": ["string", "null"], "description": "E.164, null when unreadable"},
        "outcome": {"type": "string", "enum": list(OUTCOMES)},
        "action": {
            "type": "string",
            "enum": sorted({*SINGLE_MATCH_ACTIONS, *MULTIPLE_MATCH_ACTIONS, *NO_MATCH_ACTIONS}),
            "description": "what to pop: record, list (pick one), new_contact (form), search or nothing",
        },
        "contact_id": {"type": ["string", "null"], "description": "the contact when exactly one matched"},
        "matches": {"type": "array", "items": MATCH},
        "more_matches": {"type": "boolean"},
        "late": {"type": "boolean", "description": "the store missed the lookup deadline"},
        "elapsed_ms": {"type": "number"},
        "error": {"type": ["string", "null"]},
        "prefill": {"type": "object", "description": "fields of the new-contact form or search"},
    },
}


@routes.get("/api/v1/screenpop")
@documented(
    "Who is calling: the screen pop for a number",
    tags=("screen pop",),
    query=(
        QueryParameter(
            "number", "the caller's number in any form (E.164, national, sip: or tel: URI)", required=True
        ),
        CALL_CENTER_PARAMETER,
    ),
    response=SCREEN_POP,
    errors=(400, 401, 403, 404),
)
@requires(*CRM_ROLES)
async def screen_pop(request: web.Request) -> web.Response:
    """The pop for ``number`` in the caller's call center: one match, several or none, per its rules."""
    number = number_param(request)
    if not number:
        raise api_error(400, "is required", field="number")
    async with db_session(request) as db:
        center = await target_call_center(request, db)
    lookup = request.app[SCREENPOP_KEY]
    config = request.app[CONFIG_KEY].screenpop
    # Off the call path an integrator may wait a little longer than a call would.
    pop = await lookup.lookup(
        center.id, number, publish=False, deadline_ms=config.deadline_ms + config.late_result_ms
    )
    return web.json_response(pop.to_dict())


def setup(app: web.Application) -> None:
    """Register the route and the app's lookup (one per app, shared with the calls layer)."""
    if SCREENPOP_KEY not in app:
        app[SCREENPOP_KEY] = ScreenPopLookup(
            StoreContactDirectory(app[STORE_KEY]), app[CONFIG_KEY].screenpop, app[BUS_KEY]
        )
        app.on_cleanup.append(_close_lookup)
    app.add_routes(routes)


async def _close_lookup(app: web.Application) -> None:
    lookup = app[SCREENPOP_KEY]
    await lookup.stop()
    if isinstance(lookup.directory, StoreContactDirectory):
        await lookup.directory.close()
