"""The running server: owns the event bus, the web edge and every component's start and stop.

Components are objects with ``async start()`` and ``async stop()``; they start in list order and stop
in reverse, so the SIP listeners come up after the stores they use and go down before them.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Protocol

import structlog
from aiohttp import web

from cti_server.api import create_app
from cti_server.config import Config
from cti_server.event_loop import tune_garbage_collector, tune_switch_interval
from cti_server.events import EventBus
from cti_server.shutdown import other_tasks, settle
from cti_server.sip.bindings import InMemoryBindings, RegistrarBindings

log = structlog.get_logger(__name__)


class Component(Protocol):
    """A part of the server with a lifetime: opens sockets, connections or tasks in start()."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class WebComponent:
    """The aiohttp application on ``http.host:http.port``."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        # Port 0 means "any free port": report the one the kernel picked.
        sockets = getattr(site._server, "sockets", None)
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("http_listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        await self._runner.cleanup()


class CtiServer:
    """All components of one server process, built from ``config``."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.bus = EventBus()
        self.app = create_app(config, self.bus)
        self.web = WebComponent(self.app, config.http.host, config.http.port)
        self.components: list[Component] = [*build_components(self), self.web]
        self._started: list[Component] = []

    async def start(self) -> None:
        """Start every component; if one fails, stop those already started and re-raise."""
        try:
            for component in self.components:
                await component.start()
                self._started.append(component)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop the components in reverse start order. After each, the event handlers it set off (a
        call's ``call.ended`` writing its log) finish while the components they use still run."""
        grace = self.config.server.shutdown_grace
        while self._started:
            component = self._started.pop()
            try:
                await component.stop()
            except Exception:
                log.exception("component_stop_failed", component=type(component).__name__)
            await self.bus.settle(grace)


def build_components(server: CtiServer) -> list[Component]:
    """The components that come before the web edge, in start order (each issue adds its own)."""
    from cti_server.api.keys import STORE_KEY
    from cti_server.api.registrations import BINDINGS_KEY
    from cti_server.api.sip_stats import SIP_STACK_KEY
    from cti_server.calls.component import CallsComponent
    from cti_server.sip.registrar import RegistrarComponent
    from cti_server.sip.stack import SipComponent
    from cti_server.store import StoreComponent
    from cti_server.store.credentials import sip_credentials_lookup

    sip = SipComponent(server.config, server.bus)
    server.app[SIP_STACK_KEY] = sip
    # Desk phones of users kept in the store register with their own SIP credentials (RFC 8760 HA1s).
    sip_users = sip_credentials_lookup(server.app[STORE_KEY], server.config.sip.realm)
    bindings, bindings_component = build_bindings(server.config)
    registrar = RegistrarComponent.attach(sip, server.config.sip, server.bus, bindings, sip_users)
    server.app[BINDINGS_KEY] = registrar.registrar.bindings
    calls = CallsComponent.attach(sip, registrar.registrar, server.config, server.bus)
    from cti_server.screenpop.component import component_for_app

    screenpop = component_for_app(server.app)
    from cti_server.calls.queue_component import InboundCallPath

    inbound = InboundCallPath.attach(calls.b2bua, server.app)
    store = StoreComponent(server.app[STORE_KEY], server.config)
    return [store, *bindings_component, screenpop, sip, registrar, calls, inbound]


def build_bindings(config: Config) -> tuple[RegistrarBindings, list[Component]]:
    """The registrar's bindings store of ``sip.registrar.bindings``, and the component that opens and
    closes it (none for the in-memory one)."""
    settings = config.sip.registrar
    if settings.bindings == "memory":
        return InMemoryBindings(), []
    from cti_server.sip.redis_bindings import RedisBindings

    store = RedisBindings.from_url(settings.redis_url or config.routing.redis_url, settings.redis_prefix,
                                   lock_lease=settings.lock_lease, lock_wait=settings.lock_wait)
    return store, [store]


async def run_until_signalled(config: Config) -> None:
    """Start the server and serve until SIGINT or SIGTERM. The signal handlers are removed on the way
    out, started or not (uvloop leaves them pointing at its closed loop otherwise)."""
    server = CtiServer(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        tune_garbage_collector()
        tune_switch_interval(config.media.relay_thread)
        log.info("server_started", http_port=server.web.port, sip_udp_port=config.sip.udp_port)
        try:
            await stop.wait()
        finally:
            log.info("server_stopping")
            await server.stop()
            # Whatever still runs is cancelled here, where a task that outlives one cancel gets
            # another, not by asyncio.run's single cancel, after which the process would wait for ever.
            await settle(other_tasks(), config.server.shutdown_grace, what="leftover tasks",
                         wait_first=False)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
