"""Desk phones of store users register with their own SIP credentials (the registrar's HA1 lookup)."""

from __future__ import annotations

from cti_server.sip.registrar import Registrar
from cti_server.store import CLI_ACTOR, Store
from cti_server.store.credentials import sip_credentials_lookup
from cti_server.store.directory import create_user, update_user
from tests.sip.test_registrar import NOW, REALM, Phone, register, sip_config


async def test_a_store_user_registers_with_its_own_credentials(store: Store) -> None:
    async with store.session() as db:
        bob = await create_user(db, CLI_ACTOR, "bob", "agent", sip=("2001", REALM, "desk-phone-pw"))
    registrar = Registrar.from_config(sip_config(users=()), credentials=sip_credentials_lookup(store, REALM))

    assert (await register(registrar, Phone("2001", "desk-phone-pw", call_id="a@phone"))).status == 200
    assert (await register(registrar, Phone("2001", "wrong-password", call_id="b@phone"))).status == 401
    assert (await register(registrar, Phone("2002", "desk-phone-pw", call_id="c@phone"))).status == 401

    async with store.session() as db:
        await update_user(db, CLI_ACTOR, bob, active=False)
    # The registrar remembers a looked-up account for a few seconds (sip/digest.py); after that the
    # deactivation holds.
    later = NOW + registrar.authenticator.lookup_cache_seconds + 1
    response = await register(registrar, Phone("2001", "desk-phone-pw", call_id="d@phone"), now=later)
    assert response.status == 401
