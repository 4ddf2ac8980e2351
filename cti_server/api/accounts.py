"""Accounts REST API: CRUD of the companies and households contacts and cases belong to."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import func, select

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
from cti_server.store.models import Account

routes = web.RouteTableDef()
TAG = ("accounts",)

_FIELDS: dict[str, Schema] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200},
    "external_id": {"type": ["string", "null"], "maxLength": 120},
    "phone": {"type": "string", "maxLength": 20},
    "website": {"type": "string", "maxLength": 200},
    "industry": {"type": "string", "maxLength": 80},
    "attributes": {"type": "object"},
}
ACCOUNT_CREATE: Schema = {
    "type": "object",
    "properties": {**_FIELDS, "call_center_id": {"type": "string"}},
    "required": ["name"],
    "additionalProperties": False,
}
ACCOUNT_UPDATE: Schema = {"type": "object", "properties": _FIELDS, "additionalProperties": False}
ACCOUNT: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "call_center_id": {"type": "string"},
        **_FIELDS,
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}
ACCOUNT_LIST: Schema = {
    "type": "object",
    "properties": {"accounts": {"type": "array", "items": ACCOUNT}, "total": {"type": "integer"}},
}


def account_json(account: Account) -> dict[str, Any]:
    """JSON of an account."""
    return {
        "id": account.id,
        "call_center_id": account.call_center_id,
        "name": account.name,
        "external_id": account.external_id,
        "phone": account.phone,
        "website": account.website,
        "industry": account.industry,
        "attributes": account.attributes,
        "created_at": iso(account.created_at),
        "updated_at": iso(account.updated_at),
    }


@routes.get("/api/v1/accounts")
@documented(
    "List or search accounts",
    tags=TAG,
    query=(QueryParameter("q", "text found in the account name"), *PAGE_PARAMETERS),
    response=ACCOUNT_LIST,
)
@requires(*CRM_ROLES)
async def list_accounts(request: web.Request) -> web.Response:
    """Accounts of the caller's call center (admins: every call center), by name."""
    limit, offset = page(request)
    query = select(Account)
    text = request.query.get("q", "").strip()
    if text:
        query = query.where(func.lower(Account.name).like(f"%{text.lower()}%"))
    async with db_session(request) as db:
        total, accounts = await fetch_page(db, query, (Account.name, Account.id), limit, offset)
    return web.json_response({"accounts": [account_json(a) for a in accounts], "total": total})


@routes.post("/api/v1/accounts")
@documented(
    "Create an account",
    tags=TAG,
    query=(CALL_CENTER_PARAMETER,),
    request=ACCOUNT_CREATE,
    response=ACCOUNT,
    status=201,
    errors=(400, 401, 403, 404, 409),
)
@requires(*CRM_ROLES)
async def create_account(request: web.Request) -> web.Response:
    """Create an account in the caller's call center."""
    body = await read_body(request, ACCOUNT_CREATE)
    async with db_session(request) as db:
        center = await target_call_center(request, db, body)
        await _check_external_id(db, center.id, body.get("external_id"), None)
        account = Account(
            call_center_id=center.id,
            name=body["name"].strip(),
            external_id=body.get("external_id") or None,
            phone=body.get("phone", ""),
            website=body.get("website", ""),
            industry=body.get("industry", ""),
            attributes=body.get("attributes") or {},
        )
        db.add(account)
        await db.commit()
        return web.json_response(account_json(account), status=201)


async def _check_external_id(db: Any, call_center_id: str, external_id: Any, own_id: str | None) -> None:
    if not external_id:
        return
    query = select(Account.id).where(
        Account.call_center_id == call_center_id, Account.external_id == external_id
    )
    existing = (await db.execute(query)).scalar()
    if existing is not None and existing != own_id:
        raise api_error(409, "another account has this external_id", field="external_id")


@routes.get("/api/v1/accounts/{account_id}")
@documented("Get an account", tags=TAG, response=ACCOUNT, errors=(401, 403, 404))
@requires(*CRM_ROLES)
async def get_account(request: web.Request) -> web.Response:
    """One account of the caller's call center."""
    async with db_session(request) as db:
        account = await get_scoped(db, Account, request.match_info["account_id"], "account")
    return web.json_response(account_json(account))


@routes.patch("/api/v1/accounts/{account_id}")
@documented(
    "Change an account", tags=TAG, request=ACCOUNT_UPDATE, response=ACCOUNT, errors=(400, 401, 403, 404, 409)
)
@requires(*CRM_ROLES)
async def update_account(request: web.Request) -> web.Response:
    """Change the given fields of an account."""
    body = await read_body(request, ACCOUNT_UPDATE)
    async with db_session(request) as db:
        account = await get_scoped(db, Account, request.match_info["account_id"], "account")
        if "external_id" in body:
            await _check_external_id(db, account.call_center_id, body["external_id"], account.id)
        for name, value in body.items():
            setattr(account, name, (value or None) if name == "external_id" else value)
        await db.commit()
        return web.json_response(account_json(account))


@routes.delete("/api/v1/accounts/{account_id}")
@documented("Delete an account", tags=TAG, status=204, errors=(401, 403, 404))
@requires(*MANAGER_ROLES)
async def delete_account(request: web.Request) -> web.Response:
    """Delete an account; its contacts and cases stay, without an account."""
    async with db_session(request) as db:
        account = await get_scoped(db, Account, request.match_info["account_id"], "account")
        await db.delete(account)
        await db.commit()
    return web.Response(status=204)
