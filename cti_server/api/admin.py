"""Admin REST API: call centers, users, membership, DIDs, API keys and the audit log.

Writes are admin-only and audited; a membership change is also published on the bus
(``membership.assigned`` / ``membership.unassigned``) for routing and the pages. Reads are open to
every role but go through a store session scoped to the caller's call center: an agent, supervisor or
integrator lists only their own call center, its members and its DIDs; an admin sees everything. Bad
bodies get 400 ``{"error", "field"}``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cti_server.api.auth import db_session, principal_of, requires
from cti_server.api.crm_scope import get_scoped
from cti_server.api.errors import api_error, field_value, read_json_object
from cti_server.api.keys import BUS_KEY, CONFIG_KEY, PASSWORDS_KEY
from cti_server.api.openapi import QueryParameter, documented
from cti_server.api.validation import Schema
from cti_server.events import Event
from cti_server.screenpop.rules import (
    MULTIPLE_MATCH_ACTIONS,
    NO_MATCH_ACTIONS,
    SINGLE_MATCH_ACTIONS,
    RulesError,
    ScreenPopRules,
)
from cti_server.store import directory
from cti_server.store.credentials import create_api_key, revoke_api_key
from cti_server.store.errors import InvalidField, NotFound
from cti_server.store.models import ApiKey, AuditEntry, CallCenter, Did, Membership, User
from cti_server.store.tenancy import RECORDING_POLICIES, ROLES

routes = web.RouteTableDef()

ADMIN = "admin"
MAX_PAGE = 5000

CC_TAG = ("call centers",)
USER_TAG = ("users",)
DID_TAG = ("DIDs",)
KEY_TAG = ("API keys",)
_RULES: Schema = {
    "type": "object",
    "description": "screen-pop rules (cti_server/screenpop/rules.py)",
    "properties": {
        "single_match": {"enum": list(SINGLE_MATCH_ACTIONS)},
        "multiple_matches": {"enum": list(MULTIPLE_MATCH_ACTIONS)},
        "no_match": {"enum": list(NO_MATCH_ACTIONS)},
    },
    "additionalProperties": False,
}
_CALL_CENTER_FIELDS: dict[str, Schema] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 120},
    "phone_region": {"type": "string", "description": "ISO 3166-1 region, e.g. US, GB", "default": "US"},
    "recording_policy": {"enum": list(RECORDING_POLICIES), "default": "none"},
    "screen_pop_rules": _RULES,
}
CALL_CENTER_CREATE: Schema = {"type": "object", "properties": _CALL_CENTER_FIELDS, "required": ["name"]}
CALL_CENTER_UPDATE: Schema = {
    "type": "object", "properties": _CALL_CENTER_FIELDS, "additionalProperties": False,
}
_USER_FIELDS: dict[str, Schema] = {
    "display_name": {"type": "string"},
    "email": {"type": "string"},
    "role": {"enum": list(ROLES)},
    "password": {"type": "string", "minLength": directory.MIN_PASSWORD_LENGTH},
    "sip_username": {"type": "string", "description": "desk-phone SIP user (with sip_password)"},
    "sip_password": {"type": "string", "minLength": directory.MIN_PASSWORD_LENGTH},
}
USER_CREATE: Schema = {
    "type": "object",
    "properties": {"username": {"type": "string", "minLength": 1, "maxLength": 80}, **_USER_FIELDS,
                   "call_center_id": {"type": "string"}},
    "required": ["username", "role"],
}
USER_UPDATE: Schema = {
    "type": "object",
    "properties": {**_USER_FIELDS, "active": {"type": "boolean"}},
    "additionalProperties": False,
}
DID_CREATE: Schema = {
    "type": "object",
    "properties": {"number": {"type": "string", "description": "read with the call center's region"},
                   "description": {"type": "string", "maxLength": 200}},
    "required": ["number"],
}
API_KEY_CREATE: Schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 120}}}
CC_QUERY = QueryParameter("call_center_id", "only this call center's")
USER_QUERY = (CC_QUERY, QueryParameter("unassigned", "true: only users in no call center"),
              QueryParameter("limit", f"most users returned (1-{MAX_PAGE})", {"type": "integer"}),
              QueryParameter("offset", "users skipped", {"type": "integer"}))
AUDIT_QUERY = (CC_QUERY, QueryParameter("target_id", "changes of this record"),
               QueryParameter("action", "e.g. membership.assign"), *USER_QUERY[2:])


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def call_center_json(call_center: CallCenter, members: int | None = None,
                     dids: int | None = None) -> dict[str, Any]:
    """JSON of a call center (with member and DID counts when given)."""
    body: dict[str, Any] = {
        "id": call_center.id, "name": call_center.name, "phone_region": call_center.phone_region,
        "recording_policy": call_center.recording_policy,
        "screen_pop_rules": call_center.screen_pop_rules, "created_at": _time(call_center.created_at),
        "updated_at": _time(call_center.updated_at),
    }
    if members is not None:
        body["member_count"] = members
    if dids is not None:
        body["did_count"] = dids
    return body


def user_json(user: User, call_center_id: str | None) -> dict[str, Any]:
    """JSON of a user; never the password or SIP hashes."""
    return {
        "id": user.id, "username": user.username, "display_name": user.display_name, "email": user.email,
        "role": user.role, "active": user.active, "call_center_id": call_center_id,
        "sip_username": user.sip_username, "created_at": _time(user.created_at),
        "last_login_at": _time(user.last_login_at),
    }


def did_json(did: Did) -> dict[str, Any]:
    """JSON of a DID."""
    return {"id": did.id, "number": did.number, "description": did.description,
            "call_center_id": did.call_center_id, "created_at": _time(did.created_at)}


def api_key_json(key: ApiKey) -> dict[str, Any]:
    """JSON of an API key: its public prefix only, never the key."""
    return {"id": key.id, "name": key.name, "prefix": key.prefix, "role": key.role,
            "call_center_id": key.call_center_id, "created_at": _time(key.created_at),
            "created_by": key.created_by, "last_used_at": _time(key.last_used_at),
            "revoked_at": _time(key.revoked_at)}


def _page(request: web.Request) -> tuple[int, int]:
    try:
        limit = int(request.query.get("limit", "500"))
        offset = int(request.query.get("offset", "0"))
    except ValueError:
        raise api_error(400, "must be an integer", field="limit/offset") from None
    if not 1 <= limit <= MAX_PAGE:
        raise api_error(400, f"must be 1-{MAX_PAGE}", field="limit")
    if offset < 0:
        raise api_error(400, "must be >= 0", field="offset")
    return limit, offset


def _rules(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise api_error(400, "must be an object", field="screen_pop_rules")
    try:
        return ScreenPopRules.from_mapping(value).to_dict()
    except RulesError as exc:
        raise api_error(400, exc.reason, field=f"screen_pop_rules.{exc.field}") from None


async def _call_center(db: AsyncSession, request: web.Request) -> CallCenter:
    return await directory.get_call_center(db, request.match_info["call_center_id"])


# --- call centers -----------------------------------------------------------------------------------


@routes.get("/api/v1/call-centers")
@documented("List call centers (admins: all; others: their own)", tags=CC_TAG, errors=(401, 403))
@requires(*ROLES)
async def list_call_centers(request: web.Request) -> web.Response:
    """Call centers the caller may see (admins: all), with member and DID counts."""
    members = select(Membership.call_center_id, func.count().label("n")).group_by(
        Membership.call_center_id).subquery()
    dids = select(Did.call_center_id, func.count().label("n")).group_by(Did.call_center_id).subquery()
    async with db_session(request) as db:
        rows = (await db.execute(
            select(CallCenter, func.coalesce(members.c.n, 0), func.coalesce(dids.c.n, 0))
            .outerjoin(members, members.c.call_center_id == CallCenter.id)
            .outerjoin(dids, dids.c.call_center_id == CallCenter.id)
            .order_by(CallCenter.name)
        )).all()
    return web.json_response({"call_centers": [call_center_json(c, m, d) for c, m, d in rows]})


@routes.post("/api/v1/call-centers")
@documented("Create a call center", tags=CC_TAG, request=CALL_CENTER_CREATE, status=201,
            errors=(400, 401, 403, 409))
@requires(ADMIN)
async def create_call_center(request: web.Request) -> web.Response:
    """Create a call center from ``{name, phone_region?, recording_policy?, screen_pop_rules?}``."""
    body = await read_json_object(request)
    rules = body.get("screen_pop_rules")
    async with db_session(request) as db:
        call_center = await directory.create_call_center(
            db, principal_of(request).actor,
            name=field_value(body, "name", str, required=True),
            phone_region=field_value(body, "phone_region", str, default="US"),
            recording_policy=field_value(body, "recording_policy", str, default="none"),
            screen_pop_rules=_rules(rules) if rules is not None else None,
        )
    return web.json_response(call_center_json(call_center, 0, 0), status=201)


@routes.get("/api/v1/call-centers/{call_center_id}")
@documented("Get a call center", tags=CC_TAG, errors=(401, 403, 404))
@requires(*ROLES)
async def get_call_center(request: web.Request) -> web.Response:
    """One call center the caller may see."""
    async with db_session(request) as db:
        return web.json_response(call_center_json(await _call_center(db, request)))


@routes.patch("/api/v1/call-centers/{call_center_id}")
@documented("Change a call center", tags=CC_TAG, request=CALL_CENTER_UPDATE,
            errors=(400, 401, 403, 404, 409))
@requires(ADMIN)
async def update_call_center(request: web.Request) -> web.Response:
    """Change a call center's name, phone region, recording policy or screen-pop rules."""
    body = await read_json_object(request)
    changes: dict[str, Any] = {}
    for name in ("name", "phone_region", "recording_policy"):
        if name in body:
            changes[name] = field_value(body, name, str, required=True)
    if "screen_pop_rules" in body:
        changes["screen_pop_rules"] = _rules(body["screen_pop_rules"])
    unknown = sorted(set(body) - {"name", "phone_region", "recording_policy", "screen_pop_rules"})
    if unknown:
        raise api_error(400, "unknown field", field=unknown[0])
    async with db_session(request) as db:
        call_center = await directory.update_call_center(
            db, principal_of(request).actor, await _call_center(db, request), **changes)
        return web.json_response(call_center_json(call_center))


