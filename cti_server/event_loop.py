"""The event loop ``cti-server run`` runs on: uvloop when installed (``server.event_loop = "auto"``).

uvloop is a drop-in asyncio event loop (libuv underneath) that runs the SIP transports, timers and tasks
with less interpreter work per datagram and callback; the server's code is the same on both loops.
Tests keep running on asyncio's own loop (pytest-asyncio's default), so both are exercised.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import structlog

from cti_server.config import ConfigError

log = structlog.get_logger(__name__)

_T = TypeVar("_T")


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory of the chosen loop (None: asyncio's default); "uvloop" without uvloop is a ConfigError."""
    if choice == "asyncio":
        return None
    if importlib.util.find_spec("uvloop") is None:
        if choice == "uvloop":
            raise ConfigError("server.event_loop", "uvloop is not installed (pip install uvloop)")
        return None
    import uvloop

    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_on_event_loop(choice: str, main: Coroutine[Any, Any, _T]) -> _T:
    """Run ``main`` to completion on the loop ``choice`` names ("auto", "asyncio" or "uvloop")."""
    try:
        factory = loop_factory(choice)
    except ConfigError:
        main.close()
        raise
    log.info("event_loop", choice=choice, loop="uvloop" if factory is not None else "asyncio")
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
