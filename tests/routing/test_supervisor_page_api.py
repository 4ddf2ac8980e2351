"""``GET /api/v1/supervisor/work-items`` (the items the supervisor page can move) and the page's files."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.api.conftest import Tenants, api_app, api_client, tenants
from tests.routing.test_api import setup_alpha
from tests.store.backends import sqlite_store, sqlite_template

__all__ = ["api_app", "api_client", "sqlite_store", "sqlite_template", "tenants"]

Client = TestClient[Any, Any]
WAITING = "/api/v1/supervisor/work-items"


async def push(client: Client, tenants: Tenants, tenant: str, **fields: Any) -> dict[str, Any]:
    r = await client.post("/api/v1/work-items", headers=tenants.headers("api_key", tenant), json=fields)
    assert r.status == 201, await r.text()
    item: dict[str, Any] = await r.json()
    return item


async def listed(client: Client, headers: dict[str, str], query: str = "") -> list[tuple[str, str]]:
    r = await client.get(WAITING + query, headers=headers)
    assert r.status == 200, await r.text()
    body = await r.json()
    assert isinstance(body["server_time"], float)
    return [(item["id"], item["queue"]) for item in body["items"]]


async def test_waiting_items_are_listed_per_call_center_in_serving_order(api_client: Client,
                                                                         tenants: Tenants) -> None:
    await setup_alpha(api_client, tenants, capacity=1)
    admin = tenants.headers("admin")
    for queue, center in (("backlog", tenants.alpha.id), ("beta-q", tenants.beta.id)):
        r = await api_client.put(f"/api/v1/routing/queues/{queue}", headers=admin,
                                 json={"call_center": center, "routing_config": "chat"})
        assert r.status == 200, await r.text()
    await push(api_client, tenants, "alpha", id="low", channel="chat", queue="support",
               data={"subject": "Refund", "caller": "+14155550101"})
    await push(api_client, tenants, "alpha", id="urgent", channel="email", queue="support", priority=5,
               data={"caller": "+14155550102"})
    await push(api_client, tenants, "alpha", id="later", channel="case", queue="backlog")
    await push(api_client, tenants, "beta", id="theirs", channel="chat", queue="beta-q")

    supervisor = tenants.headers("supervisor")
    assert await listed(api_client, supervisor) == [("later", "backlog"), ("urgent", "support"),
                                                    ("low", "support")]
    r = await api_client.get(WAITING, headers=supervisor)
    first = {item["id"]: item for item in (await r.json())["items"]}
    assert (first["low"]["label"], first["urgent"]["label"], first["later"]["label"]) == (
        "Refund", "+14155550102", None)
    assert first["low"]["state"] == "queued" and first["low"]["queued_at"] > 0
    assert "data" not in first["low"]  # the summary, not the payload
    assert await listed(api_client, supervisor, "?queue=backlog") == [("later", "backlog")]
    first_served = [("later", "backlog"), ("urgent", "support")]
    assert await listed(api_client, supervisor, "?per_queue=1") == first_served
    for bad in ("0", "501", "x"):
        r = await api_client.get(f"{WAITING}?per_queue={bad}", headers=supervisor)
        assert (r.status, (await r.json())["field"]) == (400, "per_queue")
    # A supervisor's scope is their own call center, whatever they ask for.
    beta = tenants.headers("supervisor", "beta")
    assert await listed(api_client, beta, f"?call_center={tenants.alpha.id}") == [("theirs", "beta-q")]
    assert await listed(api_client, beta) == [("theirs", "beta-q")]
    assert len(await listed(api_client, admin)) == 4
    assert await listed(api_client, admin, f"?call_center={tenants.beta.id}") == [("theirs", "beta-q")]

    # Offered items can still be moved and are listed; an accepted one is not.
    agent = tenants.headers("agent")
    r = await api_client.put("/api/v1/agents/me/status", json={"status": "Available"}, headers=agent)
    assert r.status == 200
    r = await api_client.get(WAITING, headers=supervisor)
    states = {item["id"]: (item["state"], item["agent"]) for item in (await r.json())["items"]}
    assert states["urgent"] == ("offered", tenants.alpha.user_ids["agent"])
    r = await api_client.post("/api/v1/work-items/urgent/accept", headers=agent)
    assert r.status == 200
    assert ("urgent", "support") not in await listed(api_client, supervisor)


async def test_waiting_items_refuse_agents_and_strangers(api_client: Client, tenants: Tenants) -> None:
    r = await api_client.get(WAITING, headers=tenants.headers("agent"))
    assert r.status == 403
    r = await api_client.get(WAITING, headers=tenants.headers("integrator"))
    assert r.status == 403
    r = await api_client.get(WAITING)
    assert r.status == 401


async def test_the_page_and_its_assets_are_served(api_client: Client) -> None:
    r = await api_client.get("/supervisor", allow_redirects=False)
    assert (r.status, r.headers["Location"]) == (302, "/supervisor/")
    r = await api_client.get("/supervisor/")
    assert r.status == 200 and "/supervisor/static/supervisor.js" in await r.text()
    for asset in ("supervisor.js", "supervisor.css"):
        r = await api_client.get(f"/supervisor/static/{asset}")
        assert r.status == 200, asset
    r = await api_client.get("/common/static/live.js")
    assert r.status == 200 and "class LiveEvents" in await r.text()