@routes.delete("/api/v1/call-centers/{call_center_id}")
@documented("Delete a call center and its records", tags=CC_TAG, errors=(401, 403, 404))
@requires(ADMIN)
async def delete_call_center(request: web.Request) -> web.Response:
    """Delete a call center and everything in it; its members become unassigned."""
    async with db_session(request) as db:
        await directory.delete_call_center(db, principal_of(request).actor, await _call_center(db, request))
    return web.json_response({"status": "deleted"})


# --- membership -------------------------------------------------------------------------------------


@routes.get("/api/v1/call-centers/{call_center_id}/members")
@documented("List the members of a call center", tags=CC_TAG, errors=(401, 403, 404))
@requires(*ROLES)
async def list_members(request: web.Request) -> web.Response:
    """The users of one call center."""
    async with db_session(request) as db:
        call_center = await _call_center(db, request)
        users = (await db.scalars(
            select(User).join(Membership, Membership.user_id == User.id)
            .where(Membership.call_center_id == call_center.id).order_by(User.username)
        )).all()
    return web.json_response({"members": [user_json(u, call_center.id) for u in users]})


@routes.put("/api/v1/call-centers/{call_center_id}/members/{user_id}")
@documented("Assign a user to a call center (moves them)", tags=CC_TAG, errors=(400, 401, 403, 404))
@requires(ADMIN)
async def assign_member(request: web.Request) -> web.Response:
    """Put a user in this call center, moving them out of any other (audited with where they were)."""
    async with db_session(request) as db:
        call_center = await _call_center(db, request)
        user = await directory.get_user(db, request.match_info["user_id"])
        previous = await directory.assign(db, principal_of(request).actor, user, call_center)
    if previous != call_center.id:
        _publish_membership(request, "membership.assigned", user, call_center.id, previous)
    return web.json_response({"user": user_json(user, call_center.id), "previous_call_center_id": previous})


