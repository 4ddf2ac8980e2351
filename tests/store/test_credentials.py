"""Passwords (argon2id), SIP HA1 hashes (RFC 8760), sessions and API keys kept as hashes only."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from cti_server.config import AuthConfig
from cti_server.store import CLI_ACTOR, Store
from cti_server.store.base import utcnow
from cti_server.store.credentials import (
    api_key_for,
    create_api_key,
    create_session,
    end_session,
    revoke_api_key,
    sip_credentials_lookup,
    token_hash,
    user_for_session,
)
from cti_server.store.directory import create_call_center, create_user, update_user
from cti_server.store.models import ApiKey, WebSession
from cti_server.store.passwords import PasswordHashing, sip_ha1

HASHING = PasswordHashing(AuthConfig(password_memory_kib=1024, password_time_cost=1))


def test_sip_ha1_matches_the_rfc_2617_example() -> None:
    # RFC 2617 section 3.5: HA1 for Mufasa / testrealm@host.com / "Circle Of Life".
    assert (
        sip_ha1("Mufasa", "testrealm@host.com", "Circle Of Life", "MD5") == "939e7578ed9e3c518a452acee763bce9"
    )
    assert len(sip_ha1("Mufasa", "testrealm@host.com", "Circle Of Life", "SHA-256")) == 64


async def test_argon2id_hashes_are_salted_and_verify() -> None:
    first, second = await HASHING.hash("s3cret-pass"), await HASHING.hash("s3cret-pass")
    assert first.startswith("$argon2id$") and first != second
    assert await HASHING.verify(first, "s3cret-pass")
    assert not await HASHING.verify(first, "wrong")
    assert not await HASHING.verify(None, "anything")
    assert not await HASHING.verify("not-a-hash", "anything")
    production = PasswordHashing(AuthConfig())
    assert "m=65536,t=3" in await production.hash("x")


async def test_sessions_are_stored_as_hashes_and_expire(store: Store) -> None:
    async with store.session() as db:
        bob = await create_user(db, CLI_ACTOR, "bob", "agent", await HASHING.hash("bob-password"))
        token = await create_session(db, bob, lifetime=60)
        stored = (await db.scalars(select(WebSession.token_hash))).all()
        assert stored == [token_hash(token)] and token not in stored
        found = await user_for_session(db, token)
        assert found is not None and found.user.id == bob.id and found.call_center_id is None
        row = await db.get(WebSession, token_hash(token))
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
        await db.commit()
        assert await user_for_session(db, token) is None
        other = await create_session(db, bob, lifetime=60)
        assert await end_session(db, other)
        assert await user_for_session(db, other) is None
        assert not await end_session(db, other)


async def test_api_keys_are_found_by_prefix_and_compared_by_hash(store: Store) -> None:
    async with store.session() as db:
        alpha = await create_call_center(db, CLI_ACTOR, "Alpha")
        row, key = await create_api_key(db, CLI_ACTOR, alpha.id, "CRM")
        stored = await db.get(ApiKey, row.id)
        assert (
            stored is not None and stored.key_hash == token_hash(key) and key.split("_")[1] == stored.prefix
        )
        assert (await api_key_for(db, key)) is not None
        for forged in (key + "x", key[:-1], f"cti_{stored.prefix}_", "cti_", "Bearer", ""):
            assert await api_key_for(db, forged) is None, forged
        await revoke_api_key(db, CLI_ACTOR, stored)
        assert await api_key_for(db, key) is None


async def test_sip_lookup_follows_the_users_state(store: Store) -> None:
    async with store.session() as db:
        bob = await create_user(db, CLI_ACTOR, "bob", "agent", sip=("2001", "cti.local", "desk-pass"))
    lookup = sip_credentials_lookup(store, "cti.local")
    assert await lookup("2001") == (
        sip_ha1("2001", "cti.local", "desk-pass", "MD5"),
        sip_ha1("2001", "cti.local", "desk-pass", "SHA-256"),
    )
    async with store.session() as db:
        await update_user(db, CLI_ACTOR, bob, active=False)
    assert await lookup("2001") is None
