"""``GET /api/v1/sip/registrations``: the registrar's current bindings (RFC 3261 section 10.3).

TODO(auth engineer): guard with ``requires("admin", "supervisor")`` from cti_server/api/auth.py once it
lands; until then the route is open, like /healthz, and serves only on the configured HTTP address.
"""

from __future__ import annotations

import time

from aiohttp import web

from cti_server.sip.bindings import RegistrarBindings

BINDINGS_KEY = web.AppKey("sip_bindings", RegistrarBindings)
"""Set by the server when the registrar runs (see ``server.build_components``)."""

routes = web.RouteTableDef()


@routes.get("/api/v1/sip/registrations")
async def list_registrations(request: web.Request) -> web.Response:
    """Every current binding, optionally only those of ``?aor=sip:1001@realm`` or ``?user=1001``.

    503 when no registrar runs in this process.
    """
    bindings = request.app.get(BINDINGS_KEY)
    if bindings is None:
        raise web.HTTPServiceUnavailable(text="the SIP registrar is not running")
    now = time.time()
    aor = request.query.get("aor")
    user = request.query.get("user")
    items = await bindings.lookup(aor) if aor else await bindings.all()
    if user:
        items = [b for b in items if b.aor.startswith(f"sip:{user}@")]
    current = [b.to_json(now) for b in items if b.expires_at > now]
    current.sort(key=lambda b: (b["aor"], b["contact"]))
    return web.json_response({"registrations": current, "count": len(current)})
