"""The routing REST API on the full app: admin set-up, integrator push, agent accept, supervisor view."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.api.conftest import Tenants, api_app, api_client, tenants
from tests.store.backends import sqlite_store, sqlite_template

__all__ = ["api_app", "api_client", "sqlite_store", "sqlite_template", "tenants"]

Client = TestClient[Any, Any]


async def setup_alpha(client: Client, tenants: Tenants, capacity: int = 2) -> str:
    """A routing config, a queue and the alpha agent's profile; returns the agent's id."""
    admin = tenants.headers("admin")
    agent_id = tenants.alpha.user_ids["agent"]
    r = await client.put("/api/v1/routing/configs/chat", json={"push_timeout_s": 30}, headers=admin)
    assert r.status == 200, await r.text()
    r = await client.put("/api/v1/routing/queues/support", headers=admin,
                         json={"call_center": tenants.alpha.id, "routing_config": "chat"})
    assert r.status == 200, await r.text()
    r = await client.put(f"/api/v1/routing/agents/{agent_id}", headers=admin,
                         json={"call_center": tenants.alpha.id, "capacity": capacity, "queues": ["support"]})
    assert r.status == 200, await r.text()
    return agent_id


async def test_push_offer_accept_end_and_figures(api_client: Client, tenants: Tenants) -> None:
    agent_id = await setup_alpha(api_client, tenants)
    agent = tenants.headers("agent")
    r = await api_client.put("/api/v1/agents/me/status", json={"status": "Available"}, headers=agent)
    assert r.status == 200 and (await r.json())["status"] == "Available"

    r = await api_client.post("/api/v1/work-items", headers=tenants.headers("api_key"),
                              json={"channel": "chat", "queue": "support", "data": {"subject": "refund"}})
    assert r.status == 201, await r.text()
    item = await r.json()
    assert (item["state"], item["agent"], item["call_center"]) == ("offered", agent_id, tenants.alpha.id)

    r = await api_client.post(f"/api/v1/work-items/{item['id']}/accept", headers=agent)
    assert r.status == 200 and (await r.json())["state"] == "assigned"

    r = await api_client.get("/api/v1/supervisor/agents", headers=tenants.headers("supervisor"))
    [row] = (await r.json())["agents"]
    assert (row["agent"], row["used"], row["work"][0]["id"]) == (agent_id, 1, item["id"])

    r = await api_client.post(f"/api/v1/work-items/{item['id']}/end", headers=agent)
    assert (await r.json())["state"] == "closed"
    r = await api_client.get(f"/api/v1/work-items/{item['id']}", headers=tenants.headers("integrator"))
    assert (await r.json())["data"] == {"subject": "refund"}

    r = await api_client.get("/api/v1/supervisor/figures", headers=tenants.headers("supervisor"))
    [queue] = (await r.json())["queues"]
    assert (queue["queue"], queue["answered"], queue["handled"]) == ("support", 1, 1)
    assert queue["service_level"] == 1.0
    r = await api_client.get("/api/v1/supervisor/queues", headers=tenants.headers("supervisor"))
    [live] = (await r.json())["queues"]
    assert live["waiting"] == 0 and live["window"]["answered"] == 1


async def test_bad_bodies_get_400_naming_the_field(api_client: Client, tenants: Tenants) -> None:
    await setup_alpha(api_client, tenants)
    key = tenants.headers("api_key")
    cases = [
        ({"channel": "chat"}, "queue"),
        ({"channel": "chat", "queue": "support", "priority": "high"}, "priority"),
        ({"channel": "chat", "queue": "support", "size": 0}, "size"),
        ({"channel": "chat", "queue": "nowhere"}, "queue"),
        ({"channel": "voice", "queue": "support"}, "channel"),
        ({"channel": "chat", "queue": "support", "colour": "red"}, "colour"),
        ({"channel": "chat", "queue": "support", "skills": {"spanish": "fluent"}}, "skills.spanish"),
    ]
    for body, field in cases:
        r = await api_client.post("/api/v1/work-items", json=body, headers=key)
        assert (r.status, (await r.json()).get("field")) == (400, field), body
    r = await api_client.post("/api/v1/work-items", data=b"[1,2", headers=key)
    assert r.status == 400 and (await r.json())["field"] == "body"
    r = await api_client.put("/api/v1/routing/queues/q2", headers=tenants.headers("admin"),
                             json={"call_center": tenants.alpha.id, "routing_config": "missing"})
    assert (r.status, (await r.json())["field"]) == (400, "routing_config")
    r = await api_client.put("/api/v1/routing/configs/x", headers=tenants.headers("admin"),
                             json={"model": "random"})
    assert (r.status, (await r.json())["field"]) == (400, "model")
    r = await api_client.put("/api/v1/agents/me/status", json={"status": "Dancing"},
                             headers=tenants.headers("agent"))
    assert (r.status, (await r.json())["field"]) == (400, "status")


async def test_other_call_center_cannot_see_or_touch_the_item(api_client: Client, tenants: Tenants) -> None:
    await setup_alpha(api_client, tenants)
    r = await api_client.post("/api/v1/work-items", headers=tenants.headers("api_key"),
                              json={"channel": "email", "queue": "support"})
    item_id = (await r.json())["id"]
    r = await api_client.get(f"/api/v1/work-items/{item_id}", headers=tenants.headers("api_key", "beta"))
    assert r.status == 404
    beta_supervisor = tenants.headers("supervisor", "beta")
    r = await api_client.delete(f"/api/v1/work-items/{item_id}", headers=beta_supervisor)
    assert r.status == 404
    r = await api_client.post("/api/v1/work-items", headers=tenants.headers("api_key", "beta"),
                              json={"channel": "email", "queue": "support"})
    assert (r.status, (await r.json())["field"]) == (400, "queue")
    r = await api_client.get("/api/v1/supervisor/queues", headers=tenants.headers("supervisor", "beta"))
    assert (await r.json())["queues"] == []


async def test_decline_withdraw_and_supervisor_interventions(api_client: Client, tenants: Tenants) -> None:
    agent_id = await setup_alpha(api_client, tenants)
    agent, supervisor = tenants.headers("agent"), tenants.headers("supervisor")
    await api_client.put("/api/v1/agents/me/status", json={"status": "Available"}, headers=agent)
    r = await api_client.post("/api/v1/work-items", headers=tenants.headers("api_key"),
                              json={"id": "case-1", "channel": "case", "queue": "support"})
    assert (await r.json())["agent"] == agent_id
    r = await api_client.post("/api/v1/work-items/case-1/decline", json={"reason": 5}, headers=agent)
    assert (r.status, (await r.json())["field"]) == (400, "reason")
    r = await api_client.post("/api/v1/work-items/case-1/decline", json={"reason": "lunch"}, headers=agent)
    item = await r.json()
    # No other agent: it comes back to the same one (offer 2), never to two at once.
    assert item["offers"][0]["reason"] == "lunch" and (item["offer_no"], item["agent"]) == (2, agent_id)
    r = await api_client.put(f"/api/v1/supervisor/agents/{agent_id}/status", json={"status": "Break"},
                             headers=supervisor)
    assert (await r.json())["status"] == "Break"
    r = await api_client.get("/api/v1/work-items/case-1", headers=supervisor)
    assert (await r.json())["state"] in ("queued", "offered")
    r = await api_client.put("/api/v1/routing/queues/backlog", headers=tenants.headers("admin"),
                             json={"call_center": tenants.alpha.id, "routing_config": "chat"})
    r = await api_client.post("/api/v1/supervisor/work-items/case-1/move", json={"queue": "backlog"},
                              headers=supervisor)
    assert r.status == 200 and (await r.json())["queue"] == "backlog"
    r = await api_client.post("/api/v1/supervisor/work-items/case-1/move", json={}, headers=supervisor)
    assert (r.status, (await r.json())["field"]) == (400, "queue")
    r = await api_client.post("/api/v1/work-items/case-1/accept", headers=agent)
    assert r.status == 409
    r = await api_client.delete("/api/v1/work-items/case-1?reason=customer+left", headers=supervisor)
    assert (await r.json())["state"] == "withdrawn"
    r = await api_client.get("/api/v1/supervisor/figures?from=abc", headers=supervisor)
    assert (r.status, (await r.json())["field"]) == (400, "from")


async def test_agent_without_profile_and_wrong_roles(api_client: Client, tenants: Tenants) -> None:
    r = await api_client.put("/api/v1/agents/me/status", json={"status": "Available"},
                             headers=tenants.headers("agent"))
    assert r.status == 404
    r = await api_client.put("/api/v1/routing/configs/x", json={}, headers=tenants.headers("supervisor"))
    assert r.status == 403
    r = await api_client.post("/api/v1/work-items", json={}, headers=tenants.headers("agent"))
    assert r.status == 403
    r = await api_client.get("/api/v1/supervisor/queues")
    assert r.status == 401


async def test_admin_crud_of_routing_objects(api_client: Client, tenants: Tenants) -> None:
    await setup_alpha(api_client, tenants)
    admin = tenants.headers("admin")
    r = await api_client.put("/api/v1/routing/statuses/Chat only", json={"channels": ["chat"]}, headers=admin)
    assert r.status == 400 and (await r.json())["field"] == "name"  # names are identifiers
    r = await api_client.put("/api/v1/routing/statuses/ChatOnly", json={"channels": ["chat"]}, headers=admin)
    assert (await r.json()) == {"name": "ChatOnly", "channels": ["chat"]}
    r = await api_client.put("/api/v1/routing/skills/spanish", json={"description": "Spanish"}, headers=admin)
    assert r.status == 200
    r = await api_client.put("/api/v1/routing/queues/beta-q", headers=admin,
                             json={"call_center": tenants.beta.id, "routing_config": "chat"})
    r = await api_client.get("/api/v1/routing/queues", headers=tenants.headers("supervisor"))
    assert [q["id"] for q in (await r.json())["queues"]] == ["support"]  # not Beta's
    r = await api_client.get("/api/v1/routing/statuses", headers=tenants.headers("supervisor"))
    assert "ChatOnly" in [s["name"] for s in (await r.json())["statuses"]]
    r = await api_client.delete("/api/v1/routing/configs/chat", headers=admin)
    assert r.status == 409  # queues use it
    r = await api_client.delete("/api/v1/routing/queues/beta-q", headers=admin)
    assert r.status == 200
    r = await api_client.delete("/api/v1/routing/skills/nope", headers=admin)
    assert r.status == 404
    r = await api_client.get("/api/v1/routing/widgets", headers=admin)
    assert r.status == 404
    r = await api_client.put(f"/api/v1/routing/agents/{tenants.alpha.user_ids['agent']}", headers=admin,
                             json={"call_center": tenants.alpha.id, "capacity": 0})
    assert (r.status, (await r.json())["field"]) == (400, "capacity")
