"""``create_app``: the aiohttp application factory.

Each area of the API is one module with a ``routes`` table (or a ``setup(app)`` function for areas
that need start-up hooks); this factory is the only place that lists them.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from cti_server import realtime
from cti_server.api import (
    admin,
    agent_page,
    auth,
    health,
    login,
    registrations,
    sip_stats,
    supervisor_page,
    work_items,
)
from cti_server.api.crm_routes import setup_crm_api
from cti_server.api.keys import BUS_KEY, CONFIG_KEY, STORE_KEY
from cti_server.config import Config
from cti_server.events import EventBus
from cti_server.store import Store

COMMON_PAGE_DIR = Path(__file__).resolve().parents[2] / "softphone_web" / "common"
"""softphone_web/common: the script every page loads before its own (``/common/static/page.js``)."""


def create_app(config: Config, bus: EventBus | None = None, store: Store | None = None) -> web.Application:
    """Build the web application for ``config``; ``bus`` is shared with the SIP and routing layers.

    ``store`` defaults to one built from ``config.store`` (no I/O until the server's StoreComponent
    opens it); tests pass an opened one.
    """
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[CONFIG_KEY] = config
    app[BUS_KEY] = bus if bus is not None else EventBus()
    app[STORE_KEY] = store if store is not None else Store(config.store)
    auth.setup(app)
    app.add_routes(login.routes)
    admin.setup(app)
    app.add_routes(health.routes)
    app.add_routes(registrations.routes)
    app.add_routes(sip_stats.routes)
    work_items.setup(app)
    agent_page.setup(app)
    supervisor_page.setup(app)
    app.router.add_static("/common/static/", COMMON_PAGE_DIR, name="common_static")
    realtime.setup(app)
    setup_crm_api(app)
    return app
