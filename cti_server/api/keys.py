"""Typed aiohttp application keys for objects shared across handlers."""

from __future__ import annotations

from aiohttp import web

from cti_server.config import Config
from cti_server.events import EventBus

CONFIG_KEY = web.AppKey("config", Config)
BUS_KEY = web.AppKey("bus", EventBus)
