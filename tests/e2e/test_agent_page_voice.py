"""A queue call on the agent's page: the real server, sipp as trunk and as the agent's desk phone, Chromium.

The server runs as a subprocess with a trunk (127.0.0.2) and a DID that queues calls. The agent is a store
user with a web password and a SIP account; their desk phone is a sipp UAS registered with digest auth that
rings for a few seconds before it answers. The page must show the voice offer (the calls layer rings the
desk phone when the engine offers the call) with the caller's screen pop and Accept/Decline, the call
connected after the phone answers and ended when the trunk hangs up (``call.*`` events on the /agent
namespace), after-call work with its countdown, and save wrap-up notes on the call log. Accept on the page
while the phone rings takes the call (the phone's answer connects it); Decline cancels the ringing phone.
The page carries no audio itself (no WebRTC): the phone does.
"""

from __future__ import annotations

import random
import re
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import free_port
from tests.e2e.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    RunningServer,
    create_admin,
    running_server,
    snapshot,
)
from tests.e2e.test_agent_page import AGENT_PASSWORD, sign_in_available
from tests.interop.conftest import read_sipp_stats, require_tool

SCENARIOS = Path(__file__).resolve().parents[1] / "interop" / "calls"
TRUNK_IP = "127.0.0.2"
QUEUE_DID = "15550300"
CALLER = "+15557770000"  # the P-Asserted-Identity of trunk_call.xml
SIP_USER = "2001"
SIP_PASSWORD = "desk-phone-secret-2001"
RING_MS = 6000
TALK_MS = 6000
SIPP_TIMEOUT_S = 45
VOICE_TIMEOUT_MS = 15_000

# A desk phone that rings for RING_MS before it answers (so the page can show it ringing), echoes the
# audio back (-rtp_echo) and waits for the caller's BYE.
PHONE_RINGS_THEN_ANSWERS = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="phone rings, then answers">
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[

      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

  ]]></send>
  <pause milliseconds="{ring_ms}"/>
  <send retrans="500"><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=phone 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a=sendrecv

  ]]></send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>
</scenario>
"""


def _voice_config(directory: Path, http_port: int, sip_port: int, call_center: str, queue: str) -> Path:
    base = random.randrange(20000, 32000, 200)
    config_path = directory / "cti-server.toml"
    config_path.write_text(
        f'[http]\nhost = "127.0.0.1"\nport = {http_port}\n'
        f'[sip]\nhost = "127.0.0.1"\nudp_port = {sip_port}\ntcp_port = {sip_port}\n'
        'digest_algorithms = ["MD5"]\n'
        f"[media]\nrtp_port_min = {base}\nrtp_port_max = {base + 199}\n"
        f'[store]\nurl = "sqlite+aiosqlite:///{directory}/cti.db"\n'
        "[auth]\npassword_memory_kib = 1024\npassword_time_cost = 1\n"
        '[log]\nlevel = "info"\nformat = "json"\n'
        f'[[calls.trunks]]\nname = "carrier"\nhost = "{TRUNK_IP}"\nallowed_sources = ["{TRUNK_IP}"]\n'
        f'[[calls.dids]]\nnumber = "+{QUEUE_DID}"\ncall_center = "{call_center}"\nqueue = "{queue}"\n'
    )
    return config_path


class Sipp:
    """One sipp process with its statistics file."""

    def __init__(self, directory: Path, name: str, *args: str, ip: str = "127.0.0.1") -> None:
        binary = require_tool("sipp", "sip-tester")
        self.name = name
        self.stat_file = directory / f"{name}.csv"
        argv = [binary, *args, "-i", ip, "-nostdin", "-timeout", f"{SIPP_TIMEOUT_S}s", "-timeout_error",
                "-trace_stat", "-stf", str(self.stat_file), "-trace_err", "-error_file",
                str(directory / f"{name}.err")]
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, cwd=directory)

    def ok(self) -> dict[str, str]:
        """Wait for the scenario's end; fail with its output unless it passed."""
        try:
            out, _ = self.process.communicate(timeout=SIPP_TIMEOUT_S + 5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        output = out.decode(errors="replace")[-3000:]
        assert self.process.returncode == 0, f"sipp {self.name} failed: {output}"
        return read_sipp_stats(self.stat_file)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


class VoiceFloor:
    """The server, its call center, queue, agent and contact, and the sipps one test started."""

    def __init__(self, server: RunningServer, directory: Path, call_center: str, queue: str) -> None:
        self.server = server
        self.directory = directory
        self.call_center = call_center
        self.queue = queue
        self.sip_port = 0
        self.sipps: list[Sipp] = []
        self.admin = ""
        self.call_center_id = ""
        self.agent_id = ""
        self.username = ""
        self.contact_id = ""

    def sipp(self, name: str, *args: str, ip: str = "127.0.0.1") -> Sipp:
        run = Sipp(self.directory, name, *args, ip=ip)
        self.sipps.append(run)
        return run

    def desk_phone(self, ring_ms: int = RING_MS, scenario: Path | None = None) -> Sipp:
        """Start the phone (by default: rings ``ring_ms``, then answers) and register it (digest auth)."""
        if scenario is None:
            scenario = self.directory / f"phone_rings_{ring_ms}_then_answers.xml"
            scenario.write_text(PHONE_RINGS_THEN_ANSWERS.replace("{ring_ms}", str(ring_ms)))
        port = free_port()
        phone = self.sipp("phone", "-sf", str(scenario), "-p", str(port), "-mp", str(free_port()),
                          "-rtp_echo", "-m", "1")
        users = self.directory / "register.csv"
        users.write_text(f"SEQUENTIAL\n{SIP_USER};{SIP_PASSWORD};{port}\n")
        self.sipp("register", f"127.0.0.1:{self.sip_port}", "-sf", str(SCENARIOS / "phone_register.xml"),
                  "-inf", str(users), "-au", "[field0]", "-ap", "[field1]", "-m", "1", "-p", "0").ok()
        return phone

    def trunk_call(self, ring_ms: int = RING_MS) -> Sipp:
        """The carrier calls the queue DID; it hangs up TALK_MS after ``ring_ms`` past the answer it gets
        at once (the caller waits with music), so after the ring and some talk with the agent."""
        return self.sipp("trunk", f"127.0.0.1:{self.sip_port}", "-sf", str(SCENARIOS / "trunk_call.xml"),
                         "-s", QUEUE_DID, "-m", "1", "-p", "0", "-mp", str(free_port()),
                         "-d", str(ring_ms + TALK_MS), ip=TRUNK_IP)


@pytest.fixture(scope="module")
def voice_floor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VoiceFloor]:
    """A server of this module's own with the queue DID, set up through the CLI and the REST API."""
    require_tool("sipp", "sip-tester")
    directory = tmp_path_factory.mktemp("e2e-voice")
    call_center, queue = f"Voice floor {uuid.uuid4().hex[:6]}", "voice-support"
    http_port, sip_port = free_port(socket.SOCK_STREAM), free_port()
    config_path = _voice_config(directory, http_port, sip_port, call_center, queue)
    create_admin(config_path)
    with running_server(config_path, http_port) as server:
        floor = VoiceFloor(server, directory, call_center, queue)
        floor.sip_port = sip_port
        try:
            set_up(floor)
            yield floor
        finally:
            for run in floor.sipps:
                run.kill()


