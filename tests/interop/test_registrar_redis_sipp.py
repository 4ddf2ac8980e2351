"""Two server processes sharing registrar bindings on Redis (``[sip.registrar] bindings = "redis"``).

Both servers run in this test process, on their own loopback SIP ports and RTP ranges, with one Redis
prefix: the desk phone (a sipp UAS, its contact registered by a second sipp with digest auth) registers
with server A; the trunk (sipp on 127.0.0.2) calls the DID at server B, which finds the binding in Redis,
rings the phone and bridges the call with RTP both ways.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cti_server.api.registrations import BINDINGS_KEY
from tests.interop.calls.lab import calls_lab
from tests.routing.conftest import drop_prefix

pytestmark = [pytest.mark.interop, pytest.mark.redis]


@pytest.fixture
async def shared_redis_labs(tmp_path: Path) -> AsyncIterator[Any]:
    """Two started labs (servers A and B) whose registrars share one Redis prefix."""
    prefix = f"test:interop:bindings:{uuid.uuid4().hex[:12]}:"
    registrar = {"bindings": "redis", "redis_prefix": prefix}
    try:
        async with calls_lab(tmp_path) as start:
            yield [await start(sip={"registrar": registrar}) for _ in range(2)]
    finally:
        await drop_prefix(prefix)


async def test_phone_registered_at_one_server_is_rung_by_a_call_arriving_at_the_other(
    shared_redis_labs: Any,
) -> None:
    a, b = shared_redis_labs
    assert a.sip_port != b.sip_port
    phone = await a.phone("1001", "phone_answer.xml")
    (binding,) = await b.server.app[BINDINGS_KEY].lookup("sip:1001@cti.local")
    assert binding.source[0] == "127.0.0.1"
    trunk = await b.trunk_call("trunk_call.xml", "-d", "2500")
    await trunk.ok()
    await phone.ok()
    ended = await b.ended()
    assert b.topics() == ["call.offered", "call.ringing", "call.answered", "call.ended"]
    assert b.events[2].data["answered_by"] == "1001"
    assert ended.data["reason"] == "caller_hangup"
    media = ended.data["media"]
    assert media["a"]["packets_received"] > 20 and media["b"]["packets_sent"] > 20, media
    assert media["b"]["packets_received"] > 20 and media["a"]["packets_sent"] > 20, media
    assert a.events == []  # server A only holds the registration
