"""Real SIP phones registering with the running server: pjsua2 (PJSIP), pyVoIP and baresip (Debian).

Each phone runs in a subprocess with a timeout. The test waits for the phone to report its
registration, checks the binding through the registrar's HTTP API, lets it unregister, and checks
that the binding is gone.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.conftest import free_port
from tests.interop.conftest import (
    USERS,
    PeerProcess,
    ServerFactory,
    require_module,
    require_tool,
    start_python_peer,
)

pytestmark = pytest.mark.interop


@pytest.mark.parametrize(
    ("algorithms", "transport", "outbound"),
    [(["SHA-256", "MD5"], "udp", False), (["MD5"], "tcp", True)],
)
async def test_pjsua2_registers_and_unregisters(
    start_server: ServerFactory, algorithms: list[str], transport: str, outbound: bool
) -> None:
    require_module("pjsua2", "pjsua2-python")
    server = await start_server(digest_algorithms=algorithms)
    peer = await start_python_peer(
        "pjsua2_register.py", "--server", f"127.0.0.1:{server.sip_port}", "--user", "1001",
        "--password", USERS["1001"], "--transport", transport, "--expires", "300",
        *(["--outbound"] if outbound else []),
    )
    with capture_logs() as logs:
        registered = await peer.next_event("registered")
    accepted = [e for e in logs if e["event"] == "register_accepted"]
    # PJSIP 2.15 answers the preferred (first) challenge it supports: SHA-256 when offered.
    assert [(e["algorithm"], e["qop"]) for e in accepted] == [(algorithms[0], "auth")]
    assert registered["code"] == 200
    assert registered["active"] is True
    (binding,) = await server.registrations("1001")
    assert binding["transport"] == transport
    assert binding["user_agent"] == "pjsua2-interop"
    # With RFC 5626 outbound the binding is keyed by the phone's instance-id and reg-id.
    assert (binding["reg_id"] is not None) is outbound
    await peer.send_line("unregister")
    unregistered = await peer.next_event("unregistered")
    assert unregistered["code"] == 200
    assert await peer.finish() == 0
    assert await server.registrations("1001") == []


async def test_pjsua2_with_wrong_password_is_refused(start_server: ServerFactory) -> None:
    require_module("pjsua2", "pjsua2-python")
    server = await start_server()
    peer = await start_python_peer(
        "pjsua2_register.py", "--server", f"127.0.0.1:{server.sip_port}", "--user", "1001",
        "--password", "wrong",
    )
    registered = await peer.next_event("registered")
    assert registered["code"] == 401
    assert await peer.finish() == 1
    assert await server.registrations() == []


async def test_pyvoip_phone_registers_and_unregisters(start_server: ServerFactory) -> None:
    require_module("pyVoIP", "pyVoIP")
    server = await start_server()
    peer = await start_python_peer(
        "pyvoip_register.py", "--server", "127.0.0.1", "--port", str(server.sip_port), "--user", "1002",
        "--password", USERS["1002"],
    )
    registered = await peer.next_event("registered")
    assert registered["status"] == "REGISTERED"
    (binding,) = await server.registrations("1002")
    assert binding["user_agent"].startswith("pyVoIP")
    await peer.send_line("unregister")
    assert (await peer.next_event("unregistered"))["ok"] is True
    assert await peer.finish() == 0
    assert await server.registrations("1002") == []


BARESIP_CONFIG = """\
poll_method		epoll
sip_listen		127.0.0.1:{port}
module_path		/usr/lib/baresip/modules
module			g711.so
module			ausine.so
module			aufile.so
module_app		account.so
audio_player		aufile,/dev/null
audio_source		ausine,440
audio_alert		aufile,/dev/null
"""


async def test_baresip_registers_then_unregisters_on_exit(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    # baresip 1.0 (libre) gives up ("Function not implemented") when any challenge uses an algorithm
    # it does not know, even if an MD5 one follows: offer MD5 alone.
    baresip = require_tool("baresip", "baresip")
    server = await start_server(digest_algorithms=["MD5"])
    (tmp_path / "config").write_text(BARESIP_CONFIG.format(port=free_port()))
    (tmp_path / "accounts").write_text(
        f"<sip:1002@127.0.0.1:{server.sip_port}>;auth_pass={USERS['1002']};regint=300\n"
    )
    process = await asyncio.create_subprocess_exec(
        baresip, "-f", str(tmp_path), "-t", "3", stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    peer = PeerProcess(process)
    bindings: list[dict[str, Any]] = []
    async with asyncio.timeout(6):
        while not bindings and process.returncode is None:
            await asyncio.sleep(0.2)
            bindings = await server.registrations("1002")
    assert len(bindings) == 1, f"baresip did not register: {bindings}"
    assert bindings[0]["user_agent"].startswith("baresip")
    await peer.finish(seconds=15)
    # On exit (-t) baresip sends REGISTER with expires=0.
    assert await server.registrations("1002") == []
