"""The supervisor's page (softphone_web/supervisor/, served at /supervisor/) in headless Chromium against the
real server.

A supervisor signs in through the page and watches their call center: work an integrator pushes through
``POST /api/v1/work-items`` shows up live (over the /supervisor socket.io namespace) in the queue's
waiting count, its longest wait and the waiting list; the supervisor changes an agent's status from the
agents table and moves waiting items to another queue or to an agent; the REST API must agree after each
click, and a refusal from the server is shown with the field it names. An agent signing in is refused.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, snapshot

PASSWORD = "supervisor-page-1"
PUSH_TIMEOUT_S = 120
SHORT_WAIT = re.compile(r"^0:0\d$")
_names = itertools.count(1)


@dataclass
class Center:
    """A call center with two queues, two agents with routing profiles, a supervisor and an integrator key.

    Agent A serves ``queue``; agent B serves only ``backlog``, so work in ``queue`` waits until A is
    Available or a supervisor moves it."""

    server: RunningServer
    admin: str
    id: str
    name: str
    queue: str
    backlog: str
    integrator_key: str
    supervisor: str  # username
    agents: list[tuple[str, str, str]]  # (user id, username, display name)

    def push(self, **fields: Any) -> dict[str, Any]:
        """Push a work item into ``queue`` as the integrator."""
        return self.server.api("POST", "/api/v1/work-items", {"queue": self.queue, **fields},
                               self.integrator_key)

    def item(self, item_id: str) -> dict[str, Any]:
        """The item as the integrator sees it."""
        return self.server.api("GET", f"/api/v1/work-items/{item_id}", token=self.integrator_key)

    def agent_status(self, agent_id: str) -> str:
        """The agent's status as the admin reads it from the supervisor view."""
        agents = self.server.api("GET", f"/api/v1/supervisor/agents?call_center={self.id}", token=self.admin)
        [status] = [a["status"] for a in agents["agents"] if a["agent"] == agent_id]
        return str(status)


@pytest.fixture
def center(cti_server: RunningServer, admin_token: str) -> Center:
    """Fresh, uniquely named records (the server lives for the whole session)."""
    n = next(_names)
    api = cti_server.api
    made = api("POST", "/api/v1/call-centers", {"name": f"Supervised floor {n}"}, admin_token)
    key = api("POST", f"/api/v1/call-centers/{made['id']}/api-keys", {"name": "CRM"}, admin_token)["key"]
    api("PUT", f"/api/v1/routing/configs/watched-{n}", {"push_timeout_s": PUSH_TIMEOUT_S}, admin_token)
    queue, backlog = f"sales-{n}", f"backlog-{n}"
    for queue_id, name in ((queue, "Sales"), (backlog, "Backlog")):
        api("PUT", f"/api/v1/routing/queues/{queue_id}",
            {"call_center": made["id"], "routing_config": f"watched-{n}", "name": name}, admin_token)
    agents = []
    for letter, queues in (("a", [queue]), ("b", [backlog])):
        display = f"Agent {letter.upper()} {n}"
        user = api("POST", "/api/v1/users", {"username": f"watched{n}-{letter}", "role": "agent",
                                             "password": PASSWORD, "display_name": display,
                                             "call_center_id": made["id"]}, admin_token)
        api("PUT", f"/api/v1/routing/agents/{user['id']}",
            {"call_center": made["id"], "capacity": 2, "queues": queues}, admin_token)
        agents.append((user["id"], user["username"], display))
    supervisor = api("POST", "/api/v1/users", {"username": f"watcher{n}", "role": "supervisor",
                                               "password": PASSWORD, "call_center_id": made["id"]},
                     admin_token)
    return Center(cti_server, admin_token, made["id"], made["name"], queue, backlog, key,
                  supervisor["username"], agents)


def sign_in(page: Page, username: str) -> None:
    """Open /supervisor/ and sign in."""
    page.goto("/supervisor/")
    form = page.locator("#login-form")
    form.get_by_label("Username").fill(username)
    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_role("button", name="Sign in").click()


def sign_in_supervisor(page: Page, center: Center, queues: int = 2) -> None:
    """Sign in as the center's supervisor and wait for the live connection and the first picture."""
    sign_in(page, center.supervisor)
    expect(page.locator("#who")).to_contain_text("(supervisor)")
    expect(page.locator("#live")).to_have_class(re.compile(r"\bon\b"))
    expect(page.locator("#queues tbody tr")).to_have_count(queues)
    expect(page.locator("#agents tbody tr")).to_have_count(2)


