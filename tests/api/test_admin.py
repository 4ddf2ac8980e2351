"""Admin REST API: call centers, users, membership, DIDs, API keys, the audit log, and bad bodies."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from cti_server.api.keys import BUS_KEY
from cti_server.events import Event
from tests.api.conftest import PASSWORD, Tenants

Client = TestClient[Any, Any]


async def test_call_center_crud_and_audit(api_client: Client, tenants: Tenants) -> None:
    admin = tenants.headers("admin")
    resp = await api_client.post(
        "/api/v1/call-centers",
        headers=admin,
        json={
            "name": "Gamma",
            "phone_region": "de",
            "recording_policy": "all",
            "screen_pop_rules": {"no_match": "search"},
        },
    )
    assert resp.status == 201
    gamma = await resp.json()
    assert gamma["phone_region"] == "DE"
    assert gamma["screen_pop_rules"] == {
        "single_match": "record",
        "multiple_matches": "list",
        "no_match": "search",
    }

    resp = await api_client.patch(
        f"/api/v1/call-centers/{gamma['id']}", headers=admin, json={"recording_policy": "inbound"}
    )
    assert (await resp.json())["recording_policy"] == "inbound"

    listed = await (await api_client.get("/api/v1/call-centers", headers=admin)).json()
    assert [(c["name"], c["member_count"]) for c in listed["call_centers"]] == [
        ("Alpha", 3),
        ("Beta", 3),
        ("Gamma", 0),
    ]

    assert (await api_client.delete(f"/api/v1/call-centers/{gamma['id']}", headers=admin)).status == 200
    assert (await api_client.get(f"/api/v1/call-centers/{gamma['id']}", headers=admin)).status == 404

    audit = await (
        await api_client.get("/api/v1/audit", headers=admin, params={"target_id": gamma["id"]})
    ).json()
    assert [e["action"] for e in audit["entries"]] == [
        "call_center.delete",
        "call_center.update",
        "call_center.create",
    ]
    assert audit["entries"][0]["actor"]["name"] == "admin"


async def test_bad_bodies_get_400_naming_the_field(api_client: Client, tenants: Tenants) -> None:
    admin = tenants.headers("admin")
    cases: list[tuple[str, str, Any, str]] = [
        ("POST", "/api/v1/call-centers", {"phone_region": "US"}, "name"),
        ("POST", "/api/v1/call-centers", {"name": "X", "phone_region": "ZZ"}, "phone_region"),
        ("POST", "/api/v1/call-centers", {"name": "X", "recording_policy": "sometimes"}, "recording_policy"),
        (
            "POST",
            "/api/v1/call-centers",
            {"name": "X", "screen_pop_rules": {"no_match": "dance"}},
            "screen_pop_rules.no_match",
        ),
        ("POST", "/api/v1/call-centers", {"name": 7}, "name"),
        ("POST", "/api/v1/call-centers", [1, 2], "body"),
        ("PATCH", f"/api/v1/call-centers/{tenants.alpha.id}", {"colour": "red"}, "colour"),
        ("POST", "/api/v1/users", {"username": "x y", "role": "agent"}, "username"),
        ("POST", "/api/v1/users", {"username": "newbie", "role": "boss"}, "role"),
        ("POST", "/api/v1/users", {"username": "newbie", "role": "agent", "password": "short"}, "password"),
        (
            "POST",
            "/api/v1/users",
            {"username": "newbie", "role": "agent", "sip_username": "2001"},
            "sip_password",
        ),
        (
            "POST",
            "/api/v1/users",
            {"username": "newbie", "role": "agent", "call_center_id": "nope"},
            "call_center_id",
        ),
        ("PATCH", f"/api/v1/users/{tenants.alpha.user_ids['agent']}", {"active": "yes"}, "active"),
        ("POST", f"/api/v1/call-centers/{tenants.alpha.id}/dids", {"number": "call me"}, "number"),
        ("POST", f"/api/v1/call-centers/{tenants.alpha.id}/dids", {}, "number"),
    ]
    for method, path, body, field in cases:
        resp = await api_client.request(method, path, json=body, headers=admin)
        assert resp.status == 400, (method, path, body, resp.status)
        answer = await resp.json()
        assert answer["field"] == field, (body, answer)
        assert answer["error"]


async def test_conflicts_get_409(api_client: Client, tenants: Tenants) -> None:
    admin = tenants.headers("admin")
    resp = await api_client.post("/api/v1/call-centers", headers=admin, json={"name": "Beta"})
    assert resp.status == 409 and (await resp.json())["field"] == "name"
    resp = await api_client.post(
        "/api/v1/users", headers=admin, json={"username": "alpha-agent", "role": "agent"}
    )
    assert resp.status == 409 and (await resp.json())["field"] == "username"


async def test_user_lifecycle_with_sip_credentials(api_client: Client, tenants: Tenants) -> None:
    admin = tenants.headers("admin")
    resp = await api_client.post(
        "/api/v1/users",
        headers=admin,
        json={
            "username": "carol",
            "role": "agent",
            "password": "carol-secret",
            "display_name": "Carol",
            "sip_username": "2001",
            "sip_password": "desk-phone-pw",
            "call_center_id": tenants.beta.id,
        },
    )
    assert resp.status == 201
    carol = await resp.json()
    assert carol["call_center_id"] == tenants.beta.id and carol["sip_username"] == "2001"
    assert not {"password_hash", "sip_ha1_md5", "sip_ha1_sha256"} & set(carol)

    login = await api_client.post("/api/v1/login", json={"username": "carol", "password": "carol-secret"})
    token = (await login.json())["token"]
    resp = await api_client.patch(
        f"/api/v1/users/{carol['id']}", headers=admin, json={"password": "changed-pw!"}
    )
    assert resp.status == 200
    # A new password ends the user's sessions.
    assert (await api_client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})).status == 401
    assert (await api_client.post("/api/v1/login", json={"username": "carol", "password": "changed-pw!"})).ok

    assert (await api_client.delete(f"/api/v1/users/{carol['id']}", headers=admin)).status == 200
    assert (await api_client.get(f"/api/v1/users/{carol['id']}", headers=admin)).status == 404
    resp = await api_client.delete(f"/api/v1/users/{tenants.admin_id}", headers=admin)
    assert resp.status == 400


async def test_assigning_moves_a_user_and_the_admin_sees_who_is_where(
    api_client: Client, tenants: Tenants
) -> None:
    admin = tenants.headers("admin")
    agent_id = tenants.alpha.user_ids["agent"]
    events: list[Event] = []
    api_client.app[BUS_KEY].subscribe("membership.*", events.append)
    resp = await api_client.put(f"/api/v1/call-centers/{tenants.beta.id}/members/{agent_id}", headers=admin)
    assert resp.status == 200
    assert (await resp.json())["previous_call_center_id"] == tenants.alpha.id

    users = {
        u["username"]: u["call_center_id"]
        for u in (await (await api_client.get("/api/v1/users", headers=admin)).json())["users"]
    }
    assert users["alpha-agent"] == tenants.beta.id
    assert users["admin"] is None
    beta_members = await (
        await api_client.get(f"/api/v1/call-centers/{tenants.beta.id}/members", headers=admin)
    ).json()
    assert "alpha-agent" in {m["username"] for m in beta_members["members"]}
    # The moved agent now sees Beta, and only Beta.
    me = await (await api_client.get("/api/v1/me", headers=tenants.headers("agent"))).json()
    assert me["call_center_id"] == tenants.beta.id

    audit = await (
        await api_client.get(
            "/api/v1/audit", headers=admin, params={"action": "membership.assign", "target_id": agent_id}
        )
    ).json()
    assert audit["entries"][0]["details"]["previous_call_center_id"] == tenants.alpha.id
    assert audit["entries"][0]["call_center_id"] == tenants.beta.id

    # Unassigning from a call center the user is not in is a 404; from the right one it works.
    path = f"/api/v1/call-centers/{tenants.alpha.id}/members/{agent_id}"
    assert (await api_client.delete(path, headers=admin)).status == 404
    path = f"/api/v1/call-centers/{tenants.beta.id}/members/{agent_id}"
    assert (await api_client.delete(path, headers=admin)).status == 200
    assert [
        (e.topic, e.data["call_center_id"], e.data["previous_call_center_id"], e.call_center) for e in events
    ] == [
        ("membership.assigned", tenants.beta.id, tenants.alpha.id, tenants.beta.id),
        ("membership.unassigned", None, tenants.beta.id, tenants.beta.id),
    ]
    unassigned = await (
        await api_client.get("/api/v1/users", headers=admin, params={"unassigned": "true"})
    ).json()
    assert {u["username"] for u in unassigned["users"]} == {"admin", "alpha-agent"}
    # A user in no call center may sign in but sees nothing scoped.
    assert (await api_client.get("/api/v1/users", headers=tenants.headers("agent"))).status == 403


async def test_admins_cannot_be_assigned(api_client: Client, tenants: Tenants) -> None:
    resp = await api_client.put(
        f"/api/v1/call-centers/{tenants.alpha.id}/members/{tenants.admin_id}",
        headers=tenants.headers("admin"),
    )
    assert resp.status == 400 and (await resp.json())["field"] == "user_id"


async def test_dids_are_stored_in_e164_with_the_call_center_region(
    api_client: Client, tenants: Tenants
) -> None:
    admin = tenants.headers("admin")
    resp = await api_client.post(
        f"/api/v1/call-centers/{tenants.beta.id}/dids",
        headers=admin,
        json={"number": "020 7946 0000", "description": "London"},
    )
    assert resp.status == 201
    did = await resp.json()
    assert did["number"] == "+442079460000"
    resp = await api_client.post(
        f"/api/v1/call-centers/{tenants.alpha.id}/dids", headers=admin, json={"number": "+44 20 7946 0000"}
    )
    assert resp.status == 409
    assert (await api_client.delete(f"/api/v1/dids/{did['id']}", headers=admin)).status == 200
    assert (await (await api_client.get("/api/v1/dids", headers=admin)).json())["dids"] == []


async def test_api_key_is_shown_once_and_listed_by_prefix(api_client: Client, tenants: Tenants) -> None:
    admin = tenants.headers("admin")
    resp = await api_client.post(
        f"/api/v1/call-centers/{tenants.alpha.id}/api-keys", headers=admin, json={"name": "Zendesk"}
    )
    assert resp.status == 201
    created = await resp.json()
    key = created["key"]
    assert key.startswith(f"cti_{created['prefix']}_")
    listed = await (
        await api_client.get("/api/v1/api-keys", headers=admin, params={"call_center_id": tenants.alpha.id})
    ).json()
    assert key not in str(listed)
    assert {k["prefix"] for k in listed["api_keys"]} >= {created["prefix"]}
    assert "key" not in listed["api_keys"][0]

    me = await api_client.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert (await me.json())["call_center_id"] == tenants.alpha.id
    assert (await api_client.delete(f"/api/v1/api-keys/{created['id']}", headers=admin)).status == 200
    assert (await api_client.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"})).status == 401


async def test_login_page_flow_for_the_admin_page(api_client: Client, tenants: Tenants) -> None:
    page = await api_client.get("/admin/")
    assert page.status == 200 and "admin.js" in await page.text()
    assert (await api_client.get("/admin/static/admin.js")).status == 200
    resp = await api_client.post("/api/v1/login", json={"username": "admin", "password": PASSWORD})
    assert resp.status == 200
    # The cookie alone now authorizes the API calls the page makes.
    assert (await api_client.get("/api/v1/call-centers")).status == 200
