"""Login, logout, sessions, API keys and role checks (cti_server/api/auth.py, login.py)."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from cti_server.api import create_app
from cti_server.api.auth import CREDENTIAL_CACHE_KEY, SESSION_COOKIE, CredentialCache, Principal
from cti_server.api.login_throttle import LoginFailures
from cti_server.store import CLI_ACTOR, Store
from cti_server.store.credentials import revoke_api_key
from cti_server.store.directory import get_user, update_user
from cti_server.store.models import ApiKey, User
from tests.api.conftest import PASSWORD, Tenants, api_config

Client = TestClient[Any, Any]


async def test_login_gives_token_and_cookie_that_authenticate(api_client: Client, tenants: Tenants) -> None:
    resp = await api_client.post("/api/v1/login", json={"username": "alpha-agent", "password": PASSWORD})
    assert resp.status == 200
    body = await resp.json()
    assert body["user"]["role"] == "agent"
    assert body["user"]["call_center_id"] == tenants.alpha.id
    cookie = resp.cookies[SESSION_COOKIE]
    assert cookie.value == body["token"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"

    me = await api_client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert (await me.json())["name"] == "alpha-agent"
    # The client's cookie jar now holds the session cookie: no header needed for the pages.
    me_by_cookie = await api_client.get("/api/v1/me")
    assert me_by_cookie.status == 200


async def test_wrong_password_and_unknown_user_get_the_same_401(api_client: Client, tenants: Tenants) -> None:
    wrong = await api_client.post("/api/v1/login", json={"username": "alpha-agent", "password": "nope" * 3})
    unknown = await api_client.post("/api/v1/login", json={"username": "nobody", "password": "nope" * 3})
    assert wrong.status == unknown.status == 401
    assert await wrong.json() == await unknown.json()


async def test_login_bad_body_names_the_field(api_client: Client) -> None:
    resp = await api_client.post("/api/v1/login", json={"username": "x"})
    assert resp.status == 400
    assert await resp.json() == {"error": "is required", "field": "password"}
    resp = await api_client.post("/api/v1/login", json={"username": 5, "password": "x"})
    assert (await resp.json())["field"] == "username"
    resp = await api_client.post("/api/v1/login", data=b"{not json")
    assert (await resp.json())["field"] == "body"


async def test_logout_ends_the_session(api_client: Client, tenants: Tenants) -> None:
    headers = tenants.headers("agent")
    assert (await api_client.post("/api/v1/logout", headers=headers)).status == 200
    assert (await api_client.get("/api/v1/me", headers=headers)).status == 401


async def test_inactive_user_cannot_log_in_and_loses_sessions(
    api_client: Client, tenants: Tenants, sqlite_store: Store
) -> None:
    async with sqlite_store.session() as db:
        await update_user(db, CLI_ACTOR, await get_user(db, "alpha-agent"), active=False)
    assert (await api_client.get("/api/v1/me", headers=tenants.headers("agent"))).status == 401
    resp = await api_client.post("/api/v1/login", json={"username": "alpha-agent", "password": PASSWORD})
    assert resp.status == 401


async def test_api_key_authenticates_as_integrator_of_its_call_center(
    api_client: Client, tenants: Tenants, sqlite_store: Store
) -> None:
    resp = await api_client.get("/api/v1/me", headers=tenants.headers("api_key", "beta"))
    assert resp.status == 200
    assert await resp.json() == {
        "kind": "api_key",
        "id": tenants.beta.api_key_id,
        "name": "Beta CRM",
        "role": "integrator",
        "call_center_id": tenants.beta.id,
    }
    async with sqlite_store.session() as db:
        row = await db.get(ApiKey, tenants.beta.api_key_id)
        assert row is not None and row.last_used_at is not None
    # Revoked through the admin API: refused at once (the credential cache is dropped).
    resp = await api_client.delete(f"/api/v1/api-keys/{row.id}", headers=tenants.headers("admin"))
    assert resp.status == 200
    assert (await api_client.get("/api/v1/me", headers=tenants.headers("api_key", "beta"))).status == 401


async def test_a_revocation_behind_the_servers_back_holds_once_the_cache_expires(
    aiohttp_client: Any, sqlite_store: Store, tenants: Tenants
) -> None:
    app = create_app(api_config(), store=sqlite_store)
    client = await aiohttp_client(app)
    headers = tenants.headers("api_key", "beta")
    assert (await client.get("/api/v1/me", headers=headers)).status == 200
    async with sqlite_store.session() as db:
        row = await db.get(ApiKey, tenants.beta.api_key_id)
        assert row is not None
        await revoke_api_key(db, CLI_ACTOR, row)  # as the CLI or another node would
    # Within credential_cache_seconds the key still works; once the entry ages out it does not.
    assert (await client.get("/api/v1/me", headers=headers)).status == 200
    app[CREDENTIAL_CACHE_KEY].ttl = 0
    assert (await client.get("/api/v1/me", headers=headers)).status == 401


def test_credential_cache_keeps_principals_for_its_ttl() -> None:
    cache = CredentialCache(ttl=5)
    principal = Principal("user", "u1", "bob", "agent", "cc1")
    cache.put("token", principal, now=100)
    assert cache.get("token", now=104.9) is principal
    assert cache.get("token", now=105) is None
    cache.put("token", principal, now=200)
    cache.forget("token")
    assert cache.get("token", now=200) is None
    off = CredentialCache(ttl=0)
    off.put("token", principal, now=0)
    assert off.get("token", now=0) is None


async def test_tampered_api_key_is_refused(api_client: Client, tenants: Tenants) -> None:
    key = tenants.token("api_key")
    tampered = key[:-2] + ("AA" if not key.endswith("AA") else "BB")
    resp = await api_client.get("/api/v1/me", headers={"Authorization": f"Bearer {tampered}"})
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_cross_origin_write_with_cookie_is_not_authenticated(
    api_client: Client, tenants: Tenants
) -> None:
    api_client.session.cookie_jar.update_cookies({SESSION_COOKIE: tenants.token("agent")})
    assert (await api_client.get("/api/v1/me")).status == 200
    resp = await api_client.post("/api/v1/logout", headers={"Origin": "https://evil.example"})
    assert resp.status == 401
    assert (await api_client.post("/api/v1/logout")).status == 200


async def test_unassigned_user_may_see_me_but_nothing_scoped(
    api_client: Client, tenants: Tenants, sqlite_store: Store
) -> None:
    from cti_server.store.directory import unassign

    async with sqlite_store.session() as db:
        user = await db.get(User, tenants.alpha.user_ids["agent"])
        assert user is not None
        await unassign(db, CLI_ACTOR, user)
    resp = await api_client.get("/api/v1/me", headers=tenants.headers("agent"))
    assert (await resp.json())["call_center_id"] is None


def test_login_failures_lock_a_username_and_address_pair_for_a_while() -> None:
    failures = LoginFailures(max_failures=3, lockout=60)
    for second in range(3):
        assert failures.retry_after("bob", "10.0.0.1", now=100 + second) == 0
        failures.failed("bob", "10.0.0.1", now=100 + second)
    assert failures.retry_after("bob", "10.0.0.1", now=103) == 57
    assert failures.retry_after("bob", "10.0.0.2", now=103) == 0  # another address
    assert failures.retry_after("carol", "10.0.0.1", now=103) == 0  # another user
    assert failures.retry_after("bob", "10.0.0.1", now=160) == 0  # the oldest failure aged out
    failures.failed("bob", "10.0.0.1", now=161)
    failures.succeeded("bob", "10.0.0.1")
    assert failures.retry_after("bob", "10.0.0.1", now=161) == 0


def test_login_failures_remember_a_bounded_number_of_pairs() -> None:
    failures = LoginFailures(max_failures=1, lockout=60, max_entries=2)
    for user in ("a", "b", "c"):
        failures.failed(user, "ip", now=0)
    assert failures.retry_after("a", "ip", now=1) == 0
    assert failures.retry_after("c", "ip", now=1) > 0


async def test_repeated_wrong_passwords_get_429_even_with_the_right_one(
    aiohttp_client: Any, sqlite_store: Store, tenants: Tenants
) -> None:
    client = await aiohttp_client(create_app(api_config(auth={"login_max_failures": 2}), store=sqlite_store))
    for _ in range(2):
        resp = await client.post("/api/v1/login", json={"username": "alpha-agent", "password": "wrong-guess"})
        assert resp.status == 401
    resp = await client.post("/api/v1/login", json={"username": "alpha-agent", "password": PASSWORD})
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 0
    assert (await client.post("/api/v1/login", json={"username": "beta-agent", "password": PASSWORD})).ok
