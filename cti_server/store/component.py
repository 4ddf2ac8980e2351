"""The store's server component: open (migrate SQLite) before SIP and the web edge, close after them."""

from __future__ import annotations

from cti_server.config import Config
from cti_server.store.credentials import import_sip_users
from cti_server.store.engine import Store


class StoreComponent:
    """Opens ``store`` at server start and brings the configured ``sip.users`` into it as agents.

    After this the registrar can take digest credentials from the store
    (``cti_server.store.credentials.sip_credentials_lookup``).
    """

    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.config = config

    async def start(self) -> None:
        await self.store.open()
        if self.config.sip.users:
            async with self.store.session() as db:
                await import_sip_users(db, self.config.sip.users, self.config.sip.realm)

    async def stop(self) -> None:
        await self.store.close()
