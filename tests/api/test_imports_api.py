"""POST /api/v1/imports/contacts: CSV and JSON bodies, per-line errors, good rows kept, call center scoped."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from cti_server.api import create_app
from cti_server.store import Store
from cti_server.store.passwords import PasswordHashing
from tests.api.conftest import Tenants, api_config, make_tenants

Client = TestClient[Any, Any]

CSV_BODY = (
    "first_name,last_name,mobile,email,account\n"
    "Ada,Lovelace,(415) 555-0100,ada@example.com,Acme\n"
    "Bob,,not a number,,\n"
    "Cy,,+14155550300,cy@,\n"
)


@pytest.fixture
async def both(store: Store, aiohttp_client: Any) -> tuple[Client, Tenants]:
    config = api_config()
    tenants = await make_tenants(store, PasswordHashing(config.auth))
    client: Client = await aiohttp_client(create_app(config, store=store))
    return client, tenants


async def test_csv_import_keeps_good_rows_and_reports_bad_lines(both: tuple[Client, Tenants]) -> None:
    client, tenants = both
    headers = {**tenants.headers("api_key"), "Content-Type": "text/csv"}
    resp = await client.post("/api/v1/imports/contacts", data=CSV_BODY.encode(), headers=headers)
    assert resp.status == 200, await resp.text()
    report = await resp.json()
    assert (report["received"], report["imported"], report["rejected"]) == (3, 1, 2)
    assert [(e["line"], e["field"]) for e in report["errors"]] == [(3, "mobile"), (4, "email")]
    pop = await (
        await client.get("/api/v1/screenpop?number=4155550100", headers=tenants.headers("agent"))
    ).json()
    assert pop["outcome"] == "single" and pop["matches"][0]["account_name"] == "Acme"
    # Imported into Alpha only.
    beta = await (await client.get("/api/v1/contacts", headers=tenants.headers("agent", "beta"))).json()
    assert beta["contacts"] == []


async def test_json_import_and_unreadable_bodies(both: tuple[Client, Tenants]) -> None:
    client, tenants = both
    headers = tenants.headers("supervisor", "beta")
    rows = [
        {"first_name": "Liz", "phones": ["020 7946 0018"]},
        {"first_name": "Max", "phones": [{"number": "x"}]},
    ]
    resp = await client.post("/api/v1/imports/contacts", data=json.dumps(rows, indent=1), headers=headers)
    report = await resp.json()
    assert (report["imported"], report["rejected"]) == (1, 1)
    assert report["errors"] == [{"line": 8, "field": "phones[0]", "reason": report["errors"][0]["reason"]}]
    listed = await (await client.get("/api/v1/contacts?number=+442079460018", headers=headers)).json()
    assert [c["first_name"] for c in listed["contacts"]] == ["Liz"]

    broken = await client.post(
        "/api/v1/imports/contacts",
        data=b'[\n{"first_name": "A"},\n{oops}\n]',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert broken.status == 400
    error = await broken.json()
    assert error["field"] == "body" and error["error"].startswith("line 3")
    wrong_type = await client.post(
        "/api/v1/imports/contacts", data=b"%PDF", headers={**headers, "Content-Type": "application/pdf"}
    )
    assert wrong_type.status == 415
    agent = await client.post("/api/v1/imports/contacts", data=b"[]", headers=tenants.headers("agent"))
    assert agent.status == 403
