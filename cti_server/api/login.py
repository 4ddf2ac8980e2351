"""``POST /api/v1/login``, ``POST /api/v1/logout`` and ``GET /api/v1/me``: web sessions.

Login checks the argon2id password hash and opens a session: a ``cti_session`` cookie (HttpOnly,
SameSite=Strict) for the pages, and the same token in the JSON body for socket.io and scripts
(``Authorization: Bearer <token>``, RFC 6750).
"""

from __future__ import annotations

import time

import structlog
from aiohttp import web
from sqlalchemy import select

from cti_server.api.auth import (
    CREDENTIAL_CACHE_KEY,
    CREDENTIAL_KEY,
    SESSION_COOKIE,
    principal_of,
    requires,
)
from cti_server.api.errors import api_error, field_value, read_json_object
from cti_server.api.keys import CONFIG_KEY, PASSWORDS_KEY, STORE_KEY
from cti_server.api.login_throttle import LOGIN_FAILURES_KEY
from cti_server.store.credentials import API_KEY_PREFIX, call_center_of, create_session, end_session
from cti_server.store.tenancy import ROLES, User

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()


@routes.post("/api/v1/login")
async def login(request: web.Request) -> web.Response:
    """Exchange ``{"username", "password"}`` for a session token (JSON) and cookie; 401 if they are wrong."""
    body = await read_json_object(request)
    username = field_value(body, "username", str, required=True)
    password = field_value(body, "password", str, required=True)
    config = request.app[CONFIG_KEY]
    failures = request.app[LOGIN_FAILURES_KEY]
    address = request.remote or ""
    wait = failures.retry_after(username, address, time.monotonic())
    if wait > 0:
        raise api_error(429, "too many failed logins, try again later", **{"Retry-After": str(int(wait) + 1)})
    async with request.app[STORE_KEY].session() as db:
        user = await db.scalar(select(User).where(User.username == username))
        hash_ = user.password_hash if user is not None and user.active else None
        if not await request.app[PASSWORDS_KEY].verify(hash_, password) or user is None:
            failures.failed(username, address, time.monotonic())
            log.info("login_failed", username=username, remote=address)
            raise api_error(401, "wrong username or password")
        failures.succeeded(username, address)
        token = await create_session(db, user, config.auth.session_lifetime,
                                     request.headers.get("User-Agent", ""))
        call_center_id = None if user.role == "admin" else await call_center_of(db, user.id)
    response = web.json_response({
        "token": token,
        "expires_in": config.auth.session_lifetime,
        "user": {"id": user.id, "username": user.username, "display_name": user.display_name,
                 "role": user.role, "call_center_id": call_center_id},
    })
    response.set_cookie(SESSION_COOKIE, token, max_age=config.auth.session_lifetime, path="/",
                        httponly=True, samesite="Strict", secure=config.auth.cookie_secure)
    return response


@routes.post("/api/v1/logout")
@requires(*ROLES, allow_unassigned=True)
async def logout(request: web.Request) -> web.Response:
    """End the session the request came with (an API key is not a session: nothing to end)."""
    credential: str = request[CREDENTIAL_KEY]
    cache = request.app.get(CREDENTIAL_CACHE_KEY)
    if cache is not None:
        cache.forget(credential)
    if not credential.startswith(API_KEY_PREFIX):
        async with request.app[STORE_KEY].session() as db:
            await end_session(db, credential)
    response = web.json_response({"status": "logged out"})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@routes.get("/api/v1/me")
@requires(*ROLES, allow_unassigned=True)
async def me(request: web.Request) -> web.Response:
    """Who the credentials belong to: kind, id, name, role and call center."""
    return web.json_response(principal_of(request).as_json())

