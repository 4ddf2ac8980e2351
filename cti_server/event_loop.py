"""The event loop ``cti-server run`` runs on: uvloop when installed (``server.event_loop = "auto"``).

uvloop is a drop-in asyncio event loop (libuv underneath) that runs the SIP transports, timers and tasks
with less interpreter work per datagram and callback; the server's code is the same on both loops.
Tests keep running on asyncio's own loop (pytest-asyncio's default), so both are exercised.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import sys
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


GC_GEN0_THRESHOLD = 20_000
"""Allocations between two young-generation collections (CPython's default is 700). A call through the
B2BUA allocates a few thousand objects, most of them gone by its end; at the default every call
triggered several collections, and every 100th a full one over all live calls (~15% of the CPU of the
B2BUA in ``bench/b2bua_bench.py --in-process``)."""


def tune_garbage_collector() -> None:
    """Collect less often, and never again scan what exists now (modules, config: ``gc.freeze``).

    Called once the server is built, before it takes traffic. Reference cycles are still collected,
    only in larger batches.
    """
    gc.collect()
    gc.freeze()
    _gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


MEDIA_SWITCH_INTERVAL = 0.001
"""Seconds a thread holds the GIL while another waits for it, with the media thread on (CPython's
default is 0.005): the media thread serves its sockets every millisecond under load
(``MediaSocketPoller.batch_interval``) and must not wait 5 ms behind SIP work on the event loop."""


def tune_switch_interval(media_thread: bool) -> None:
    """Shorten the GIL switch interval to ``MEDIA_SWITCH_INTERVAL`` when RTP is relayed on the media
    thread (``media.relay_thread``). Called once at start-up: it is a setting of the whole process."""
    if media_thread:
        sys.setswitchinterval(min(sys.getswitchinterval(), MEDIA_SWITCH_INTERVAL))


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
