"""GET /api/v1/screenpop and the contacts/accounts/cases/call-logs CRUD, on SQLite and PostgreSQL.

Every principal works only in its own call center; bad bodies are a 400 naming the field.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from cti_server.api import create_app
from cti_server.store import Store
from cti_server.store.passwords import PasswordHashing
from tests.api.conftest import Tenants, api_config, make_tenants

Client = TestClient[Any, Any]


@pytest.fixture
async def both(store: Store, aiohttp_client: Any) -> tuple[Client, Tenants]:
    config = api_config()
    tenants = await make_tenants(store, PasswordHashing(config.auth))
    client: Client = await aiohttp_client(create_app(config, store=store))
    return client, tenants


async def _create_contact(client: Client, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    resp = await client.post("/api/v1/contacts", json=body, headers=headers)
    assert resp.status == 201, await resp.text()
    created: dict[str, Any] = await resp.json()
    return created


async def test_screenpop_one_several_none(both: tuple[Client, Tenants]) -> None:
    client, tenants = both
    headers = tenants.headers("api_key")
    ada = await _create_contact(
        client, headers, first_name="Ada", phones=[{"number": "(415) 555-0100", "kind": "mobile"}]
    )
    assert ada["phones"] == [{"number": "+14155550100", "kind": "mobile", "raw": "(415) 555-0100"}]
    for name in ("Bob", "Cy"):
        await _create_contact(client, headers, first_name=name, phones=[{"number": "+14155550200"}])

    one = await (
        await client.get("/api/v1/screenpop", params={"number": "+1 415 555 0100"}, headers=headers)
    ).json()
    assert (one["outcome"], one["action"], one["contact_id"], one["late"]) == (
        "single",
        "record",
        ada["id"],
        False,
    )
    several = await (await client.get("/api/v1/screenpop?number=4155550200", headers=headers)).json()
    assert (several["outcome"], several["action"], len(several["matches"])) == ("multiple", "list", 2)
    none = await (await client.get("/api/v1/screenpop?number=4155550999", headers=headers)).json()
    assert (none["outcome"], none["action"], none["prefill"]) == (
        "none",
        "new_contact",
        {"phone": "+14155550999"},
    )

    # Beta (GB) sees none of Alpha's contacts, and reads national numbers as British.
    beta = await (
        await client.get("/api/v1/screenpop?number=+14155550100", headers=tenants.headers("agent", "beta"))
    ).json()
    assert beta["outcome"] == "none" and beta["call_center_id"] == tenants.beta.id
    gb = await (
        await client.get("/api/v1/screenpop?number=020 7946 0018", headers=tenants.headers("agent", "beta"))
    ).json()
    assert gb["number"] == "+442079460018"


async def test_screenpop_needs_a_number_and_admins_name_the_call_center(both: tuple[Client, Tenants]) -> None:
    client, tenants = both
    resp = await client.get("/api/v1/screenpop", headers=tenants.headers("agent"))
    assert resp.status == 400 and (await resp.json())["field"] == "number"
    resp = await client.get("/api/v1/screenpop?number=123", headers=tenants.headers("admin"))
    assert resp.status == 400 and (await resp.json())["field"] == "call_center_id"
    resp = await client.get(
        "/api/v1/screenpop",
        params={"number": "4155550100", "call_center_id": tenants.alpha.id},
        headers=tenants.headers("admin"),
    )
    assert resp.status == 200 and (await resp.json())["call_center_id"] == tenants.alpha.id
    resp = await client.get(
        "/api/v1/screenpop",
        params={"number": "4155550100", "call_center_id": tenants.beta.id},
        headers=tenants.headers("agent"),
    )
    assert resp.status == 403


BAD_BODIES: list[tuple[dict[str, Any], str]] = [
    ({"first_name": 5}, "first_name"),
    ({"first_name": "A", "phones": [{"number": "abc"}]}, "phones[0].number"),
    ({"first_name": "A", "phones": [{"number": "+14155550100", "kind": "fax"}]}, "phones[0].kind"),
    ({"first_name": "A", "email": "nope"}, "email"),
    ({"first_name": "A", "shoe_size": 9}, "shoe_size"),
    ({"title": "no name"}, "first_name"),
    ({"first_name": "A", "account_id": "missing"}, "account_id"),
]


async def test_bad_contact_bodies_name_the_field(both: tuple[Client, Tenants]) -> None:
    client, tenants = both
    for body, field in BAD_BODIES:
        resp = await client.post("/api/v1/contacts", json=body, headers=tenants.headers("integrator"))
        assert resp.status == 400, body
        assert (await resp.json())["field"] == field, body
    resp = await client.post("/api/v1/contacts", data=b"{not json", headers=tenants.headers("integrator"))
    assert resp.status == 400 and (await resp.json())["field"] == "body"
    for path, body, field in (
        ("/api/v1/accounts", {"name": ""}, "name"),
        ("/api/v1/cases", {"subject": "x", "status": "weird"}, "status"),
        ("/api/v1/webhooks", {"url": "ftp://x", "events": ["call.*"]}, "url"),
        ("/api/v1/webhooks", {"url": "https://x.org/h", "events": ["agent.*"]}, "events[0]"),
    ):
        resp = await client.post(path, json=body, headers=tenants.headers("integrator"))
        assert resp.status == 400 and (await resp.json())["field"] == field, (path, body)


async def test_contact_account_case_crud_and_isolation(both: tuple[Client, Tenants]) -> None:
    client, tenants = both
    mine, theirs = tenants.headers("supervisor"), tenants.headers("api_key", "beta")
    account = await (await client.post("/api/v1/accounts", json={"name": "Acme"}, headers=mine)).json()
    contact = await _create_contact(
        client,
        mine,
        first_name="Ada",
        account_id=account["id"],
        external_id="crm-1",
        phones=[{"number": "4155550100"}],
    )
    dup = await client.post(
        "/api/v1/contacts", json={"first_name": "B", "external_id": "crm-1"}, headers=mine
    )
    assert dup.status == 409 and (await dup.json())["field"] == "external_id"
    case = await (
        await client.post(
            "/api/v1/cases", json={"subject": "Broken", "contact_id": contact["id"]}, headers=mine
        )
    ).json()
    assert case["number"].startswith("CS-") and case["status"] == "new"

    patched = await client.patch(
        f"/api/v1/contacts/{contact['id']}",
        json={"last_name": "Lovelace", "phones": [{"number": "+442079460018"}]},
        headers=mine,
    )
    body = await patched.json()
    assert patched.status == 200 and body["display_name"] == "Ada Lovelace"
    assert [p["number"] for p in body["phones"]] == ["+442079460018"]
    found = await (await client.get("/api/v1/contacts?number=+44 20 7946 0018", headers=mine)).json()
    assert [c["id"] for c in found["contacts"]] == [contact["id"]]
    closed = await (
        await client.patch(f"/api/v1/cases/{case['id']}", json={"status": "closed"}, headers=mine)
    ).json()
    assert closed["closed_at"] is not None

    # The other call center sees nothing and cannot touch anything (404: no existence leak).
    for path in (
        f"/api/v1/contacts/{contact['id']}",
        f"/api/v1/accounts/{account['id']}",
        f"/api/v1/cases/{case['id']}",
        f"/api/v1/contacts/{contact['id']}/call-logs",
    ):
        assert (await client.get(path, headers=theirs)).status == 404, path
    assert (
        await client.patch(f"/api/v1/contacts/{contact['id']}", json={"title": "x"}, headers=theirs)
    ).status == 404
    assert (await client.delete(f"/api/v1/contacts/{contact['id']}", headers=theirs)).status == 404
    for listing, key in (
        ("/api/v1/contacts", "contacts"),
        ("/api/v1/accounts", "accounts"),
        ("/api/v1/cases", "cases"),
    ):
        assert (await (await client.get(listing, headers=theirs)).json())[key] == []
        assert len((await (await client.get(listing, headers=mine)).json())[key]) == 1

    assert (
        await client.delete(f"/api/v1/contacts/{contact['id']}", headers=tenants.headers("agent"))
    ).status == 403
    assert (await client.delete(f"/api/v1/contacts/{contact['id']}", headers=mine)).status == 204
    assert (await client.get(f"/api/v1/contacts/{contact['id']}", headers=mine)).status == 404
