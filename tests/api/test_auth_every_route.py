"""Every registered route of the app answers 401 without credentials and 403 to a wrong role.

Walks ``app.router.routes()`` of the full application, so a route any area adds is checked too. Only
the routes in PUBLIC (and static assets) may be reached anonymously; every other handler must carry
``@requires(...)`` from cti_server/api/auth.py.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from cti_server.api.auth import required_roles
from cti_server.store.tenancy import ROLES
from tests.api.conftest import Tenants

PUBLIC: set[tuple[str, str]] = {
    ("GET", "/healthz"),
    ("POST", "/api/v1/login"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/docs"),
    ("GET", "/admin"),
    ("GET", "/admin/"),
    ("GET", "/agent"),
    ("GET", "/agent/"),
    ("GET", "/supervisor"),
    ("GET", "/supervisor/"),
}
"""(method, path template) reachable without credentials: liveness, login, the OpenAPI document and
docs page, and the admin, agent and supervisor page shells (they hold no data and sign in through
/api/v1/login)."""
PUBLIC_PREFIXES = ("/socket.io",)
"""socket.io authenticates each connection at connect (``principal_from_token``), not per HTTP route."""

PARAMETER = re.compile(r"\{[^}]+\}")


def _guarded_routes(app: web.Application) -> list[tuple[str, str, str, Any]]:
    """(method, template, concrete path, handler) of every non-public, non-static route."""
    found = []
    for route in app.router.routes():
        resource = route.resource
        if resource is None or isinstance(resource, web.StaticResource) or route.method == "HEAD":
            continue
        info = resource.get_info()
        template = info.get("path") or info.get("formatter") or resource.canonical
        if (route.method, template) in PUBLIC or template.startswith(PUBLIC_PREFIXES):
            continue
        found.append((route.method, template, PARAMETER.sub("1", template), route.handler))
    return found


async def _call(client: TestClient[Any, Any], method: str, path: str, headers: dict[str, str]) -> int:
    body = None if method in ("GET", "DELETE") else {}
    resp = await client.request(method, path, json=body, headers=headers)
    return resp.status


async def test_the_walk_covers_the_admin_api(api_app: web.Application) -> None:
    templates = {template for _m, template, _p, _h in _guarded_routes(api_app)}
    assert {
        "/api/v1/users",
        "/api/v1/call-centers/{call_center_id}/members/{user_id}",
        "/api/v1/api-keys/{api_key_id}",
        "/api/v1/audit",
        "/api/v1/me",
    } <= templates


async def test_every_route_needs_credentials(
    api_client: TestClient[Any, Any], api_app: web.Application
) -> None:
    open_routes = []
    for method, template, path, _handler in _guarded_routes(api_app):
        status = await _call(api_client, method, path, {})
        if status != 401:
            open_routes.append(f"{method} {template} -> {status}")
    assert not open_routes, "routes answering without credentials (guard them with @requires): " + ", ".join(
        open_routes
    )


async def test_every_route_refuses_a_wrong_role(
    api_client: TestClient[Any, Any], api_app: web.Application, tenants: Tenants
) -> None:
    unguarded, wrong = [], []
    for method, template, path, handler in _guarded_routes(api_app):
        allowed = required_roles(handler)
        if allowed is None:
            unguarded.append(f"{method} {template}")
            continue
        for role in sorted(set(ROLES) - allowed):
            principals = ["integrator", "api_key"] if role == "integrator" else [role]
            for principal in principals:
                status = await _call(api_client, method, path, tenants.headers(principal))
                if status != 403:
                    wrong.append(f"{method} {template} as {principal} -> {status}")
    assert not unguarded, "handlers without @requires(...): " + ", ".join(unguarded)
    assert not wrong, ", ".join(wrong)
