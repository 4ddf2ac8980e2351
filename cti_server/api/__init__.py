"""The aiohttp web edge: REST API, health, socket.io and the softphone pages."""

from cti_server.api.app import create_app
from cti_server.api.keys import BUS_KEY, CONFIG_KEY

__all__ = ["BUS_KEY", "CONFIG_KEY", "create_app"]