def set_up(floor: VoiceFloor) -> None:
    """The call center of the DID, the agent with a web password and a SIP account, their routing
    profile on the queue, and the caller's contact, through the REST API as the admin."""
    server = floor.server
    floor.admin = admin = server.login(ADMIN_USERNAME, ADMIN_PASSWORD)
    center = server.api("POST", "/api/v1/call-centers", {"name": floor.call_center}, admin)
    floor.call_center_id = center["id"]
    user = server.api("POST", "/api/v1/users", {
        "username": "desk-agent", "role": "agent", "password": AGENT_PASSWORD, "display_name": "Desk Agent",
        "sip_username": SIP_USER, "sip_password": SIP_PASSWORD, "call_center_id": floor.call_center_id,
    }, admin)
    floor.agent_id, floor.username = user["id"], user["username"]
    server.api("PUT", "/api/v1/routing/configs/voice", {"push_timeout_s": 30, "after_call_work_s": 120},
               admin)
    server.api("PUT", f"/api/v1/routing/queues/{floor.queue}",
               {"call_center": floor.call_center_id, "routing_config": "voice"}, admin)
    server.api("PUT", f"/api/v1/routing/agents/{floor.agent_id}",
               {"call_center": floor.call_center_id, "capacity": 1, "queues": [floor.queue]}, admin)
    floor.contact_id = server.api("POST", "/api/v1/contacts", {
        "call_center_id": floor.call_center_id, "first_name": "Ada", "last_name": "Caller",
        "phones": [{"number": CALLER, "kind": "mobile"}]}, admin)["id"]


