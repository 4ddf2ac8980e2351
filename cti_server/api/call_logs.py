"""Call logs REST API: the activity of every call, on its contact or left unmatched and findable by number.

The call-log writer (cti_server/screenpop/call_logs.py) creates them when calls end; agents add notes
and a disposition (wrap-up) and link an unmatched log to a contact or case with PATCH.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from cti_server.api.auth import db_session, principal_of, requires
from cti_server.api.crm_scope import (
    CRM_ROLES,
    PAGE_PARAMETERS,
    fetch_page,
    get_scoped,
    iso,
    number_param,
    page,
)
from cti_server.api.errors import api_error
from cti_server.api.openapi import QueryParameter, documented
from cti_server.api.validation import Schema, read_body
from cti_server.screenpop.phone import PhoneNumberError, normalize_number
from cti_server.store.models import CallCenter, CallLog, Case, Contact

routes = web.RouteTableDef()
TAG = ("call logs",)

CALL_LOG: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "call_center_id": {"type": "string"},
        "call_id": {"type": "string"},
        "direction": {"type": "string", "enum": ["inbound", "outbound", "internal"]},
        "from_number": {"type": "string"},
        "to_number": {"type": "string"},
        "customer_number": {"type": "string", "description": "E.164; empty when unknown"},
        "contact_id": {"type": ["string", "null"]},
        "case_id": {"type": ["string", "null"]},
        "agent_user_id": {"type": ["string", "null"]},
        "started_at": {"type": "string", "format": "date-time"},
        "answered_at": {"type": ["string", "null"], "format": "date-time"},
        "ended_at": {"type": ["string", "null"], "format": "date-time"},
        "disposition": {"type": "string"},
        "notes": {"type": "string"},
        "recording_url": {"type": "string"},
        "transcript_url": {"type": "string"},
        "screen_pop": {"type": "object", "description": "the screen pop that rode on the call"},
    },
}
CALL_LOG_LIST: Schema = {
    "type": "object",
    "properties": {"call_logs": {"type": "array", "items": CALL_LOG}, "total": {"type": "integer"}},
}
CALL_LOG_UPDATE: Schema = {
    "type": "object",
    "properties": {
        "notes": {"type": "string", "maxLength": 20000},
        "disposition": {"type": "string", "maxLength": 32},
        "contact_id": {"type": ["string", "null"], "maxLength": 36},
        "case_id": {"type": ["string", "null"], "maxLength": 36},
    },
    "additionalProperties": False,
}


def call_log_json(call_log: CallLog) -> dict[str, Any]:
    """JSON of a call log."""
    return {
        "id": call_log.id,
        "call_center_id": call_log.call_center_id,
        "call_id": call_log.call_id,
        "direction": call_log.direction,
        "from_number": call_log.from_number,
        "to_number": call_log.to_number,
        "customer_number": call_log.customer_number,
        "contact_id": call_log.contact_id,
        "case_id": call_log.case_id,
        "agent_user_id": call_log.agent_user_id,
        "started_at": iso(call_log.started_at),
        "answered_at": iso(call_log.answered_at),
        "ended_at": iso(call_log.ended_at),
        "disposition": call_log.disposition,
        "notes": call_log.notes,
        "recording_url": call_log.recording_url,
        "transcript_url": call_log.transcript_url,
        "screen_pop": call_log.screen_pop,
    }


async def _listed(request: web.Request, db: AsyncSession, query: Select[CallLog]) -> web.Response:
    limit, offset = page(request)
    total, rows = await fetch_page(db, query, (CallLog.started_at.desc(), CallLog.id), limit, offset)
    return web.json_response({"call_logs": [call_log_json(c) for c in rows], "total": total})


async def _region(request: web.Request, db: AsyncSession) -> str:
    principal = principal_of(request)
    center_id = principal.call_center_id or request.query.get("call_center_id")
    center = await db.get(CallCenter, center_id) if center_id else None
    return center.phone_region if center else "US"


@routes.get("/api/v1/call-logs")
@documented(
    "List call logs, e.g. the unmatched calls of a number",
    tags=TAG,
    query=(
        QueryParameter("number", "the customer's number in any form (matched in E.164)"),
        QueryParameter("contact_id", "only logs on this contact"),
        QueryParameter("call_id", "the log of one call"),
        QueryParameter("unmatched", "true: only logs on no contact", {"type": "boolean"}),
        *PAGE_PARAMETERS,
    ),
    response=CALL_LOG_LIST,
)
@requires(*CRM_ROLES)
async def list_call_logs(request: web.Request) -> web.Response:
    """Call logs of the caller's call center, newest first."""
    query = select(CallLog)
    async with db_session(request) as db:
        number = number_param(request)
        if number:
            try:
                query = query.where(
                    CallLog.customer_number == normalize_number(number, await _region(request, db))
                )
            except PhoneNumberError as exc:
                raise api_error(400, exc.reason, field="number") from None
        if request.query.get("contact_id"):
            query = query.where(CallLog.contact_id == request.query["contact_id"])
        if request.query.get("call_id"):
            query = query.where(CallLog.call_id == request.query["call_id"])
        unmatched = request.query.get("unmatched")
        if unmatched is not None:
            if unmatched not in ("true", "false"):
                raise api_error(400, "must be true or false", field="unmatched")
            query = query.where(
                CallLog.contact_id.is_(None) if unmatched == "true" else CallLog.contact_id.isnot(None)
            )
        return await _listed(request, db, query)


@routes.get("/api/v1/contacts/{contact_id}/call-logs")
@documented(
    "Call logs of one contact",
    tags=TAG,
    query=PAGE_PARAMETERS,
    response=CALL_LOG_LIST,
    errors=(401, 403, 404),
)
@requires(*CRM_ROLES)
async def contact_call_logs(request: web.Request) -> web.Response:
    """Every call logged on a contact, newest first."""
    async with db_session(request) as db:
        contact = await get_scoped(db, Contact, request.match_info["contact_id"], "contact")
        return await _listed(request, db, select(CallLog).where(CallLog.contact_id == contact.id))


@routes.get("/api/v1/call-logs/{call_log_id}")
@documented("Get a call log", tags=TAG, response=CALL_LOG, errors=(401, 403, 404))
@requires(*CRM_ROLES)
async def get_call_log(request: web.Request) -> web.Response:
    """One call log of the caller's call center."""
    async with db_session(request) as db:
        return web.json_response(
            call_log_json(await get_scoped(db, CallLog, request.match_info["call_log_id"], "call log"))
        )


@routes.patch("/api/v1/call-logs/{call_log_id}")
@documented(
    "Wrap up a call: notes, disposition, link to a contact or case",
    tags=TAG,
    request=CALL_LOG_UPDATE,
    response=CALL_LOG,
    errors=(400, 401, 403, 404),
)
@requires(*CRM_ROLES)
async def update_call_log(request: web.Request) -> web.Response:
    """Change the notes or disposition of a call log, or link it to a contact or case."""
    body = await read_body(request, CALL_LOG_UPDATE)
    async with db_session(request) as db:
        call_log = await get_scoped(db, CallLog, request.match_info["call_log_id"], "call log")
        if body.get("contact_id") is not None and await db.get(Contact, body["contact_id"]) is None:
            raise api_error(400, "no such contact in this call center", field="contact_id")
        if body.get("case_id") is not None and await db.get(Case, body["case_id"]) is None:
            raise api_error(400, "no such case in this call center", field="case_id")
        for name, value in body.items():
            setattr(call_log, name, value)
        await db.commit()
        return web.json_response(call_log_json(call_log))
