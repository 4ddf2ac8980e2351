"""``create_app``: the aiohttp application factory.

Each area of the API is one module with a ``routes`` table (or a ``setup(app)`` function for areas
that need start-up hooks); this factory is the only place that lists them.
"""

from __future__ import annotations

from aiohttp import web

from cti_server.api import health, registrations
from cti_server.api.keys import BUS_KEY, CONFIG_KEY
from cti_server.config import Config
from cti_server.events import EventBus


def create_app(config: Config, bus: EventBus | None = None) -> web.Application:
    """Build the web application for ``config``; ``bus`` is shared with the SIP and routing layers."""
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[CONFIG_KEY] = config
    app[BUS_KEY] = bus if bus is not None else EventBus()
    app.add_routes(health.routes)
    app.add_routes(registrations.routes)
    return app