def test_queue_call_rings_the_desk_phone_connects_and_the_notes_land_on_the_call_log(
        page: Page, voice_floor: VoiceFloor) -> None:
    floor = voice_floor
    sign_in_available(page, floor.username, floor.server.base_url)
    phone = floor.desk_phone()
    trunk = floor.trunk_call()

    offer = page.locator("#offers .card.offer")
    expect(offer.locator(".channel")).to_have_text("voice", timeout=VOICE_TIMEOUT_MS)
    expect(offer.locator(".call-state")).to_have_text("Your desk phone is ringing")
    expect(offer.locator(".contact-name")).to_have_text("Ada Caller")
    expect(offer.locator(".pop")).to_contain_text(CALLER)
    expect(offer.get_by_role("button", name="Accept")).to_be_visible()  # or the phone's answer accepts
    expect(offer.get_by_role("button", name="Decline")).to_be_visible()
    page.screenshot(path="/tmp/agent-page-voice-ringing.png", full_page=True)
    snapshot(page, "agent-voice-ringing")

    work = page.locator("#work .card")
    expect(work.locator(".call-state")).to_have_text("Connected on your desk phone", timeout=VOICE_TIMEOUT_MS)
    expect(work.locator(".state")).to_have_text("In progress")
    expect(work.locator(".contact-name")).to_have_text("Ada Caller")
    expect(work.get_by_role("button", name="Close")).to_be_hidden()  # the call is still on
    item_id = work.get_attribute("data-id")
    assert item_id is not None
    assert floor.server.api("GET", f"/api/v1/work-items/{item_id}", token=floor.admin)["state"] == "assigned"

    expect(work.locator(".call-state")).to_have_text("Call ended", timeout=VOICE_TIMEOUT_MS)
    expect(work.locator(".state")).to_have_text("After-call work")
    expect(work.locator(".timer")).to_have_text(re.compile(r"^[12]:\d\d$"))  # counting down from 2:00
    work.get_by_label("Wrap-up notes").fill("Wants a refund for order 1234")
    work.get_by_label("Disposition").fill("refund")
    page.screenshot(path="/tmp/agent-page-voice-wrap-up.png", full_page=True)
    work.get_by_role("button", name="Save notes").click()
    expect(page.locator("#message")).to_have_text("Notes saved on the call log.", timeout=VOICE_TIMEOUT_MS)
    [log] = floor.server.api("GET", f"/api/v1/call-logs?call_id={item_id}", token=floor.admin)["call_logs"]
    assert (log["notes"], log["disposition"], log["contact_id"]) == \
        ("Wants a refund for order 1234", "refund", floor.contact_id)
    assert log["agent_user_id"] in (None, floor.agent_id)

    work.get_by_role("button", name="Close").click()
    expect(work).to_have_count(0)
    closed = floor.server.api("GET", f"/api/v1/work-items/{item_id}", token=floor.admin)
    assert (closed["state"], closed["agent"], [o["outcome"] for o in closed["offers"]]) == \
        ("closed", floor.agent_id, ["accepted"])
    phone.ok()
    trunk.ok()


def sign_in_again(page: Page, floor: VoiceFloor) -> None:
    """A new shift on the module's server: the agent starts Offline, then signs in and is Available."""
    floor.server.api("PUT", f"/api/v1/supervisor/agents/{floor.agent_id}/status", {"status": "Offline"},
                     floor.admin)
    sign_in_available(page, floor.username, floor.server.base_url)


def test_accepting_on_the_page_while_the_desk_phone_rings_connects_when_it_answers(
        page: Page, voice_floor: VoiceFloor) -> None:
    floor = voice_floor
    sign_in_again(page, floor)
    ring_ms = 10_000  # time to press Accept before the phone answers, on a loaded machine
    phone = floor.desk_phone(ring_ms)
    trunk = floor.trunk_call(ring_ms)

    offer = page.locator("#offers .card.offer")
    expect(offer.locator(".call-state")).to_have_text("Your desk phone is ringing", timeout=VOICE_TIMEOUT_MS)
    item_id = offer.get_attribute("data-id")
    assert item_id is not None
    offer.get_by_role("button", name="Accept").click()
    expect(page.locator("#message")).to_have_text("Accepted the voice item.")
    work = page.locator("#work .card")
    expect(work.locator(".call-state")).to_have_text("Accepted: answer your desk phone")
    page.screenshot(path="/tmp/agent-page-voice-accepted.png", full_page=True)
    expect(work.locator(".call-state")).to_have_text("Connected on your desk phone",
                                                     timeout=ring_ms + VOICE_TIMEOUT_MS)
    expect(work.locator(".call-state")).to_have_text("Call ended", timeout=VOICE_TIMEOUT_MS)
    expect(work.locator(".state")).to_have_text("After-call work")
    work.get_by_role("button", name="Close").click()
    expect(work).to_have_count(0)
    item = floor.server.api("GET", f"/api/v1/work-items/{item_id}", token=floor.admin)
    assert (item["state"], [o["outcome"] for o in item["offers"]]) == ("closed", ["accepted"])
    phone.ok()  # answered, ACKed, then BYE when the trunk hung up: bridged, not released at once
    trunk.ok()


def test_declining_on_the_page_stops_the_desk_phone_ringing(page: Page, voice_floor: VoiceFloor) -> None:
    floor = voice_floor
    sign_in_again(page, floor)
    phone = floor.desk_phone(scenario=SCENARIOS / "phone_ring_cancelled.xml")  # passes only on CANCEL
    trunk = floor.trunk_call(ring_ms=10_000)

    offer = page.locator("#offers .card.offer")
    expect(offer.locator(".call-state")).to_have_text("Your desk phone is ringing", timeout=VOICE_TIMEOUT_MS)
    item_id = offer.get_attribute("data-id")
    assert item_id is not None
    offer.get_by_label("Decline reason").fill("not my language")
    offer.get_by_role("button", name="Decline").click()
    expect(page.locator("#message")).to_have_text("Declined the voice item (not my language).")
    phone.ok()  # the phone got CANCEL (200, 487, ACK) right after the decline, not at the push timeout
    item = floor.server.api("GET", f"/api/v1/work-items/{item_id}", token=floor.admin)
    # Alone on the floor, the agent is offered the call again (their phones ring again after a pause).
    first = item["offers"][0]
    assert (first["outcome"], first["reason"]) == ("declined", "not my language")
    trunk.ok()
