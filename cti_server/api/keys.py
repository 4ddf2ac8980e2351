"""Typed aiohttp application keys for objects shared across handlers."""

from __future__ import annotations

from aiohttp import web

from cti_server.config import Config
from cti_server.events import EventBus
from cti_server.store.engine import Store
from cti_server.store.passwords import PasswordHashing

CONFIG_KEY = web.AppKey("config", Config)
BUS_KEY = web.AppKey("bus", EventBus)
STORE_KEY = web.AppKey("store", Store)
PASSWORDS_KEY = web.AppKey("passwords", PasswordHashing)