def queue_row(page: Page, queue: str) -> Locator:
    """The row of one queue in the queues table."""
    return page.locator(f'#queues tbody tr[data-id="{queue}"]')


def agent_row(page: Page, agent_id: str) -> Locator:
    """The row of one agent in the agents table."""
    return page.locator(f'#agents tbody tr[data-id="{agent_id}"]')


def waiting_row(page: Page, item_id: str) -> Locator:
    """The row of one item in the waiting list."""
    return page.locator(f'#waiting tbody tr[data-id="{item_id}"]')


def test_a_pushed_item_shows_up_live_in_the_queue_figures(page: Page, center: Center) -> None:
    sign_in_supervisor(page, center)
    row = queue_row(page, center.queue)
    expect(row.locator("td").nth(0)).to_have_text(f"Sales ({center.queue})")
    expect(row.locator("td").nth(1)).to_have_text("0")
    expect(row.locator("td").nth(3)).to_have_text("—")
    expect(page.locator("#no-waiting")).to_be_visible()

    item = center.push(channel="chat", data={"subject": "Where is my order?"})
    assert item["state"] == "queued"  # agent A is Offline
    expect(row.locator("td").nth(1)).to_have_text("1")
    expect(row.locator("td").nth(3)).to_have_text(SHORT_WAIT)
    waiting = waiting_row(page, item["id"])
    expect(waiting).to_contain_text("Where is my order?")
    expect(waiting.locator("td").nth(3)).to_have_text("queued")
    expect(waiting.locator("td").nth(4)).to_have_text(SHORT_WAIT)
    expect(page.locator("#no-waiting")).to_be_hidden()
    snapshot(page, "supervisor-waiting")
    page.screenshot(path="/tmp/supervisor-page-waiting.png", full_page=True)

    # Agent A goes Available (their own page, here its REST call): the item is offered, live.
    agent_id, username, display = center.agents[0]
    token = center.server.login(username, PASSWORD)
    center.server.api("PUT", "/api/v1/agents/me/status", {"status": "Available"}, token)
    expect(row.locator("td").nth(1)).to_have_text("0")
    expect(row.locator("td").nth(2)).to_have_text("1")
    expect(waiting.locator("td").nth(3)).to_have_text(f"offered to {display}")
    agent = agent_row(page, agent_id)
    expect(agent.get_by_label("Status")).to_have_value("Available")
    expect(agent.locator(".work")).to_have_text("chat · offered")
    expect(agent.locator("td").nth(4)).to_have_text("1 of 2")


def test_the_supervisor_changes_an_agents_status(page: Page, center: Center) -> None:
    status = f"Coaching{next(_names)}"
    center.server.api("PUT", f"/api/v1/routing/statuses/{status}", {"channels": []}, center.admin)
    sign_in_supervisor(page, center)
    agent_id, _, display = center.agents[0]
    row = agent_row(page, agent_id)
    expect(row.locator("td").nth(0)).to_have_text(display)
    expect(row.get_by_label("Status")).to_have_value("Offline")
    expect(row.locator("td").nth(2)).to_have_text(re.compile(r"^\d+:\d\d$"))
    assert status in row.locator("option").all_text_contents()

    row.get_by_label("Status").select_option(status)
    expect(page.locator("#message")).to_have_text(f"{display} is now {status}.")
    assert center.agent_status(agent_id) == status
    expect(row.locator("td").nth(2)).to_have_text(SHORT_WAIT)

    # A change made elsewhere (the agent's own page) reaches this page live.
    token = center.server.login(center.agents[0][1], PASSWORD)
    center.server.api("PUT", "/api/v1/agents/me/status", {"status": "Break"}, token)
    expect(row.get_by_label("Status")).to_have_value("Break")


