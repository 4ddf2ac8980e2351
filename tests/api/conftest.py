"""API fixtures other areas reuse: an app on a real store, and credentials for every role.

``api_client`` is a pytest-aiohttp client of the full app (``create_app``) on an opened SQLite store.
``tenants`` creates two call centers, Alpha (US) and Beta (GB), each with a supervisor, an agent, an
integrator user and an integrator API key, plus one admin; ``tenants.headers("agent", "alpha")``
gives the ``Authorization`` header of that principal. Stores on both backends: ``store`` (from
tests/store/backends.py), parametrized over SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from cti_server.api import create_app
from cti_server.config import Config
from cti_server.store import CLI_ACTOR, Store
from cti_server.store.credentials import create_api_key, create_session
from cti_server.store.directory import assign, create_call_center, create_user
from cti_server.store.passwords import PasswordHashing
from tests.conftest import make_config
from tests.store.backends import postgres_url, sqlite_store, sqlite_template, store

__all__ = ["postgres_url", "sqlite_store", "sqlite_template", "store"]

PASSWORD = "correct horse battery"
"""The password of every user the fixtures create."""
ROLE_USERS = ("supervisor", "agent", "integrator")
FAST_ARGON2 = {"password_memory_kib": 1024, "password_time_cost": 1}


def api_config(**sections: Any) -> Config:
    """A test config with a cheap argon2 cost (still argon2id) on free ports."""
    auth = {**FAST_ARGON2, **sections.pop("auth", {})}
    return make_config(auth=auth, **sections)


@dataclass
class Tenant:
    """One call center of the fixture and the credentials of its members."""

    id: str
    name: str
    user_ids: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    """role (supervisor, agent, integrator) or "api_key" -> bearer token."""
    api_key_id: str = ""


@dataclass
class Tenants:
    """Two call centers with a member of each role, an API key each, and an admin."""

    admin_id: str
    admin_token: str
    alpha: Tenant
    beta: Tenant

    def tenant(self, name: str) -> Tenant:
        """``alpha`` or ``beta``."""
        found: Tenant = getattr(self, name)
        return found

    def token(self, principal: str, tenant: str = "alpha") -> str:
        """Bearer token of ``principal`` (admin, supervisor, agent, integrator, api_key) in ``tenant``."""
        if principal == "admin":
            return self.admin_token
        return self.tenant(tenant).tokens[principal]

    def headers(self, principal: str, tenant: str = "alpha") -> dict[str, str]:
        """``Authorization: Bearer ...`` of ``principal`` in ``tenant``."""
        return {"Authorization": f"Bearer {self.token(principal, tenant)}"}


async def make_tenants(store: Store, hashing: PasswordHashing, lifetime: int = 3600) -> Tenants:
    """Create the two call centers, their members, API keys and the admin in ``store``."""
    password_hash = await hashing.hash(PASSWORD)
    async with store.session() as db:
        admin = await create_user(db, CLI_ACTOR, "admin", "admin", password_hash, "The Admin")
        admin_token = await create_session(db, admin, lifetime)
        tenants = []
        for name, region in (("Alpha", "US"), ("Beta", "GB")):
            call_center = await create_call_center(db, CLI_ACTOR, name, region)
            tenant = Tenant(call_center.id, name)
            for role in ROLE_USERS:
                user = await create_user(db, CLI_ACTOR, f"{name.lower()}-{role}", role, password_hash)
                await assign(db, CLI_ACTOR, user, call_center)
                tenant.user_ids[role] = user.id
                tenant.tokens[role] = await create_session(db, user, lifetime)
            key_row, key = await create_api_key(db, CLI_ACTOR, call_center.id, f"{name} CRM")
            tenant.tokens["api_key"] = key
            tenant.api_key_id = key_row.id
            tenants.append(tenant)
    return Tenants(admin.id, admin_token, tenants[0], tenants[1])


@pytest.fixture
def api_app(sqlite_store: Store) -> web.Application:
    """The full application on an opened SQLite store."""
    return create_app(api_config(), store=sqlite_store)


@pytest.fixture
async def api_client(aiohttp_client: Any, api_app: web.Application) -> TestClient[Any, Any]:
    """A test client of ``api_app``."""
    client: TestClient[Any, Any] = await aiohttp_client(api_app)
    return client


@pytest.fixture
async def tenants(sqlite_store: Store) -> AsyncIterator[Tenants]:
    """Alpha and Beta with credentials of every role, in the store behind ``api_app``."""
    yield await make_tenants(sqlite_store, PasswordHashing(api_config().auth))


@pytest.fixture
def hashing() -> PasswordHashing:
    """argon2id at the tests' cheap cost."""
    return PasswordHashing(api_config().auth)
