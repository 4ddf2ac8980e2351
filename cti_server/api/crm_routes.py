"""The integrators' API in one call for ``create_app``: screen pop, CRM records, imports, webhooks, docs."""

from __future__ import annotations

from aiohttp import web

from cti_server.api import accounts, call_logs, cases, contacts, imports, openapi, screenpop, webhooks


def setup_crm_api(app: web.Application) -> None:
    """Register the screen-pop, contacts, accounts, cases, call-log, import, webhook and OpenAPI routes."""
    screenpop.setup(app)
    webhooks.setup(app)
    for area in (contacts, accounts, cases, call_logs, imports, openapi):
        app.add_routes(area.routes)
