"""The agent's page (softphone_web/agent/, served at /agent/) in headless Chromium against the real server.

An agent signs in through the page, goes Available from the status list, and an integrator pushes
work through ``POST /api/v1/work-items``: the offer reaches the page live over the /agent socket.io
namespace with its screen pop (the contact, the several-match list, or the new-contact form with the
number filled in) and the push countdown. Accepting, finishing and closing move the item through
current work and after-call work; declining with a reason sends it to the next agent. The REST API
must agree after each click.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import RunningServer, snapshot

AGENT_PASSWORD = "agent-password-1"
PUSH_TIMEOUT_S = 120
AFTER_CALL_WORK_S = 300
SHORT_PUSH_TIMEOUT_S = 4
COUNTDOWN = re.compile(r"^[0-2]:\d\d$")
_names = itertools.count(1)


@dataclass
class Floor:
    """A call center with a queue, two agents with routing profiles, an integrator key, for one test."""

    server: RunningServer
    admin: str
    call_center_id: str
    config: str
    queue: str
    integrator_key: str
    agents: list[tuple[str, str]]  # (user id, username)

    def push(self, **fields: Any) -> dict[str, Any]:
        """Push a work item as the integrator."""
        return self.server.api("POST", "/api/v1/work-items", {"queue": self.queue, **fields},
                               self.integrator_key)

    def item(self, item_id: str) -> dict[str, Any]:
        """The item as the integrator sees it."""
        return self.server.api("GET", f"/api/v1/work-items/{item_id}", token=self.integrator_key)

    def contact(self, first: str, last: str, number: str) -> dict[str, Any]:
        """A CRM contact with one phone number."""
        return self.server.api("POST", "/api/v1/contacts",
                               {"first_name": first, "last_name": last, "phones": [{"number": number}]},
                               self.integrator_key)


@pytest.fixture
def floor(cti_server: RunningServer, admin_token: str) -> Floor:
    """Fresh, uniquely named records (the server lives for the whole session)."""
    n = next(_names)
    center = cti_server.api("POST", "/api/v1/call-centers", {"name": f"Agent floor {n}"}, admin_token)
    key = cti_server.api("POST", f"/api/v1/call-centers/{center['id']}/api-keys", {"name": "CRM"},
                         admin_token)["key"]
    cti_server.api("PUT", f"/api/v1/routing/configs/floor-{n}",
                   {"push_timeout_s": PUSH_TIMEOUT_S, "after_call_work_s": AFTER_CALL_WORK_S}, admin_token)
    queue = f"support-{n}"
    cti_server.api("PUT", f"/api/v1/routing/queues/{queue}",
                   {"call_center": center["id"], "routing_config": f"floor-{n}", "name": "Support"},
                   admin_token)
    agents = []
    for letter in ("a", "b"):
        user = cti_server.api("POST", "/api/v1/users",
                              {"username": f"floor{n}-{letter}", "role": "agent", "password": AGENT_PASSWORD,
                               "display_name": f"Agent {letter.upper()} {n}", "call_center_id": center["id"]},
                              admin_token)
        cti_server.api("PUT", f"/api/v1/routing/agents/{user['id']}",
                       {"call_center": center["id"], "capacity": 2, "queues": [queue]}, admin_token)
        agents.append((user["id"], user["username"]))
    return Floor(cti_server, admin_token, center["id"], f"floor-{n}", queue, key, agents)


def sign_in_available(page: Page, username: str, base_url: str = "") -> None:
    """Open /agent/ (of ``base_url``, default the session's server), sign in, wait for the live
    connection, and pick Available in the status list."""
    page.goto(base_url + "/agent/")
    form = page.locator("#login-form")
    form.get_by_label("Username").fill(username)
    form.get_by_label("Password").fill(AGENT_PASSWORD)
    form.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who")).to_contain_text("(agent)")
    expect(page.locator("#live")).to_have_class(re.compile(r"\bon\b"))
    expect(page.locator("#status")).to_have_value("Offline")
    page.get_by_label("Status").select_option("Available")
    expect(page.locator("#message")).to_have_text("You are Available.")
    expect(page.locator("#status-time")).to_have_text(re.compile(r"^0:0\d$"))


def offer_card(page: Page, item_id: str) -> Locator:
    """The offer card of one item."""
    return page.locator(f'#offers .card[data-id="{item_id}"]')


def test_offer_with_contact_pop_is_accepted_finished_and_closed(page: Page, floor: Floor) -> None:
    floor.contact("Ada", "Lovelace", "+14155550101")
    agent_id, username = floor.agents[0]
    sign_in_available(page, username)
    expect(page.locator("#capacity")).to_have_text("Capacity 0 of 2 used")

    item = floor.push(channel="chat", data={"caller": "(415) 555-0101", "subject": "Refund for order 1234"})
    assert (item["state"], item["agent"]) == ("offered", agent_id)

    card = offer_card(page, item["id"])
    expect(card.locator(".channel")).to_have_text("chat")
    expect(card.locator(".queue")).to_have_text(f"queue {floor.queue}")
    expect(card.locator(".contact-name")).to_have_text("Ada Lovelace")
    expect(card.locator(".pop")).to_contain_text("+14155550101")
    expect(card.locator(".pop")).to_contain_text("Refund for order 1234")
    expect(card.locator(".timer")).to_have_text(COUNTDOWN)
    expect(page.locator("#capacity")).to_have_text("Capacity 1 of 2 used")  # an offer holds capacity
    expect(page).to_have_title("(1) offer · cti-server agent")
    page.screenshot(path="/tmp/agent-page-offer.png", full_page=True)
    snapshot(page, "agent-offer")

    card.get_by_role("button", name="Accept").click()
    work = page.locator(f'#work .card[data-id="{item["id"]}"]')
    expect(work.locator(".state")).to_have_text("In progress")
    expect(work.locator(".contact-name")).to_have_text("Ada Lovelace")
    expect(page.locator("#no-offers")).to_be_visible()
    expect(page).to_have_title("cti-server agent")
    assert floor.item(item["id"])["state"] == "assigned"

    work.get_by_role("button", name="Finish").click()
    expect(work.locator(".state")).to_have_text("After-call work")
    expect(page.locator("#acw")).to_be_visible()
    expect(work.locator(".timer")).to_have_text(re.compile(r"^[45]:\d\d$"))  # counting down from 5:00
    page.screenshot(path="/tmp/agent-page-wrap-up.png", full_page=True)
    snapshot(page, "agent-wrap-up")

    work.get_by_role("button", name="Close").click()
    expect(work).to_have_count(0)
    expect(page.locator("#no-work")).to_be_visible()
    expect(page.locator("#capacity")).to_have_text("Capacity 0 of 2 used")
    closed = floor.item(item["id"])
    assert (closed["state"], closed["close_reason"]) == ("closed", "completed")


def test_declined_offer_with_several_matches_goes_to_the_next_agent(page: Page, floor: Floor) -> None:
    floor.contact("Grace", "Hopper", "+14155550102")
    floor.contact("Grace", "Brewster", "+14155550102")
    (first_id, first), (second_id, _) = floor.agents
    sign_in_available(page, first)

    item = floor.push(channel="email", data={"caller": "+1 415 555 0102", "subject": "Invoice"})
    card = offer_card(page, item["id"])
    expect(card.locator(".pop h3")).to_have_text("2 contacts match +14155550102")
    expect(card.locator(".matches li")).to_have_count(2)
    card.locator(".matches li", has_text="Grace Hopper").get_by_role("button", name="This one").click()
    expect(card.locator(".matches li.chosen")).to_contain_text("Grace Hopper")

    # The second agent goes Available while the item is offered to the first: it stays with the first.
    token = floor.server.login(floor.agents[1][1], AGENT_PASSWORD)
    floor.server.api("PUT", "/api/v1/agents/me/status", {"status": "Available"}, token)
    assert floor.item(item["id"])["agent"] == first_id

    card.get_by_label("Decline reason").fill("Not my language")
    card.get_by_role("button", name="Decline").click()
    expect(page.locator("#message")).to_have_text("Declined the email item (Not my language).")
    expect(card).to_have_count(0)
    expect(page.locator("#no-offers")).to_be_visible()
    moved = floor.item(item["id"])
    assert (moved["state"], moved["agent"]) == ("offered", second_id)
    assert moved["declined_by"] == [first_id]
    assert (moved["offers"][0]["outcome"], moved["offers"][0]["reason"]) == ("declined", "Not my language")


def test_unknown_caller_gets_the_new_contact_form_with_the_number(page: Page, floor: Floor) -> None:
    _, username = floor.agents[0]
    sign_in_available(page, username)

    item = floor.push(channel="message", data={"caller": "+1 415 555 0199"})
    card = offer_card(page, item["id"])
    expect(card.locator(".pop h3")).to_have_text("New caller +14155550199")
    form = card.locator("form.new-contact")
    expect(form.get_by_label("Phone")).to_have_value("+14155550199")
    form.get_by_label("First name").fill("Alan")
    form.get_by_label("Last name").fill("Turing")
    page.screenshot(path="/tmp/agent-page-new-contact.png", full_page=True)
    form.get_by_role("button", name="Save contact").click()
    expect(card.locator(".contact-name")).to_have_text("Alan Turing")
    found = floor.server.api("GET", "/api/v1/screenpop?number=%2B14155550199", token=floor.integrator_key)
    assert [m["display_name"] for m in found["matches"]] == ["Alan Turing"]

    card.get_by_role("button", name="Accept").click()
    expect(page.locator(f'#work .card[data-id="{item["id"]}"] .contact-name')).to_have_text("Alan Turing")


def test_a_reload_shows_the_offer_and_the_statuses_again(page: Page, floor: Floor) -> None:
    _, username = floor.agents[0]
    sign_in_available(page, username)
    item = floor.push(channel="case", data={"subject": "Broken widget"})
    expect(offer_card(page, item["id"]).locator(".pop")).to_contain_text("Broken widget")

    page.reload()
    card = offer_card(page, item["id"])
    expect(card.locator(".timer")).to_have_text(COUNTDOWN)
    expect(card.locator(".pop")).to_contain_text("No caller details came with this item.")
    options = page.locator("#status option").all_text_contents()
    assert {"Available", "Busy", "Offline"} <= set(options)
    expect(page.locator("#status")).to_have_value("Available")


def test_an_offer_not_taken_in_time_counts_down_and_goes_to_the_next_agent(page: Page, floor: Floor) -> None:
    floor.server.api("PUT", f"/api/v1/routing/configs/{floor.config}",
                     {"push_timeout_s": SHORT_PUSH_TIMEOUT_S, "after_call_work_s": 0}, floor.admin)
    (first_id, first), (second_id, second) = floor.agents
    sign_in_available(page, first)
    item = floor.push(channel="chat", data={"subject": "Where is my parcel?"})
    card = offer_card(page, item["id"])
    expect(card.locator(".timer")).to_have_text(re.compile(r"^0:0[0-4]$"))
    token = floor.server.login(second, AGENT_PASSWORD)
    floor.server.api("PUT", "/api/v1/agents/me/status", {"status": "Available"}, token)

    expect(page.locator("#message")).to_have_text("The chat offer timed out and went to the next agent.",
                                                  timeout=(SHORT_PUSH_TIMEOUT_S + 5) * 1000)
    expect(card).to_have_count(0)
    expect(page.locator("#capacity")).to_have_text("Capacity 0 of 2 used")
    moved = floor.item(item["id"])
    assert (moved["state"], moved["agent"]) == ("offered", second_id)
    assert (moved["offers"][0]["agent"], moved["offers"][0]["outcome"]) == (first_id, "timeout")


def test_a_session_ended_elsewhere_brings_back_the_sign_in_form(page: Page, floor: Floor) -> None:
    _, username = floor.agents[0]
    sign_in_available(page, username)
    [session] = [c for c in page.context.cookies() if c["name"] == "cti_session"]
    floor.server.api("POST", "/api/v1/logout", token=session["value"])  # e.g. signed out in another tab

    floor.push(channel="chat", data={"subject": "Hello?"})  # the live event makes the page look again
    expect(page.locator("#login-message")).to_have_text("Your session has ended: sign in again.")
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator("#agent")).to_be_hidden()
    expect(page.locator("#offers .card")).to_have_count(0)


def test_statuses_an_admin_defines_and_a_supervisor_sets_show_up_live(page: Page, floor: Floor) -> None:
    agent_id, username = floor.agents[0]
    status = f"Coaching-{floor.config}"
    floor.server.api("PUT", f"/api/v1/routing/statuses/{status}", {"channels": []}, floor.admin)
    sign_in_available(page, username)
    expect(page.locator("#status option", has_text=status)).to_have_count(1)

    floor.server.api("PUT", f"/api/v1/supervisor/agents/{agent_id}/status", {"status": "Break"}, floor.admin)
    expect(page.locator("#status")).to_have_value("Break")
    page.get_by_label("Status").select_option(status)
    expect(page.locator("#message")).to_have_text(f"You are {status}.")
    agent = floor.server.api("GET", "/api/v1/routing/agents", token=floor.admin)["agents"]
    assert [a["status"] for a in agent if a["id"] == agent_id] == [status]
