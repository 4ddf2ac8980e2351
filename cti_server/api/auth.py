"""Web authentication and role checks: who is calling the API, and may they?

Credentials are a session cookie (the pages), or ``Authorization: Bearer <token>`` carrying a session
token (socket.io, scripts) or an integrator's API key (``cti_<prefix>_<secret>``), RFC 6750 section 2.1.
The ``authenticate`` middleware resolves them to a ``Principal`` in ``request[PRINCIPAL_KEY]``; every
handler states who may call it with ``@requires(...)``, which answers 401 without credentials and 403
for a wrong role. ``db_session(request)`` opens a store session scoped to the principal's call center,
so queries of an agent or integrator never return another call center's rows.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import structlog
from aiohttp import hdrs, web
from sqlalchemy.ext.asyncio import AsyncSession

from cti_server.api.errors import api_error, store_errors
from cti_server.api.keys import CONFIG_KEY, PASSWORDS_KEY, STORE_KEY
from cti_server.api.login_throttle import LOGIN_FAILURES_KEY, LoginFailures
from cti_server.store.audit import Actor
from cti_server.store.credentials import API_KEY_PREFIX, api_key_for, user_for_session
from cti_server.store.engine import Store
from cti_server.store.passwords import PasswordHashing
from cti_server.store.tenancy import ROLES

log = structlog.get_logger(__name__)

SESSION_COOKIE = "cti_session"
REQUIRED_ROLES_ATTR = "__cti_required_roles__"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_H = TypeVar("_H", bound=Handler)

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a logged-in user or an integrator's API key.

    ``call_center_id`` is None for admins (they see every call center) and for a user who is in no call
    center yet (they see nothing that belongs to one).
    """

    kind: str
    id: str
    name: str
    role: str
    call_center_id: str | None

    @property
    def is_admin(self) -> bool:
        """True for the admin role: unscoped access to every call center."""
        return self.role == "admin"

    @property
    def actor(self) -> Actor:
        """This principal as the actor of an audited change."""
        return Actor(self.kind, self.id, self.name)

    def as_json(self) -> dict[str, Any]:
        """JSON-safe form (``GET /api/v1/me``, socket.io session data)."""
        return {"kind": self.kind, "id": self.id, "name": self.name, "role": self.role,
                "call_center_id": self.call_center_id}


PRINCIPAL_KEY = web.RequestKey("principal", Principal)
"""``request[PRINCIPAL_KEY]``: the authenticated ``Principal`` (absent for anonymous requests)."""
CREDENTIAL_KEY = web.RequestKey("credential", str)
"""``request[CREDENTIAL_KEY]``: the raw session token or API key the principal was resolved from."""


def requires(*roles: str, allow_unassigned: bool = False) -> Callable[[_H], _H]:
    """Decorator for aiohttp handlers: 401 without credentials, 403 unless the role is one of ``roles``.

    A non-admin who is in no call center also gets 403, unless ``allow_unassigned`` (``/me``, logout).
    The roles are kept on the handler so the route-walking test can check every route has a guard.
    """
    unknown = [r for r in roles if r not in ROLES]
    if not roles or unknown:
        raise ValueError(f"requires() needs roles from {ROLES}, got {roles}")
    allowed = frozenset(roles)

    def decorate(handler: _H) -> _H:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            principal = request.get(PRINCIPAL_KEY)
            if not isinstance(principal, Principal):
                raise api_error(401, "authentication required", **{"WWW-Authenticate": 'Bearer realm="cti"'})
            if principal.role not in allowed:
                raise api_error(403, f"role {principal.role} may not do this")
            if principal.call_center_id is None and not principal.is_admin and not allow_unassigned:
                raise api_error(403, "you are not a member of any call center")
            return await handler(request)

        setattr(guarded, REQUIRED_ROLES_ATTR, allowed)
        return guarded  # type: ignore[return-value]

    return decorate


def required_roles(handler: object) -> frozenset[str] | None:
    """The roles ``@requires`` allows for ``handler``, or None when it has no guard."""
    roles = getattr(handler, REQUIRED_ROLES_ATTR, None)
    return roles if isinstance(roles, frozenset) else None


def principal_of(request: web.Request) -> Principal:
    """The request's principal; only call from a handler behind ``@requires``."""
    principal = request.get(PRINCIPAL_KEY)
    if not isinstance(principal, Principal):
        raise api_error(401, "authentication required")
    return principal


