"""``GET /api/v1/sip/registrations``: the registrar's current bindings (RFC 3261 section 10.3).

Admins see every binding; a supervisor sees only the desk phones of their own call center's members
(matched by the members' SIP usernames in the store).
"""

from __future__ import annotations

import time

from aiohttp import web
from sqlalchemy import select

from cti_server.api.auth import db_session, principal_of, requires
from cti_server.sip.bindings import BindingsUnavailable, RegistrarBindings
from cti_server.store.tenancy import Membership, User

BINDINGS_KEY = web.AppKey("sip_bindings", RegistrarBindings)
"""Set by the server when the registrar runs (see ``server.build_components``)."""

routes = web.RouteTableDef()


async def _visible_sip_users(request: web.Request) -> set[str] | None:
    """SIP usernames the principal may see; None means all (admins)."""
    if principal_of(request).is_admin:
        return None
    async with db_session(request) as db:
        rows = await db.scalars(
            select(User.sip_username)
            .join(Membership, Membership.user_id == User.id)
            .where(User.sip_username.is_not(None))
        )
        return {name for name in rows if name}


@routes.get("/api/v1/sip/registrations")
@requires("admin", "supervisor")
async def list_registrations(request: web.Request) -> web.Response:
    """Every current binding, optionally only those of ``?aor=sip:1001@realm`` or ``?user=1001``.

    503 when no registrar runs in this process or its bindings store (Redis) cannot be reached.
    """
    bindings = request.app.get(BINDINGS_KEY)
    if bindings is None:
        raise web.HTTPServiceUnavailable(text="the SIP registrar is not running")
    now = time.time()
    aor = request.query.get("aor")
    user = request.query.get("user")
    try:
        items = await bindings.lookup(aor) if aor else await bindings.all()
    except BindingsUnavailable as exc:
        unreachable = f"the registrar's bindings store is unreachable: {exc}"
        raise web.HTTPServiceUnavailable(text=unreachable) from exc
    if user:
        items = [b for b in items if b.aor.startswith(f"sip:{user}@")]
    visible = await _visible_sip_users(request)
    if visible is not None:
        items = [b for b in items if b.aor[4:].split("@", 1)[0] in visible]
    current = [b.to_json(now) for b in items if b.expires_at > now]
    current.sort(key=lambda b: (b["aor"], b["contact"]))
    return web.json_response({"registrations": current, "count": len(current)})
