"""Isolation: two call centers; each agent, supervisor, integrator and API key sees only its own.

Runs on SQLite and PostgreSQL. Other areas add their records (contacts, call logs...) to
``test_each_principal_sees_only_its_own_call_center``'s pattern in their own test files.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from cti_server.api import create_app
from cti_server.store import CLI_ACTOR, Store
from cti_server.store.directory import add_did, get_call_center
from cti_server.store.passwords import PasswordHashing
from tests.api.conftest import Tenants, api_config, make_tenants

Client = TestClient[Any, Any]
PRINCIPALS = ["supervisor", "agent", "integrator", "api_key"]


@pytest.fixture
async def both(store: Store, aiohttp_client: Any) -> tuple[Client, Tenants]:
    """A client of the app on ``store`` (SQLite and PostgreSQL) with Alpha and Beta, a DID each."""
    config = api_config()
    tenants = await make_tenants(store, PasswordHashing(config.auth))
    async with store.session() as db:
        await add_did(db, CLI_ACTOR, await get_call_center(db, "Alpha"), "+1 415 555 0100")
        await add_did(db, CLI_ACTOR, await get_call_center(db, "Beta"), "+44 20 7946 0100")
    client: Client = await aiohttp_client(create_app(config, store=store))
    return client, tenants


async def test_each_principal_sees_only_its_own_call_center(both: tuple[Client, Tenants]) -> None:
    client, tenants = both
    for principal, (mine, theirs) in itertools.product(PRINCIPALS, (("alpha", "beta"), ("beta", "alpha"))):
        own, other = tenants.tenant(mine), tenants.tenant(theirs)
        headers = tenants.headers(principal, mine)

        users = (await (await client.get("/api/v1/users", headers=headers)).json())["users"]
        assert {u["username"] for u in users} == {
            f"{own.name.lower()}-{r}" for r in ("supervisor", "agent", "integrator")
        }
        assert {u["call_center_id"] for u in users} == {own.id}, principal

        dids = (await (await client.get("/api/v1/dids", headers=headers)).json())["dids"]
        assert [d["call_center_id"] for d in dids] == [own.id]

        centers = (await (await client.get("/api/v1/call-centers", headers=headers)).json())["call_centers"]
        assert [c["id"] for c in centers] == [own.id]

        # The other call center's records are not there at all (404, not 403: no existence leak).
        for path in (
            f"/api/v1/call-centers/{other.id}",
            f"/api/v1/call-centers/{other.id}/members",
            f"/api/v1/call-centers/{other.id}/dids",
            f"/api/v1/users/{other.user_ids['agent']}",
        ):
            assert (await client.get(path, headers=headers)).status == 404, (principal, path)
        assert (await client.get(f"/api/v1/users/{own.user_ids['agent']}", headers=headers)).status == 200


async def test_admin_sees_both(both: tuple[Client, Tenants]) -> None:
    client, tenants = both
    headers = tenants.headers("admin")
    dids = (await (await client.get("/api/v1/dids", headers=headers)).json())["dids"]
    assert {d["call_center_id"] for d in dids} == {tenants.alpha.id, tenants.beta.id}
    users = (await (await client.get("/api/v1/users", headers=headers)).json())["users"]
    assert len(users) == 7
