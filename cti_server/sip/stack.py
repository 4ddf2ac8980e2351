"""The SIP component of the server: transports, transaction layer and the registrar wired together.

Placeholder until the SIP core lands (issue 3): it opens nothing yet.
"""

from __future__ import annotations

from cti_server.config import Config
from cti_server.events import EventBus


class SipComponent:
    """Starts the SIP listeners configured in ``config.sip``."""

    def __init__(self, config: Config, bus: EventBus) -> None:
        self.config = config
        self.bus = bus

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
