"""Cases REST API: CRUD of support cases, optionally about a contact and its account."""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cti_server.api.auth import db_session, requires
from cti_server.api.crm_scope import (
    CALL_CENTER_PARAMETER,
    CRM_ROLES,
    MANAGER_ROLES,
    PAGE_PARAMETERS,
    fetch_page,
    get_scoped,
    iso,
    page,
    target_call_center,
)
from cti_server.api.errors import api_error
from cti_server.api.openapi import QueryParameter, documented
from cti_server.api.validation import Schema, read_body
from cti_server.store.base import utcnow
from cti_server.store.models import Account, Case, Contact

routes = web.RouteTableDef()
TAG = ("cases",)

STATUSES = ["new", "open", "pending", "closed"]
PRIORITIES = ["low", "medium", "high", "urgent"]
_FIELDS: dict[str, Schema] = {
    "subject": {"type": "string", "maxLength": 255},
    "description": {"type": "string", "maxLength": 20000},
    "status": {"type": "string", "enum": STATUSES},
    "priority": {"type": "string", "enum": PRIORITIES},
    "contact_id": {"type": ["string", "null"], "maxLength": 36},
    "account_id": {"type": ["string", "null"], "maxLength": 36},
}
CASE_CREATE: Schema = {
    "type": "object",
    "properties": {
        **_FIELDS,
        "number": {"type": "string", "minLength": 1, "maxLength": 32},
        "call_center_id": {"type": "string"},
    },
    "required": ["subject"],
    "additionalProperties": False,
}
CASE_UPDATE: Schema = {"type": "object", "properties": _FIELDS, "additionalProperties": False}
CASE: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "number": {"type": "string"},
        "call_center_id": {"type": "string"},
        **_FIELDS,
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "closed_at": {"type": ["string", "null"], "format": "date-time"},
    },
}
CASE_LIST: Schema = {
    "type": "object",
    "properties": {"cases": {"type": "array", "items": CASE}, "total": {"type": "integer"}},
}


def case_json(case: Case) -> dict[str, Any]:
    """JSON of a case."""
    return {
        "id": case.id,
        "number": case.number,
        "call_center_id": case.call_center_id,
        "subject": case.subject,
        "description": case.description,
        "status": case.status,
        "priority": case.priority,
        "contact_id": case.contact_id,
        "account_id": case.account_id,
        "created_at": iso(case.created_at),
        "updated_at": iso(case.updated_at),
        "closed_at": iso(case.closed_at),
    }


async def _check_links(db: AsyncSession, body: dict[str, Any]) -> None:
    if body.get("contact_id") is not None and await db.get(Contact, body["contact_id"]) is None:
        raise api_error(400, "no such contact in this call center", field="contact_id")
    if body.get("account_id") is not None and await db.get(Account, body["account_id"]) is None:
        raise api_error(400, "no such account in this call center", field="account_id")


@routes.get("/api/v1/cases")
@documented(
    "List cases",
    tags=TAG,
    query=(
        QueryParameter("status", "only cases in this status", {"type": "string", "enum": STATUSES}),
        QueryParameter("contact_id", "only cases about this contact"),
        *PAGE_PARAMETERS,
    ),
    response=CASE_LIST,
)
@requires(*CRM_ROLES)
async def list_cases(request: web.Request) -> web.Response:
    """Cases of the caller's call center, newest first."""
    limit, offset = page(request)
    query = select(Case)
    status = request.query.get("status")
    if status:
        if status not in STATUSES:
            raise api_error(400, f"must be one of {', '.join(STATUSES)}", field="status")
        query = query.where(Case.status == status)
    if request.query.get("contact_id"):
        query = query.where(Case.contact_id == request.query["contact_id"])
    async with db_session(request) as db:
        total, cases = await fetch_page(db, query, (Case.created_at.desc(), Case.id), limit, offset)
    return web.json_response({"cases": [case_json(c) for c in cases], "total": total})


@routes.post("/api/v1/cases")
@documented(
    "Open a case",
    tags=TAG,
    query=(CALL_CENTER_PARAMETER,),
    request=CASE_CREATE,
    response=CASE,
    status=201,
    errors=(400, 401, 403, 404, 409),
)
@requires(*CRM_ROLES)
async def create_case(request: web.Request) -> web.Response:
    """Open a case; without ``number`` one is made (``CS-`` and 8 hex digits)."""
    body = await read_body(request, CASE_CREATE)
    async with db_session(request) as db:
        center = await target_call_center(request, db, body)
        await _check_links(db, body)
        number = body.get("number") or f"CS-{secrets.token_hex(4).upper()}"
        taken = await db.execute(
            select(Case.id).where(Case.call_center_id == center.id, Case.number == number)
        )
        if taken.scalar() is not None:
            raise api_error(409, "a case has this number already", field="number")
        case = Case(
            call_center_id=center.id,
            number=number,
            subject=body["subject"],
            description=body.get("description", ""),
            status=body.get("status", "new"),
            priority=body.get("priority", "medium"),
            contact_id=body.get("contact_id"),
            account_id=body.get("account_id"),
            closed_at=utcnow() if body.get("status") == "closed" else None,
        )
        db.add(case)
        await db.commit()
        return web.json_response(case_json(case), status=201)


@routes.get("/api/v1/cases/{case_id}")
@documented("Get a case", tags=TAG, response=CASE, errors=(401, 403, 404))
@requires(*CRM_ROLES)
async def get_case(request: web.Request) -> web.Response:
    """One case of the caller's call center."""
    async with db_session(request) as db:
        case = await get_scoped(db, Case, request.match_info["case_id"], "case")
    return web.json_response(case_json(case))


@routes.patch("/api/v1/cases/{case_id}")
@documented("Change a case", tags=TAG, request=CASE_UPDATE, response=CASE, errors=(400, 401, 403, 404))
@requires(*CRM_ROLES)
async def update_case(request: web.Request) -> web.Response:
    """Change the given fields of a case; closing it stamps ``closed_at``."""
    body = await read_body(request, CASE_UPDATE)
    async with db_session(request) as db:
        case = await get_scoped(db, Case, request.match_info["case_id"], "case")
        await _check_links(db, body)
        for name, value in body.items():
            setattr(case, name, value)
        if "status" in body:
            case.closed_at = (case.closed_at or utcnow()) if body["status"] == "closed" else None
        await db.commit()
        return web.json_response(case_json(case))


@routes.delete("/api/v1/cases/{case_id}")
@documented("Delete a case", tags=TAG, status=204, errors=(401, 403, 404))
@requires(*MANAGER_ROLES)
async def delete_case(request: web.Request) -> web.Response:
    """Delete a case; call logs about it stay, unlinked."""
    async with db_session(request) as db:
        case = await get_scoped(db, Case, request.match_info["case_id"], "case")
        await db.delete(case)
        await db.commit()
    return web.Response(status=204)
