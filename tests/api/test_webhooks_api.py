"""Webhooks end to end: a real aiohttp receiver on 127.0.0.1 checks every signature; a 500 is retried.

The subscription is made through the REST API, the event comes from the bus like a call's would, and the
deliveries list shows each attempt as it was recorded in the store. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from cti_server.api import create_app
from cti_server.api.keys import BUS_KEY
from cti_server.api.webhooks import WEBHOOKS_KEY
from cti_server.events import Event
from cti_server.store import Store
from cti_server.store.passwords import PasswordHashing
from cti_server.webhooks.signing import SignatureError, verify
from tests.api.conftest import api_config, make_tenants

Client = TestClient[Any, Any]
FAST_RETRIES = {
    "webhooks": {
        "backoff_base": 0.05,
        "backoff_cap": 0.1,
        "poll_interval": 0.05,
        "timeout": 2.0,
        "max_attempts": 3,
    }
}


class Receiver:
    """An integrator's endpoint: answers 500 to the first ``fail_first`` requests, then 200."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.secret = ""
        self.received: list[dict[str, Any]] = []
        self.bad_signatures: list[str] = []
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            verify(
                self.secret,
                request.headers.get("X-CTI-Timestamp"),
                request.headers.get("X-CTI-Signature"),
                body,
                now=time.time(),
            )
        except SignatureError as exc:
            self.bad_signatures.append(exc.reason)
            return web.Response(status=401)
        self.received.append({"topic": request.headers["X-CTI-Event"], "body": json.loads(body)})
        if len(self.received) <= self.fail_first:
            return web.Response(status=500, text="try later")
        self.arrived.set()
        return web.Response(status=204)


@pytest.fixture
async def setup(store: Store, aiohttp_client: Any, aiohttp_server: Any) -> Any:
    config = api_config(screenpop=FAST_RETRIES)
    tenants = await make_tenants(store, PasswordHashing(config.auth))
    app = create_app(config, store=store)
    client: Client = await aiohttp_client(app)
    receiver = Receiver(fail_first=1)
    endpoint = web.Application()
    endpoint.router.add_post("/hook", receiver.handle)
    server: TestServer = await aiohttp_server(endpoint, host="127.0.0.1")
    await app[WEBHOOKS_KEY].start()
    yield client, tenants, app, receiver, str(server.make_url("/hook"))
    await app[WEBHOOKS_KEY].stop()


async def test_signed_delivery_is_retried_after_a_500_and_recorded(setup: Any) -> None:
    client, tenants, app, receiver, url = setup
    headers = tenants.headers("api_key")
    resp = await client.post("/api/v1/webhooks", json={"url": url, "events": ["call.*"]}, headers=headers)
    assert resp.status == 201
    subscription = await resp.json()
    receiver.secret = subscription["secret"]
    listed = await (await client.get("/api/v1/webhooks", headers=headers)).json()
    assert "secret" not in listed["webhooks"][0]

    app[BUS_KEY].publish(Event("work_item.offered", {"x": 1}, call_center=tenants.alpha.id))  # not subscribed
    app[BUS_KEY].publish(Event("call.ended", {"call_id": "c-1"}, call_center=tenants.beta.id))  # other tenant
    app[BUS_KEY].publish(
        Event("call.ended", {"call_id": "c-2", "reason": "bye"}, call_center=tenants.alpha.id)
    )
    await asyncio.wait_for(receiver.arrived.wait(), timeout=10)

    assert receiver.bad_signatures == []
    assert [r["topic"] for r in receiver.received] == ["call.ended", "call.ended"]
    body = receiver.received[1]["body"]
    assert body["data"] == {"call_id": "c-2", "reason": "bye"} and body["call_center_id"] == tenants.alpha.id
    assert receiver.received[0]["body"]["id"] == body["id"]  # the retry is the same event

    for _ in range(100):  # the worker records the 2xx just after the receiver answered
        deliveries = await (
            await client.get(f"/api/v1/webhooks/{subscription['id']}/deliveries", headers=headers)
        ).json()
        if deliveries["deliveries"] and deliveries["deliveries"][0]["status"] == "delivered":
            break
        await asyncio.sleep(0.05)
    (delivery,) = deliveries["deliveries"]
    assert (delivery["status"], delivery["attempts"], delivery["response_status"]) == ("delivered", 2, 204)
    assert [(a["number"], a["response_status"]) for a in delivery["attempt_log"]] == [(1, 500), (2, 204)]
    assert delivery["attempt_log"][0]["response_body"] == "try later"
    other = await client.get(
        f"/api/v1/webhooks/{subscription['id']}", headers=tenants.headers("api_key", "beta")
    )
    assert other.status == 404


async def test_ping_and_giving_up_after_max_attempts(setup: Any) -> None:
    client, tenants, _app, receiver, url = setup
    receiver.fail_first = 99
    headers = tenants.headers("integrator")
    subscription = await (
        await client.post(
            "/api/v1/webhooks", json={"url": url, "events": ["*"], "secret": "s" * 20}, headers=headers
        )
    ).json()
    receiver.secret = "s" * 20
    resp = await client.post(f"/api/v1/webhooks/{subscription['id']}/ping", headers=headers)
    assert resp.status == 202
    for _ in range(200):
        deliveries = await (
            await client.get(
                f"/api/v1/webhooks/{subscription['id']}/deliveries?status=failed", headers=headers
            )
        ).json()
        if deliveries["deliveries"]:
            break
        await asyncio.sleep(0.05)
    (delivery,) = deliveries["deliveries"]
    assert delivery["topic"] == "webhook.ping" and delivery["attempts"] == 3
    assert [a["response_status"] for a in delivery["attempt_log"]] == [500, 500, 500]
    rotated = await (
        await client.post(f"/api/v1/webhooks/{subscription['id']}/rotate-secret", headers=headers)
    ).json()
    assert rotated["secret"].startswith("whsec_")
    assert (await client.delete(f"/api/v1/webhooks/{subscription['id']}", headers=headers)).status == 204