def store_for(principal: Principal, store: Store) -> AsyncSession:
    """A store session for ``principal``: unscoped for admins, limited to their call center otherwise."""
    if principal.is_admin:
        return store.session()
    return store.tenant_session(principal.call_center_id)


def db_session(request: web.Request) -> AsyncSession:
    """A store session scoped to the request's principal (use as ``async with db_session(request) as db``)."""
    return store_for(principal_of(request), request.app[STORE_KEY])


class CredentialCache:
    """Principals of recently checked tokens, kept ``ttl`` seconds so a busy integrator or page does not
    cost a store query per request. Only valid credentials are kept; the caller passes the clock."""

    def __init__(self, ttl: float, max_entries: int = 50_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, token: str, now: float) -> Principal | None:
        """The cached principal of ``token``, if it was checked less than ``ttl`` seconds ago."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        if now - entry[0] >= self.ttl:
            del self._entries[token]
            return None
        return entry[1]

    def put(self, token: str, principal: Principal, now: float) -> None:
        """Remember ``token``'s principal (no-op when ``ttl`` is 0)."""
        if self.ttl <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[token] = (now, principal)

    def forget(self, token: str) -> None:
        """Drop ``token`` (logout)."""
        self._entries.pop(token, None)

    def clear(self) -> None:
        """Drop everything (after an admin change: revocation, deactivation, move, role change)."""
        self._entries.clear()


CREDENTIAL_CACHE_KEY = web.AppKey("credential_cache", CredentialCache)


async def principal_from_token(app: web.Application, token: str) -> Principal | None:
    """The principal of a session token or API key (socket.io connect, bearer headers), or None."""
    if not token:
        return None
    cache = app.get(CREDENTIAL_CACHE_KEY)
    if cache is not None:
        cached = cache.get(token, time.monotonic())
        if cached is not None:
            return cached
    principal = await _principal_from_store(app[STORE_KEY], token)
    if principal is not None and cache is not None:
        cache.put(token, principal, time.monotonic())
    return principal


async def _principal_from_store(store: Store, token: str) -> Principal | None:
    async with store.session() as db:
        if token.startswith(API_KEY_PREFIX):
            key = await api_key_for(db, token)
            if key is None:
                return None
            return Principal("api_key", key.id, key.name or key.prefix, key.role, key.call_center_id)
        found = await user_for_session(db, token)
        if found is None:
            return None
        user = found.user
        call_center_id = None if user.role == "admin" else found.call_center_id
        return Principal("user", user.id, user.username, user.role, call_center_id)


def _credential(request: web.Request) -> str | None:
    header = request.headers.get(hdrs.AUTHORIZATION, "")
    if header:
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    # A cookie rides along on cross-site requests; refuse it for writes coming from another origin.
    origin = request.headers.get(hdrs.ORIGIN)
    if request.method not in _SAFE_METHODS and origin and urlsplit(origin).netloc != request.host:
        log.warning("cross_origin_cookie_refused", origin=origin, path=request.path)
        return None
    return cookie


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve the request's credentials (if any) to ``request[PRINCIPAL_KEY]``; never rejects by itself."""
    credential = _credential(request)
    principal = await principal_from_token(request.app, credential) if credential else None
    if principal is not None and credential:
        request[PRINCIPAL_KEY] = principal
        request[CREDENTIAL_KEY] = credential
    response = await handler(request)
    if principal is not None and principal.is_admin and request.method not in _SAFE_METHODS:
        # Any admin change may revoke, deactivate or move someone: check credentials afresh.
        cache = request.app.get(CREDENTIAL_CACHE_KEY)
        if cache is not None:
            cache.clear()
    return response


def setup(app: web.Application) -> None:
    """Install the store-error and authentication middlewares, the password hasher, the failed-login
    counter (``[auth] login_max_failures``, ``login_lockout``) and the credential cache on ``app``."""
    app.middlewares.append(store_errors)
    app.middlewares.append(authenticate)
    auth_config = app[CONFIG_KEY].auth
    if PASSWORDS_KEY not in app:
        app[PASSWORDS_KEY] = PasswordHashing(auth_config)
    app[LOGIN_FAILURES_KEY] = LoginFailures(auth_config.login_max_failures, auth_config.login_lockout)
    app[CREDENTIAL_CACHE_KEY] = CredentialCache(auth_config.credential_cache_seconds)
