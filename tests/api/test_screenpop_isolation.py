"""Isolation of the integrators' API: two call centers, each principal sees and touches only its own
contacts, accounts, cases, call logs, screen pops and webhooks (SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from cti_server.api import create_app
from cti_server.events import Event, EventBus
from cti_server.screenpop.call_logs import CallLogWriter
from cti_server.screenpop.directory import StoreContactDirectory
from cti_server.store import Store
from cti_server.store.passwords import PasswordHashing
from tests.api.conftest import Tenants, api_config, make_tenants

Client = TestClient[Any, Any]
PRINCIPALS = ["supervisor", "agent", "integrator", "api_key"]
NUMBERS = {"alpha": "+14155550100", "beta": "+442079460018"}


@pytest.fixture
async def seeded(store: Store, aiohttp_client: Any) -> tuple[Client, Tenants, dict[str, dict[str, str]]]:
    """Alpha and Beta with a contact, account, case, call log and webhook each."""
    config = api_config()
    tenants = await make_tenants(store, PasswordHashing(config.auth))
    client: Client = await aiohttp_client(create_app(config, store=store))
    records: dict[str, dict[str, str]] = {}
    directory = StoreContactDirectory(store)
    writer = CallLogWriter(store, directory, EventBus())
    for name in ("alpha", "beta"):
        headers = tenants.headers("supervisor", name)
        account = await (
            await client.post("/api/v1/accounts", json={"name": f"{name} Ltd"}, headers=headers)
        ).json()
        contact = await (
            await client.post(
                "/api/v1/contacts",
                json={"first_name": name, "account_id": account["id"], "phones": [{"number": NUMBERS[name]}]},
                headers=headers,
            )
        ).json()
        case = await (await client.post("/api/v1/cases", json={"subject": name}, headers=headers)).json()
        hook = await (
            await client.post(
                "/api/v1/webhooks",
                json={"url": "https://example.org/h", "events": ["call.*"]},
                headers=headers,
            )
        ).json()
        log = await writer.write(
            Event(
                "call.ended",
                {"call_id": f"{name}-call", "caller": {"number": NUMBERS[name]}},
                call_center=tenants.tenant(name).id,
            )
        )
        assert log is not None and log.contact_id == contact["id"]
        records[name] = {
            "account": account["id"],
            "contact": contact["id"],
            "case": case["id"],
            "webhook": hook["id"],
            "call_log": log.id,
        }
    await directory.close()
    return client, tenants, records


async def test_each_principal_sees_only_its_own_crm_records(
    seeded: tuple[Client, Tenants, dict[str, dict[str, str]]],
) -> None:
    client, tenants, records = seeded
    for principal, (mine, theirs) in itertools.product(PRINCIPALS, (("alpha", "beta"), ("beta", "alpha"))):
        headers = tenants.headers(principal, mine)
        own, other = records[mine], records[theirs]
        contacts = (await (await client.get("/api/v1/contacts", headers=headers)).json())["contacts"]
        assert [c["id"] for c in contacts] == [own["contact"]]
        accounts = (await (await client.get("/api/v1/accounts", headers=headers)).json())["accounts"]
        assert [a["id"] for a in accounts] == [own["account"]]
        cases = (await (await client.get("/api/v1/cases", headers=headers)).json())["cases"]
        assert [c["id"] for c in cases] == [own["case"]]
        logs = (await (await client.get("/api/v1/call-logs", headers=headers)).json())["call_logs"]
        assert [c["id"] for c in logs] == [own["call_log"]]
        pop = await (
            await client.get("/api/v1/screenpop", params={"number": NUMBERS[theirs]}, headers=headers)
        ).json()
        assert pop["outcome"] == "none"
        pop = await (
            await client.get("/api/v1/screenpop", params={"number": NUMBERS[mine]}, headers=headers)
        ).json()
        assert pop["contact_id"] == own["contact"]
        for path in (
            f"/api/v1/contacts/{other['contact']}",
            f"/api/v1/contacts/{other['contact']}/call-logs",
            f"/api/v1/accounts/{other['account']}",
            f"/api/v1/cases/{other['case']}",
            f"/api/v1/call-logs/{other['call_log']}",
        ):
            assert (await client.get(path, headers=headers)).status == 404, path
        patched = await client.patch(
            f"/api/v1/contacts/{other['contact']}", json={"title": "x"}, headers=headers
        )
        assert patched.status == 404
        linked = await client.patch(
            f"/api/v1/call-logs/{own['call_log']}", json={"contact_id": other["contact"]}, headers=headers
        )
        assert linked.status == 400 and (await linked.json())["field"] == "contact_id"
        if principal != "agent":  # agents may not manage webhooks (403 is checked by the route walk)
            hooks = (await (await client.get("/api/v1/webhooks", headers=headers)).json())["webhooks"]
            assert [h["id"] for h in hooks] == [own["webhook"]]
            gone = await client.get(f"/api/v1/webhooks/{other['webhook']}/deliveries", headers=headers)
            assert gone.status == 404
        foreign = await client.post(
            "/api/v1/contacts",
            json={"first_name": "x", "call_center_id": tenants.tenant(theirs).id},
            headers=headers,
        )
        assert foreign.status == 403
