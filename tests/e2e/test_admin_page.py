"""The admin page (softphone_web/admin/, served at /admin/) in headless Chromium against the real server.

An admin signs in through the page's form, sees the call centers, picks a user and assigns them by
clicking, then moves them to another call center; the REST API must agree after each click. An agent's
credentials get the page's refusal and none of the admin data.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, snapshot

AGENT_PASSWORD = "agent-password-1"
_names = itertools.count(1)


@dataclass
class Directory:
    """Two call centers and an agent in neither, made through the REST API for one test."""

    north_id: str
    north: str
    south_id: str
    south: str
    agent_id: str
    agent: str


@pytest.fixture
def directory(cti_server: RunningServer, admin_token: str) -> Directory:
    """Fresh, uniquely named records (the server lives for the whole session)."""
    n = next(_names)
    north = cti_server.api("POST", "/api/v1/call-centers",
                           {"name": f"North {n}", "phone_region": "GB"}, admin_token)
    south = cti_server.api("POST", "/api/v1/call-centers", {"name": f"South {n}"}, admin_token)
    agent = cti_server.api("POST", "/api/v1/users",
                           {"username": f"agent-{n}", "role": "agent", "password": AGENT_PASSWORD,
                            "display_name": f"Agent Number {n}"}, admin_token)
    assert agent["call_center_id"] is None
    return Directory(north["id"], north["name"], south["id"], south["name"], agent["id"], agent["username"])


def sign_in(page: Page, username: str, password: str) -> None:
    """Open /admin/ and sign in through its form."""
    page.goto("/admin/")
    form = page.locator("#login-form")
    expect(form).to_be_visible()
    form.get_by_label("Username").fill(username)
    form.get_by_label("Password").fill(password)
    form.get_by_role("button", name="Sign in").click()


def member_usernames(server: RunningServer, token: str, call_center_id: str) -> list[str]:
    """Who the REST API says is in a call center."""
    members = server.api("GET", f"/api/v1/call-centers/{call_center_id}/members", token=token)["members"]
    return [member["username"] for member in members]


def assign_by_clicking(page: Page, call_center: str, user_id: str, username: str) -> None:
    """Open a call center in the list, pick the user among the candidates, press Assign, and wait
    until the page says it is done and lists them as a member."""
    page.locator("#call-centers tbody tr", has_text=call_center).click()
    expect(page.locator("#detail-title")).to_have_text(call_center)
    page.locator("#candidates").select_option(user_id)
    page.get_by_role("button", name="Assign").click()
    expect(page.locator("#message")).to_have_text(f"Assigned {username} to {call_center}.")
    expect(page.locator("#members tbody")).to_contain_text(username)


def test_admin_assigns_a_user_then_moves_them_to_another_call_center(
        page: Page, cti_server: RunningServer, admin_token: str, directory: Directory) -> None:
    sign_in(page, ADMIN_USERNAME, ADMIN_PASSWORD)

    expect(page.locator("#who")).to_contain_text(f"{ADMIN_USERNAME} (admin)")
    rows = page.locator("#call-centers tbody tr")
    expect(rows.filter(has_text=directory.north)).to_contain_text("GB")
    expect(rows.filter(has_text=directory.south)).to_be_visible()
    snapshot(page, "admin-signed-in")

    assign_by_clicking(page, directory.north, directory.agent_id, directory.agent)
    snapshot(page, "admin-assigned")
    user = cti_server.api("GET", f"/api/v1/users/{directory.agent_id}", token=admin_token)
    assert user["call_center_id"] == directory.north_id
    assert member_usernames(cti_server, admin_token, directory.north_id) == [directory.agent]

    # The candidate list says where the agent is now, and assigning to South moves them out of North.
    page.locator("#call-centers tbody tr", has_text=directory.south).click()
    expect(page.locator(f'#candidates option[value="{directory.agent_id}"]')).to_contain_text(directory.north)
    assign_by_clicking(page, directory.south, directory.agent_id, directory.agent)
    user = cti_server.api("GET", f"/api/v1/users/{directory.agent_id}", token=admin_token)
    assert user["call_center_id"] == directory.south_id
    assert member_usernames(cti_server, admin_token, directory.south_id) == [directory.agent]
    assert member_usernames(cti_server, admin_token, directory.north_id) == []
    # The list's member counts follow the move without a reload.
    expect(rows.filter(has_text=directory.south).locator("td").nth(3)).to_have_text("1")
    expect(rows.filter(has_text=directory.north).locator("td").nth(3)).to_have_text("0")
    snapshot(page, "admin-moved")


def test_agent_credentials_get_the_refusal_and_no_admin_data(
        page: Page, cti_server: RunningServer, admin_token: str, directory: Directory) -> None:
    cti_server.api("PUT", f"/api/v1/call-centers/{directory.north_id}/members/{directory.agent_id}",
                   token=admin_token)

    sign_in(page, directory.agent, AGENT_PASSWORD)

    expect(page.locator("#message")).to_contain_text("This page is for admins.")
    expect(page.locator("#who")).to_contain_text("(agent)")
    expect(page.locator("#call-centers")).to_be_hidden()
    expect(page.locator("#new-user")).to_be_hidden()
    expect(page.locator("#detail")).to_be_hidden()
    snapshot(page, "agent-refused")
    # Nothing changed hands: the agent is still in North and only there.
    assert member_usernames(cti_server, admin_token, directory.north_id) == [directory.agent]
    # Sign out: the form is back, nobody is named, and the session is gone on the server too.
    page.locator("#logout").click()
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator("#who")).to_have_text("")
    expect(page.locator("#logout")).to_be_hidden()
    assert page.evaluate("fetch('/api/v1/me').then((r) => r.status)") == 401


def test_wrong_password_is_said_on_the_page(page: Page, cti_server: RunningServer) -> None:
    sign_in(page, ADMIN_USERNAME, "not-the-password")

    expect(page.locator("#login-message")).to_have_text("wrong username or password")
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator("#admin")).to_be_hidden()
    snapshot(page, "login-refused")