@routes.delete("/api/v1/call-centers/{call_center_id}/members/{user_id}")
@documented("Take a user out of a call center", tags=CC_TAG, errors=(401, 403, 404))
@requires(ADMIN)
async def unassign_member(request: web.Request) -> web.Response:
    """Take a user out of this call center (404 if they are not in it)."""
    async with db_session(request) as db:
        call_center = await _call_center(db, request)
        user = await directory.get_user(db, request.match_info["user_id"])
        membership = await directory.membership_of(db, user.id)
        if membership is None or membership.call_center_id != call_center.id:
            raise NotFound("member", user.id)
        await directory.unassign(db, principal_of(request).actor, user)
    _publish_membership(request, "membership.unassigned", user, None, call_center.id)
    return web.json_response({"user": user_json(user, None)})


def _publish_membership(request: web.Request, topic: str, user: User, call_center_id: str | None,
                        previous_call_center_id: str | None) -> None:
    """Tell the bus (routing, socket.io, other nodes) that a user moved between call centers."""
    request.app[BUS_KEY].publish(Event(
        topic,
        {"user_id": user.id, "username": user.username, "role": user.role,
         "call_center_id": call_center_id, "previous_call_center_id": previous_call_center_id},
        call_center=call_center_id or previous_call_center_id,
    ))


