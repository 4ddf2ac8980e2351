"""One inbound call end to end with sipp: trunk -> screen pop -> queue -> agent's phone -> call log.

The trunk is a sipp UAC on 127.0.0.2 calling a DID (PAI +15557770000, real G.711 A-law RTP); agents are the
store users of the configured SIP users 1001/1002 (imported at start), members of the call center
"support", with routing profiles on the queue "support" set through the admin REST API and their presence
set through the agents' REST API; their desk phones are sipp UASs registered with digest auth.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from cti_server.api.keys import STORE_KEY
from cti_server.events import Event
from cti_server.store.audit import CLI_ACTOR
from cti_server.store.credentials import create_session
from cti_server.store.directory import assign, create_call_center, create_user
from cti_server.store.tenancy import User
from tests.interop.calls.lab import Lab, calls_lab

pytestmark = pytest.mark.interop

QUEUE_DID = "15550300"
USER_DID = "15550100"
CALLER = "+15557770000"


@dataclass
class CallCenterSetup:
    """The store and routing set-up of one test: tokens, agent ids, the work-item events seen."""

    lab: Lab
    call_center_id: str
    admin: str
    agents: dict[str, tuple[str, str]]  # SIP user -> (user id, bearer token)
    items: list[Event] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.lab.server.web.port}"

    async def http(self, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as session, session.request(
                method, self.base + path, json=body, headers={"Authorization": f"Bearer {token}"}) as resp:
            return resp.status, await resp.json()

    async def make_available(self, sip_user: str) -> None:
        status, body = await self.http("PUT", "/api/v1/agents/me/status", self.agents[sip_user][1],
                                       {"status": "Available"})
        assert status == 200, body

    def item_trail(self) -> list[tuple[str, str | None]]:
        return [(e.topic.removeprefix("work_item."), e.data.get("agent")) for e in self.items]

    async def wait_item(self, topic: str, seconds: float = 15.0) -> Event:
        async with asyncio.timeout(seconds):
            while True:
                for event in self.items:
                    if event.topic == topic:
                        return event
                await asyncio.sleep(0.05)


async def set_up(lab: Lab, push_timeout_s: float = 10.0) -> CallCenterSetup:
    store = lab.server.app[STORE_KEY]
    async with store.session() as db:
        center = await create_call_center(db, CLI_ACTOR, "support", "US")
        admin = await create_user(db, CLI_ACTOR, "queue-admin", "admin")
        admin_token = await create_session(db, admin, 3600)
        agents = {}
        for sip_user in ("1001", "1002"):
            user = await db.scalar(select(User).where(User.sip_username == sip_user))
            assert user is not None, "configured SIP users are imported into the store at start"
            await assign(db, CLI_ACTOR, user, center)
            agents[sip_user] = (user.id, await create_session(db, user, 3600))
    setup = CallCenterSetup(lab, center.id, admin_token, agents)
    lab.server.bus.subscribe("work_item.*", setup.items.append)
    for path, body in [
        ("/api/v1/routing/configs/voice", {"push_timeout_s": push_timeout_s}),
        ("/api/v1/routing/queues/support", {"call_center": center.id, "routing_config": "voice"}),
        *[(f"/api/v1/routing/agents/{uid}", {"call_center": center.id, "capacity": 1, "queues": ["support"]})
          for uid, _token in agents.values()],
    ]:
        status, answer = await setup.http("PUT", path, admin_token, body)
        assert status == 200, (path, answer)
    return setup


async def add_contact(setup: CallCenterSetup) -> str:
    status, contact = await setup.http("POST", "/api/v1/contacts", setup.admin, {
        "call_center_id": setup.call_center_id, "first_name": "Ada", "last_name": "Caller",
        "phones": [{"number": CALLER, "kind": "mobile"}]})
    assert status == 201, contact
    contact_id: str = contact["id"]
    return contact_id


async def call_logs(setup: CallCenterSetup, path: str, seconds: float = 10.0) -> list[dict[str, Any]]:
    """The call logs at ``path`` once there is one (the writer runs after call.ended)."""
    async with asyncio.timeout(seconds):
        while True:
            status, body = await setup.http("GET", path, setup.admin)
            assert status == 200, body
            if body["call_logs"]:
                logs: list[dict[str, Any]] = body["call_logs"]
                return logs
            await asyncio.sleep(0.1)


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Any]:
    async with calls_lab(tmp_path) as start:
        yield start


def queue_lab_config() -> dict[str, Any]:
    return {"dids": [{"number": f"+{QUEUE_DID}", "call_center": "support", "queue": "support", "priority": 3},
                     {"number": f"+{USER_DID}", "call_center": "support", "users": ["1001"]}]}


async def two_agents(start: Any, first_phone: str, second_phone: str = "phone_answer.xml",
                     **calls: Any) -> tuple[Lab, CallCenterSetup, Any, Any]:
    """A lab with agents 1001 and 1002 Available (least active, then longest available: 1001 is offered
    a call first) and their phones running ``first_phone`` and ``second_phone``."""
    lab: Lab = await start(**queue_lab_config())
    setup = await set_up(lab, **calls)
    await setup.make_available("1001")
    await setup.make_available("1002")
    return lab, setup, await lab.phone("1001", first_phone), await lab.phone("1002", second_phone)


async def test_screen_pop_rides_on_a_direct_call_and_its_log_lands_on_the_contact(lab: Any) -> None:
    lab = await lab(**queue_lab_config())
    setup = await set_up(lab)
    contact_id = await add_contact(setup)
    phone = await lab.phone("1001", "phone_answer.xml")
    trunk = await lab.trunk_call("trunk_call.xml", "-d", "1500", service=USER_DID)
    await trunk.ok()
    await phone.ok()
    ended = await lab.ended()
    assert "call.screenpop" in lab.topics()
    assert ended.data["screenpop"]["contact_id"] == contact_id
    assert ended.data["screenpop"]["outcome"] == "single"
    [log] = await call_logs(setup, f"/api/v1/contacts/{contact_id}/call-logs")
    assert log["call_id"] == ended.data["call_id"] and log["direction"] == "inbound"


async def test_queue_call_rings_the_available_agent_and_is_bridged(lab: Any) -> None:
    lab = await lab(**queue_lab_config())
    setup = await set_up(lab)
    contact_id = await add_contact(setup)
    await setup.make_available("1001")
    phone = await lab.phone("1001", "phone_answer.xml")
    trunk = await lab.trunk_call("trunk_call.xml", "-d", "2500", service=QUEUE_DID)
    await trunk.ok()
    await phone.ok()
    ended = await lab.ended()
    agent_id = setup.agents["1001"][0]
    await setup.wait_item("work_item.closed")
    assert setup.item_trail() == [("queued", None), ("offered", agent_id), ("accepted", agent_id),
                                  ("closed", agent_id)]
    queued = setup.items[0].data["item"]
    assert (queued["channel"], queued["queue"], queued["priority"], queued["record"]) == \
        ("voice", "support", 3, contact_id)
    assert ended.data["answered_by"] == "1001" and ended.data["target"]["agent"] == agent_id
    status, item = await setup.http("GET", f"/api/v1/work-items/{ended.data['call_id']}", setup.admin)
    assert status == 200, item
    assert (item["state"], item["agent"], [o["outcome"] for o in item["offers"]]) == \
        ("closed", agent_id, ["accepted"])
    media = ended.data["media"]
    # Bridged: the trunk's audio reached the agent's phone and the phone's echo came back.
    assert media["a"]["packets_received"] > 20 and media["b"]["packets_sent"] > 20, media
    assert media["b"]["packets_received"] > 20 and media["a"]["packets_sent"] > 20, media
    [log] = await call_logs(setup, f"/api/v1/contacts/{contact_id}/call-logs")
    assert log["call_id"] == ended.data["call_id"]


async def test_busy_agent_phone_declines_and_the_next_agent_gets_the_call(lab: Any) -> None:
    lab, setup, busy, answering = await two_agents(lab, "phone_busy.xml")
    trunk = await lab.trunk_call("trunk_call.xml", "-d", "2500", service=QUEUE_DID)
    declined = await setup.wait_item("work_item.declined")
    await busy.ok()
    await trunk.ok()
    await answering.ok()
    ended = await lab.ended()
    first, second = setup.agents["1001"][0], setup.agents["1002"][0]
    assert declined.data["agent"] == first and "486" in declined.data["reason"]
    await setup.wait_item("work_item.closed")
    trail = setup.item_trail()
    assert trail == [("queued", None), ("offered", first), ("declined", first), ("offered", second),
                     ("accepted", second), ("closed", second)], trail
    assert ended.data["answered_by"] == "1002"
    # The unmatched caller's log is findable by number.
    [log] = await call_logs(setup, f"/api/v1/call-logs?number={CALLER}")
    assert log["contact_id"] is None and log["call_id"] == ended.data["call_id"]


async def test_caller_hanging_up_while_queued_abandons_the_item(lab: Any) -> None:
    lab = await lab(**queue_lab_config())
    setup = await set_up(lab)
    trunk = await lab.trunk_call("trunk_call.xml", "-d", "500", service=QUEUE_DID)
    await trunk.ok()
    ended = await lab.ended()
    withdrawn = await setup.wait_item("work_item.withdrawn")
    assert withdrawn.data["reason"] == "abandoned"
    assert setup.item_trail() == [("queued", None), ("withdrawn", None)]
    assert ended.data["reason"] == "caller_hangup" and ended.data["answered_by"] is None
    # While waiting the caller heard music: packets went to the trunk.
    assert ended.data["media"]["a"]["packets_sent"] > 0, ended.data["media"]


async def test_agent_phone_not_answering_in_the_push_timeout_goes_to_the_next_agent(lab: Any) -> None:
    lab, setup, ringing, answering = await two_agents(lab, "phone_ring_cancelled.xml", push_timeout_s=1.5)
    trunk = await lab.trunk_call("trunk_call.xml", "-d", "5000", service=QUEUE_DID)
    await ringing.ok()  # its INVITE was cancelled when the offer timed out
    await trunk.ok()
    await answering.ok()
    ended = await lab.ended()
    first, second = setup.agents["1001"][0], setup.agents["1002"][0]
    await setup.wait_item("work_item.closed")
    assert setup.item_trail() == [("queued", None), ("offered", first), ("timed_out", first),
                                  ("offered", second), ("accepted", second), ("closed", second)]
    assert ended.data["answered_by"] == "1002"



def ringing_agents(lab: Any) -> list[dict[str, Any]]:
    """``target.ringing`` of each call.ringing event: who was rung, in order."""
    return [e.data["target"]["ringing"] for e in lab.events if e.topic == "call.ringing"]


def rings(lab: Any) -> asyncio.Event:
    """Set at the first call.ringing (an agent's phone rings); subscribe before the call starts."""
    rang = asyncio.Event()
    lab.server.bus.subscribe("call.ringing", lambda _event: rang.set())
    return rang


async def test_accepting_on_the_page_while_the_phone_rings_connects_when_it_answers(lab: Any) -> None:
    # The agent presses Accept (REST) while the desk phone rings; the phone answers 4 s later and that
    # answer is bridged: no second accept, no hang-up, RTP both ways.
    lab = await lab(**queue_lab_config())
    setup = await set_up(lab)
    await setup.make_available("1001")
    phone = await lab.phone("1001", "phone_ring_then_answer.xml")
    rang = rings(lab)
    trunk = await lab.trunk_call("trunk_call.xml", "-d", "7000", service=QUEUE_DID)
    agent_id, token = setup.agents["1001"]
    offered = await setup.wait_item("work_item.offered")
    await asyncio.wait_for(rang.wait(), 10)
    item_id = offered.data["item"]["id"]
    status, item = await setup.http("POST", f"/api/v1/work-items/{item_id}/accept", token)
    assert status == 200 and item["state"] == "assigned", item  # before the phone answered
    await trunk.ok()
    await phone.ok()
    ended = await lab.ended()
    await setup.wait_item("work_item.closed")
    assert setup.item_trail() == [("queued", None), ("offered", agent_id), ("accepted", agent_id),
                                  ("closed", agent_id)]
    assert ringing_agents(lab) == [{"agent": agent_id, "user": "1001"}]
    assert ended.data["answered_by"] == "1001" and ended.data["target"]["agent"] == agent_id
    assert ended.data["reason"] == "caller_hangup", ended.data
    media = ended.data["media"]
    assert media["a"]["packets_received"] > 20 and media["b"]["packets_sent"] > 20, media
    assert media["b"]["packets_received"] > 20 and media["a"]["packets_sent"] > 20, media


@pytest.mark.parametrize("first_phone", [
    "phone_ring_cancelled.xml",  # passes only if it gets CANCEL at once (200, 487, ACK)
    "phone_cancelled_answers_anyway.xml",  # its 200 crosses the CANCEL: passes only on ACK then BYE
])
async def test_declining_on_the_page_cancels_the_phone_and_rings_the_next_agent(
        lab: Any, first_phone: str) -> None:
    lab, setup, declining, answering = await two_agents(lab, first_phone)
    rang = rings(lab)
    trunk = await lab.trunk_call("trunk_call.xml", "-d", "4000", service=QUEUE_DID)
    first, token = setup.agents["1001"]
    second = setup.agents["1002"][0]
    offered = await setup.wait_item("work_item.offered")
    assert offered.data["agent"] == first
    await asyncio.wait_for(rang.wait(), 10)
    status, item = await setup.http("POST", f"/api/v1/work-items/{offered.data['item']['id']}/decline",
                                    token, {"reason": "on a break"})
    assert status == 200, item
    await declining.ok()
    await answering.ok()
    await trunk.ok()
    ended = await lab.ended()
    await setup.wait_item("work_item.closed")
    assert setup.item_trail() == [("queued", None), ("offered", first), ("declined", first),
                                  ("offered", second), ("accepted", second), ("closed", second)]
    assert [e.data.get("reason") for e in setup.items if e.topic == "work_item.declined"] == ["on a break"]
    assert ringing_agents(lab) == [{"agent": first, "user": "1001"}, {"agent": second, "user": "1002"}]
    assert ended.data["answered_by"] == "1002" and ended.data["target"]["agent"] == second
    assert [leg["role"] for leg in ended.data["legs"]] == ["a", "b"]  # a late answer never joined


async def test_an_accepted_call_the_phone_rejects_is_queued_again_for_the_next_agent(lab: Any) -> None:
    # Accepted on the page, then the desk phone says busy: the accepted item is closed and the caller,
    # still on hold music, is queued again in its place and rung at the next agent: not lost.
    lab, setup, rejecting, answering = await two_agents(lab, "phone_ring_then_busy.xml")
    rang = rings(lab)
    closed_again = asyncio.Event()
    lab.server.bus.subscribe("work_item.closed",
                             lambda e: closed_again.set() if "." in e.data["item"]["id"] else None)
    trunk = await lab.trunk_call("trunk_call.xml", "-d", "8000", service=QUEUE_DID)
    first, token = setup.agents["1001"]
    second = setup.agents["1002"][0]
    offered = await setup.wait_item("work_item.offered")
    call_id = offered.data["item"]["id"]
    await asyncio.wait_for(rang.wait(), 10)
    status, item = await setup.http("POST", f"/api/v1/work-items/{call_id}/accept", token)
    assert status == 200 and item["state"] == "assigned", item
    await rejecting.ok()
    await answering.ok()
    await trunk.ok()
    ended = await lab.ended()
    await asyncio.wait_for(closed_again.wait(), 10)
    assert [(e.topic.removeprefix("work_item."), e.data["item"]["id"], e.data.get("agent"))
            for e in setup.items] == [
        ("queued", call_id, None), ("offered", call_id, first), ("accepted", call_id, first),
        ("closed", call_id, first), ("queued", f"{call_id}.1", None), ("offered", f"{call_id}.1", second),
        ("accepted", f"{call_id}.1", second), ("closed", f"{call_id}.1", second)]
    status, old = await setup.http("GET", f"/api/v1/work-items/{call_id}", setup.admin)
    assert status == 200 and old["close_reason"] == "phone_not_answered", old
    assert ended.data["answered_by"] == "1002" and ended.data["target"]["agent"] == second
