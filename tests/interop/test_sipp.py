"""sipp (Debian sip-tester) registering with digest auth and sending OPTIONS to the running server.

sipp 3.6 computes digest responses with MD5 only (``createAuthHeader: authentication must use MD5 or
AKAv1-MD5``), so these servers offer MD5 alone; SHA-256 is covered by pjsua2 and the unit tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.interop.conftest import SIPP_SCENARIOS, USERS, ServerFactory, run_sipp

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_sipp_registers_two_users_with_digest_then_options(
    start_server: ServerFactory, tmp_path: Path, transport: str
) -> None:
    server = await start_server(digest_algorithms=["MD5"])
    run = await run_sipp(server, SIPP_SCENARIOS / "register_options.xml", USERS, tmp_path,
                         transport=transport)
    assert run.returncode == 0, f"sipp failed:\n{run.output[-3000:]}\n{run.errors[-3000:]}"
    assert run.count("SuccessfulCall(C)") == 2
    assert run.count("FailedCall(C)") == 0
    bindings = await server.registrations()
    assert sorted(b["aor"] for b in bindings) == ["sip:1001@cti.local", "sip:1002@cti.local"]
    for binding in bindings:
        assert binding["transport"] == transport
        assert binding["user_agent"] == "sipp interop test"
        assert 0 < binding["expires_in"] <= 300
        assert binding["source"][0] == "127.0.0.1"


async def test_sipp_with_wrong_password_is_refused_and_binds_nothing(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    server = await start_server(digest_algorithms=["MD5"])
    run = await run_sipp(server, SIPP_SCENARIOS / "register_options.xml", {"1001": "wrong"}, tmp_path)
    assert run.returncode != 0
    assert run.count("FailedCall(C)") == 1
    assert run.count("SuccessfulCall(C)") == 0
    assert await server.registrations() == []
