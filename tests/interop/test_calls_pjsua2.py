"""Attended transfer (REFER with Replaces, RFC 3891) by a real PJSIP phone (pjsua2) through the B2BUA.

The trunk (sipp on 127.0.0.2) calls the DID, which rings pjsua2 as user 1001; pjsua2 answers, calls user
1002 (a sipp phone) through the server as the consultation call, then transfers the trunk's call to it
with ``xferReplaces``. The server must bridge the trunk with 1002, report call.transferred (attended),
end the consultation call as transferred, and release both of 1001's legs.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.interop.calls.lab import SCENARIOS, USERS, calls_lab
from tests.interop.conftest import PeerProcess, require_module

pytestmark = pytest.mark.interop


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Any]:
    async with calls_lab(tmp_path) as start:
        yield start


async def test_attended_transfer_with_replaces_from_pjsua2(lab: Any) -> None:
    require_module("pjsua2", "pjsua2-python")
    lab = await lab()
    target = await lab.phone("1002", "phone_answer.xml")
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(SCENARIOS / "pjsua2_attended_transfer.py"),
        "--server", f"127.0.0.1:{lab.sip_port}", "--user", "1001", "--password", USERS["1001"],
        "--target", "1002",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    phone = PeerProcess(process)
    try:
        await phone.next_event("registered")
        trunk = await lab.trunk_call("trunk_call.xml", "-d", "6000")
        done = await phone.next_event("done", seconds=25)
        assert done["transfer_code"] == 200
        assert await phone.finish() == 0
        await trunk.ok()
        await target.ok()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    by_call: dict[str, list[str]] = {}
    for event in lab.events:
        by_call.setdefault(event.data["call_id"], []).append(event.topic)
    transferred = [e for e in lab.events if e.topic == "call.transferred"]
    assert len(transferred) == 1 and transferred[0].data["kind"] == "attended"
    first = transferred[0].data["call_id"]
    # pjsua2 answers at once (no 180), so there is no call.ringing.
    assert by_call[first] == ["call.offered", "call.answered", "call.transferred", "call.ended"]
    consultation = next(cid for cid in by_call if cid != first)
    ended = {e.data["call_id"]: e for e in lab.events if e.topic == "call.ended"}
    assert ended[consultation].data["reason"] == "transferred"
    assert ended[first].data["reason"] == "caller_hangup"  # the trunk hung up on 1002 in the end
    assert ended[first].data["media"]["b"]["packets_received"] > 0  # 1002's audio reached the bridge