# --- users ------------------------------------------------------------------------------------------


def _users_query() -> Any:
    return select(User, Membership.call_center_id).outerjoin(Membership, Membership.user_id == User.id)


@routes.get("/api/v1/users")
@documented("List users (admins: all; others: their call center's)", tags=USER_TAG,
            query=USER_QUERY, errors=(400, 401, 403))
@requires(*ROLES)
async def list_users(request: web.Request) -> web.Response:
    """Users the caller may see: admins all (``?call_center_id=`` or ``?unassigned=true`` to filter),
    others the members of their call center."""
    limit, offset = _page(request)
    query = _users_query().order_by(User.username).limit(limit).offset(offset)
    if "call_center_id" in request.query:
        query = query.where(Membership.call_center_id == request.query["call_center_id"])
    if request.query.get("unassigned") == "true":
        query = query.where(Membership.call_center_id.is_(None))
    async with db_session(request) as db:
        rows = (await db.execute(query)).all()
    return web.json_response({"users": [user_json(u, c) for u, c in rows]})


async def _sip_fields(request: web.Request, body: dict[str, Any]) -> tuple[str, str, str] | None:
    sip_username = field_value(body, "sip_username", str)
    sip_password = field_value(body, "sip_password", str)
    if sip_username is None and sip_password is None:
        return None
    if not sip_username:
        raise api_error(400, "is required with sip_password", field="sip_username")
    if not sip_password:
        raise api_error(400, "is required with sip_username", field="sip_password")
    directory.check_password("sip_password", sip_password)
    return (sip_username, request.app[CONFIG_KEY].sip.realm, sip_password)


@routes.post("/api/v1/users")
@documented("Create a user", tags=USER_TAG, request=USER_CREATE, status=201,
            errors=(400, 401, 403, 409))
@requires(ADMIN)
async def create_user(request: web.Request) -> web.Response:
    """Create a user from ``{username, role, password?, display_name?, email?, sip_username?,
    sip_password?, call_center_id?}``; the password is stored as argon2id, SIP ones as HA1 only."""
    body = await read_json_object(request)
    username = field_value(body, "username", str, required=True)
    role = directory.check_role(field_value(body, "role", str, required=True))
    password = field_value(body, "password", str)
    password_hash = None
    if password is not None:
        password_hash = await request.app[PASSWORDS_KEY].hash(directory.check_password("password", password))
    sip = await _sip_fields(request, body)
    call_center_id = field_value(body, "call_center_id", str)
    actor = principal_of(request).actor
    async with db_session(request) as db:
        call_center = None
        if call_center_id is not None:
            try:
                call_center = await directory.get_call_center(db, call_center_id)
            except NotFound:
                raise InvalidField("call_center_id", f"no call center {call_center_id!r}") from None
        user = await directory.create_user(
            db, actor, username, role, password_hash,
            display_name=field_value(body, "display_name", str, default=""),
            email=field_value(body, "email", str, default=""), sip=sip)
        if call_center is not None:
            await directory.assign(db, actor, user, call_center)
    return web.json_response(user_json(user, call_center.id if call_center else None), status=201)


@routes.get("/api/v1/users/{user_id}")
@documented("Get a user", tags=USER_TAG, errors=(401, 403, 404))
@requires(*ROLES)
async def get_user(request: web.Request) -> web.Response:
    """One user the caller may see."""
    async with db_session(request) as db:
        user = await directory.get_user(db, request.match_info["user_id"])
        membership = await directory.membership_of(db, user.id)
    return web.json_response(user_json(user, membership.call_center_id if membership else None))