def test_the_supervisor_moves_waiting_items_to_an_agent_and_a_queue(page: Page, center: Center) -> None:
    (_, _, display_a), (b_id, b_username, display_b) = center.agents
    token = center.server.login(b_username, PASSWORD)
    center.server.api("PUT", "/api/v1/agents/me/status", {"status": "Available"}, token)
    first = center.push(channel="email", data={"subject": "Invoice 7"})
    second = center.push(channel="case", data={"subject": "Broken widget"})
    sign_in_supervisor(page, center)
    expect(page.locator("#waiting tbody tr")).to_have_count(2)

    # To an Offline agent: the server refuses and the page says why.
    row = waiting_row(page, first["id"])
    row.get_by_label("Move to").select_option(label=f"{display_a} (Offline, 0/2)")
    row.get_by_role("button", name="Move").click()
    expect(page.locator("#message")).to_have_text(re.compile(r"has no room for work item"))
    assert center.item(first["id"])["state"] == "queued"

    row.get_by_label("Move to").select_option(label=f"{display_b} (Available, 0/2)")
    row.get_by_role("button", name="Move").click()
    expect(page.locator("#message")).to_have_text(f"Moved Invoice 7 to {display_b}.")
    moved = center.item(first["id"])
    assert (moved["state"], moved["agent"]) == ("offered", b_id)
    expect(row.locator("td").nth(3)).to_have_text(f"offered to {display_b}")

    row = waiting_row(page, second["id"])
    row.get_by_label("Move to").select_option(label=f"Backlog ({center.backlog})")
    snapshot(page, "supervisor-move")
    page.screenshot(path="/tmp/supervisor-page-move.png", full_page=True)
    row.get_by_role("button", name="Move").click()
    expect(page.locator("#message")).to_have_text(f"Moved Broken widget to queue Backlog ({center.backlog}).")
    moved = center.item(second["id"])
    assert (moved["queue"], moved["agent"]) == (center.backlog, b_id)  # B serves the backlog
    expect(row.locator("td").nth(0)).to_have_text(f"Backlog ({center.backlog})")
    expect(queue_row(page, center.queue).locator("td").nth(1)).to_have_text("0")


def test_a_refusal_names_the_field(page: Page, center: Center) -> None:
    spare = f"{center.queue}-spare"
    center.server.api("PUT", f"/api/v1/routing/queues/{spare}",
                      {"call_center": center.id, "routing_config": "default"}, center.admin)
    item = center.push(channel="chat", data={"subject": "Hello"})
    sign_in_supervisor(page, center, queues=3)
    row = waiting_row(page, item["id"])
    row.get_by_label("Move to").select_option(label=spare)
    # The queue goes away after the page read it (no event says so): the server names the field.
    center.server.api("DELETE", f"/api/v1/routing/queues/{spare}", token=center.admin)
    row.get_by_role("button", name="Move").click()
    expect(page.locator("#message")).to_have_text(f"queue: no queue '{spare}' in this call center")
    assert center.item(item["id"])["queue"] == center.queue


def test_an_agent_is_refused_and_an_admin_sees_every_call_center(page: Page, center: Center) -> None:
    other = center.server.api("POST", "/api/v1/call-centers", {"name": f"Beside {center.name}"},
                              center.admin)
    other_queue = f"{center.queue}-other"
    center.server.api("PUT", f"/api/v1/routing/queues/{other_queue}",
                      {"call_center": other["id"], "routing_config": "default"}, center.admin)
    sign_in(page, center.agents[0][1])
    expect(page.locator("#who")).to_contain_text("(agent)")
    expect(page.locator("#message")).to_have_text(
        "This page is for supervisors. Sign out and sign in with a supervisor's or an admin's credentials.")
    expect(page.locator("#board")).to_be_hidden()
    expect(page.locator("#live")).to_be_hidden()
    snapshot(page, "supervisor-refused")

    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#login-form")).to_be_visible()
    form = page.locator("#login-form")
    form.get_by_label("Username").fill(ADMIN_USERNAME)
    form.get_by_label("Password").fill(ADMIN_PASSWORD)
    form.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who")).to_contain_text("(admin)")
    expect(page.locator("#live")).to_have_class(re.compile(r"\bon\b"))
    expect(queue_row(page, center.queue)).to_be_visible()
    expect(agent_row(page, center.agents[1][0])).to_be_visible()
    expect(queue_row(page, other_queue)).to_be_visible()

    page.get_by_label("Call center").select_option(label=center.name)
    expect(page.locator("#queues tbody tr")).to_have_count(2)
    expect(page.locator("#agents tbody tr")).to_have_count(2)
    item = center.push(channel="chat", data={"subject": "Seen by the admin"})
    expect(waiting_row(page, item["id"])).to_contain_text("Seen by the admin")
    snapshot(page, "supervisor-admin")
