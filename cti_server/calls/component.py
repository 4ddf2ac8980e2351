"""The calls component of the server: the B2BUA wired onto the SIP stack, the registrar and the media.

Built in ``server.build_components`` with ``CallsComponent.attach(sip, registrar, config, bus)``; it
starts after the SIP stack (so our Contact carries the bound port) and on stop ends every call.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from cti_server.calls.b2bua import B2bua
from cti_server.calls.media_session import MediaAnchor
from cti_server.calls.routing import CallRouter
from cti_server.config import Config
from cti_server.events import EventBus
from cti_server.sip.registrar import Registrar
from cti_server.sip.stack import SipComponent

log = structlog.get_logger(__name__)


class CallsComponent:
    """Call control: owns the ``B2bua`` and the media anchor it uses."""

    def __init__(self, b2bua: B2bua, media: MediaAnchor) -> None:
        self.b2bua = b2bua
        self.media = media

    @classmethod
    def attach(
        cls,
        sip: SipComponent,
        registrar: Registrar,
        config: Config,
        bus: EventBus,
        media: MediaAnchor | None = None,
        clock: Callable[[], float] | None = None,
    ) -> CallsComponent:
        """A B2BUA over ``sip`` whose handlers are registered now; targets come from ``registrar``'s
        bindings and callers authenticate against its users."""
        if media is None:
            from cti_server.calls.anchored_media import AnchoredMedia

            media = AnchoredMedia(config.media)
        router = CallRouter(config, registrar.bindings, registrar.authenticator)
        b2bua = B2bua(config, bus, sip, router, media) if clock is None else \
            B2bua(config, bus, sip, router, media, clock)
        b2bua.install()
        return cls(b2bua, media)

    async def start(self) -> None:
        router = self.b2bua.router
        for did in router.config.calls.dids:
            unknown = [u for u in did.users if u not in router.users]
            if unknown:
                # Not fatal: users may be added later; until then those phones cannot register.
                log.warning("did_users_unknown", did=did.number, users=unknown,
                            hint="add them to [[sip.users]]")
        log.info("calls_ready", trunks=len(router.trunks.trunks), dids=len(router.dids))

    async def stop(self) -> None:
        await self.b2bua.shutdown()