@routes.patch("/api/v1/users/{user_id}")
@documented("Change a user", tags=USER_TAG, request=USER_UPDATE, errors=(400, 401, 403, 404, 409))
@requires(ADMIN)
async def update_user(request: web.Request) -> web.Response:
    """Change display name, e-mail, role, active, password or SIP credentials of a user."""
    body = await read_json_object(request)
    known = {"display_name", "email", "role", "active", "password", "sip_username", "sip_password"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise api_error(400, "unknown field", field=unknown[0])
    changes: dict[str, Any] = {}
    for name in ("display_name", "email", "role"):
        if name in body:
            changes[name] = field_value(body, name, str, default="")
    if "active" in body:
        changes["active"] = field_value(body, "active", bool, required=True)
    if "password" in body:
        password = directory.check_password("password", field_value(body, "password", str, required=True))
        changes["password_hash"] = await request.app[PASSWORDS_KEY].hash(password)
    sip = await _sip_fields(request, body)
    if sip is not None:
        changes["sip"] = sip
    async with db_session(request) as db:
        user = await directory.get_user(db, request.match_info["user_id"])
        user = await directory.update_user(db, principal_of(request).actor, user, **changes)
        membership = await directory.membership_of(db, user.id)
    return web.json_response(user_json(user, membership.call_center_id if membership else None))


@routes.delete("/api/v1/users/{user_id}")
@documented("Delete a user", tags=USER_TAG, errors=(400, 401, 403, 404))
@requires(ADMIN)
async def delete_user(request: web.Request) -> web.Response:
    """Delete a user (their sessions and membership go with them)."""
    principal = principal_of(request)
    async with db_session(request) as db:
        user = await directory.get_user(db, request.match_info["user_id"])
        if user.id == principal.id:
            raise api_error(400, "you cannot delete yourself", field="user_id")
        await directory.delete_user(db, principal.actor, user)
    return web.json_response({"status": "deleted"})


# --- DIDs -------------------------------------------------------------------------------------------


@routes.get("/api/v1/dids")
@documented("List DIDs (admins: all; others: their call center's)", tags=DID_TAG, errors=(401, 403))
@requires(*ROLES)
async def list_dids(request: web.Request) -> web.Response:
    """DIDs the caller may see (admins: all)."""
    async with db_session(request) as db:
        dids = (await db.scalars(select(Did).order_by(Did.number))).all()
    return web.json_response({"dids": [did_json(d) for d in dids]})


@routes.get("/api/v1/call-centers/{call_center_id}/dids")
@documented("List the DIDs of a call center", tags=DID_TAG, errors=(401, 403, 404))
@requires(*ROLES)
async def list_call_center_dids(request: web.Request) -> web.Response:
    """The DIDs of one call center."""
    async with db_session(request) as db:
        call_center = await _call_center(db, request)
        dids = (await db.scalars(select(Did).where(Did.call_center_id == call_center.id)
                                 .order_by(Did.number))).all()
    return web.json_response({"dids": [did_json(d) for d in dids]})


@routes.post("/api/v1/call-centers/{call_center_id}/dids")
@documented("Add a DID to a call center", tags=DID_TAG, request=DID_CREATE, status=201,
            errors=(400, 401, 403, 404, 409))
@requires(ADMIN)
async def add_did(request: web.Request) -> web.Response:
    """Add ``{number, description?}`` (read with the call center's region, stored in E.164)."""
    body = await read_json_object(request)
    async with db_session(request) as db:
        did = await directory.add_did(
            db, principal_of(request).actor, await _call_center(db, request),
            field_value(body, "number", str, required=True),
            field_value(body, "description", str, default=""))
    return web.json_response(did_json(did), status=201)


@routes.delete("/api/v1/dids/{did_id}")
@documented("Remove a DID", tags=DID_TAG, errors=(401, 403, 404))
@requires(ADMIN)
async def remove_did(request: web.Request) -> web.Response:
    """Remove a DID."""
    async with db_session(request) as db:
        did = await get_scoped(db, Did, request.match_info["did_id"], "DID")
        await directory.remove_did(db, principal_of(request).actor, did)
    return web.json_response({"status": "deleted"})


# --- API keys ---------------------------------------------------------------------------------------


@routes.get("/api/v1/api-keys")
@documented("List API keys (prefix only)", tags=KEY_TAG, query=(CC_QUERY,), errors=(401, 403))
@requires(ADMIN)
async def list_api_keys(request: web.Request) -> web.Response:
    """Every API key (prefix only), ``?call_center_id=`` to filter."""
    query = select(ApiKey).order_by(ApiKey.created_at)
    if "call_center_id" in request.query:
        query = query.where(ApiKey.call_center_id == request.query["call_center_id"])
    async with db_session(request) as db:
        keys = (await db.scalars(query)).all()
    return web.json_response({"api_keys": [api_key_json(k) for k in keys]})


@routes.post("/api/v1/call-centers/{call_center_id}/api-keys")
@documented("Create an API key (the key is in this answer only)", tags=KEY_TAG,
            request=API_KEY_CREATE, status=201, errors=(400, 401, 403, 404))
@requires(ADMIN)
async def create_call_center_api_key(request: web.Request) -> web.Response:
    """Create an integrator key ``{name?}``; the answer holds the key, which is never shown again."""
    body = await read_json_object(request)
    name = field_value(body, "name", str, default="")
    async with db_session(request) as db:
        call_center = await _call_center(db, request)
        row, key = await create_api_key(db, principal_of(request).actor, call_center.id,
                                        directory.check_name("name", name) if name else "")
    return web.json_response({**api_key_json(row), "key": key}, status=201)


@routes.delete("/api/v1/api-keys/{api_key_id}")
@documented("Revoke an API key", tags=KEY_TAG, errors=(401, 403, 404))
@requires(ADMIN)
async def revoke_key(request: web.Request) -> web.Response:
    """Revoke an API key; requests carrying it get 401 from now on."""
    async with db_session(request) as db:
        row = await get_scoped(db, ApiKey, request.match_info["api_key_id"], "API key")
        await revoke_api_key(db, principal_of(request).actor, row)
    return web.json_response(api_key_json(row))


# --- audit log --------------------------------------------------------------------------------------


@routes.get("/api/v1/audit")
@documented("Read the audit log of admin changes, newest first", tags=("audit",), query=AUDIT_QUERY,
            errors=(400, 401, 403))
@requires(ADMIN)
async def list_audit(request: web.Request) -> web.Response:
    """Admin changes, newest first; ``?call_center_id=``, ``?target_id=``, ``?limit=``, ``?offset=``."""
    limit, offset = _page(request)
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit).offset(offset)
    for name in ("call_center_id", "target_id", "action"):
        if name in request.query:
            query = query.where(getattr(AuditEntry, name) == request.query[name])
    async with db_session(request) as db:
        entries = (await db.scalars(query)).all()
    return web.json_response({"entries": [audit_json(e) for e in entries]})


def audit_json(entry: AuditEntry) -> dict[str, Any]:
    """JSON of one audit entry."""
    return {"id": entry.id, "at": _time(entry.at),
            "actor": {"kind": entry.actor_kind, "id": entry.actor_id, "name": entry.actor_name},
            "action": entry.action, "target_kind": entry.target_kind, "target_id": entry.target_id,
            "call_center_id": entry.call_center_id, "details": entry.details}


# --- the admin page ---------------------------------------------------------------------------------

ADMIN_PAGE_DIR = Path(__file__).resolve().parents[2] / "softphone_web" / "admin"
"""softphone_web/admin: index.html, admin.js, admin.css (plain HTML and JS, no CDN)."""


async def admin_page(request: web.Request) -> web.FileResponse:
    """The admin page; it holds no data itself and signs in through ``/api/v1/login``."""
    return web.FileResponse(ADMIN_PAGE_DIR / "index.html")


async def admin_redirect(request: web.Request) -> web.Response:
    """``/admin`` -> ``/admin/``."""
    raise web.HTTPFound("/admin/")


def setup(app: web.Application) -> None:
    """Add the admin API routes and the admin page (``/admin/``, assets under ``/admin/static/``)."""
    app.add_routes(routes)
    app.router.add_get("/admin", admin_redirect)
    app.router.add_get("/admin/", admin_page)
    app.router.add_static("/admin/static/", ADMIN_PAGE_DIR, name="admin_static")
