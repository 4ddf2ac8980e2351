"""Interop fixtures: the real server in-process on free loopback ports, real peers as subprocesses.

Every peer runs in its own process with a timeout (pjsip's and pyVoIP's threads stay out of pytest),
and talks only to 127.0.0.1. A peer that is not installed is skipped with a loud reason naming the
package that ``scripts/setup.sh --test`` installs; a peer that is installed and fails is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cti_server.api.keys import STORE_KEY
from cti_server.server import CtiServer
from cti_server.store import CLI_ACTOR
from cti_server.store.credentials import create_session
from cti_server.store.directory import create_user
from tests.conftest import make_config

HERE = Path(__file__).parent
PEERS = HERE / "peers"
SIPP_SCENARIOS = HERE / "sipp"
PEER_TIMEOUT = 20.0

USERS = {"1001": "secret1001", "1002": "secret1002"}


def require_tool(name: str, package: str) -> str:
    """The path of executable ``name``, or a loud skip naming the Debian package to install."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"INTEROP PEER MISSING: {name} is not installed (Debian package {package}; "
                    "scripts/setup.sh --test installs it)")
    return path


def require_module(name: str, package: str) -> None:
    """Skip loudly when Python module ``name`` (PyPI ``package``) cannot be imported."""
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"INTEROP PEER MISSING: Python module {name} is not installed (pip install {package}; "
                    "scripts/setup.sh --test installs it)")


@dataclass
class RunningServer:
    """A started CtiServer and where to reach it."""

    server: CtiServer
    sip_port: int
    http_port: int
    host: str = "127.0.0.1"
    _admin_token: str = ""

    async def registrations(self, user: str | None = None) -> list[dict[str, Any]]:
        """The registrar's bindings through its HTTP API (``GET /api/v1/sip/registrations``)."""
        params = {"user": user} if user else {}
        url = f"http://{self.host}:{self.http_port}/api/v1/sip/registrations"
        headers = {"Authorization": f"Bearer {await self.admin_token()}"}
        async with aiohttp.ClientSession(headers=headers) as session, session.get(url, params=params) as resp:
            assert resp.status == 200, await resp.text()
            body: dict[str, Any] = await resp.json()
        items: list[dict[str, Any]] = body["registrations"]
        return items


    async def admin_token(self) -> str:
        """A session token of an admin made in the server's store (created on first use)."""
        if not self._admin_token:
            store = self.server.app[STORE_KEY]
            async with store.session() as db:
                admin = await create_user(db, CLI_ACTOR, "interop-admin", "admin", None)
                self._admin_token = await create_session(db, admin, 3600)
        return self._admin_token


ServerFactory = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def start_server() -> AsyncIterator[ServerFactory]:
    """``await start_server(**sip_overrides)``: a CtiServer with users 1001/1002 on free ports."""
    started: list[CtiServer] = []

    async def start(**sip: Any) -> RunningServer:
        config = make_config(sip=sip)
        server = CtiServer(config)
        await server.start()
        started.append(server)
        return RunningServer(server, config.sip.udp_port, server.web.port)

    yield start
    for server in started:
        await server.stop()


@dataclass
class PeerProcess:
    """A peer subprocess that prints one JSON object per line (the scripts in tests/interop/peers)."""

    process: asyncio.subprocess.Process
    events: list[dict[str, Any]] = field(default_factory=list)
    stderr_tail: bytes = b""

    async def next_event(self, name: str, seconds: float = PEER_TIMEOUT) -> dict[str, Any]:
        """Read lines until the event ``name``; fail with everything seen if the peer ends or stalls."""
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(seconds):
                while True:
                    line = await self.process.stdout.readline()
                    if not line:
                        break
                    with contextlib.suppress(json.JSONDecodeError):
                        event = json.loads(line)
                        self.events.append(event)
                        if event.get("event") == name:
                            return event
        except TimeoutError:
            pass
        await self.finish(seconds=2)
        raise AssertionError(f"peer never reported {name!r}; events {self.events}; "
                             f"stderr {self.stderr_tail.decode(errors='replace')[-2000:]}")

    async def send_line(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode() + b"\n")
        await self.process.stdin.drain()

    async def finish(self, seconds: float = PEER_TIMEOUT) -> int:
        """Wait for the exit code (killing the peer after ``seconds``) and keep the stderr tail."""
        try:
            async with asyncio.timeout(seconds):
                _out, err = await self.process.communicate()
        except TimeoutError:
            self.process.kill()
            _out, err = await self.process.communicate()
        self.stderr_tail = (err or b"")[-4000:]
        return self.process.returncode if self.process.returncode is not None else -1


async def start_python_peer(script: str, *args: str) -> PeerProcess:
    """Run ``tests/interop/peers/<script>`` with this interpreter."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(PEERS / script), *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    return PeerProcess(process)


@dataclass
class SippRun:
    """Outcome of one sipp run: exit code, the last statistics row and its error log."""

    returncode: int
    stats: dict[str, str]
    errors: str
    output: str

    def count(self, column: str) -> int:
        return int(self.stats.get(column, "0") or 0)


async def run_sipp(
    server: RunningServer,
    scenario: Path,
    users: dict[str, str],
    tmp_path: Path,
    *,
    transport: str = "udp",
    calls: int | None = None,
    extra: tuple[str, ...] = (),
    seconds: float = PEER_TIMEOUT,
) -> SippRun:
    """Run sipp once against ``server`` with ``users`` as its -inf injection file (field0;field1)."""
    sipp = require_tool("sipp", "sip-tester")
    users_csv = tmp_path / "users.csv"
    users_csv.write_text("SEQUENTIAL\n" + "".join(f"{u};{p}\n" for u, p in users.items()))
    stat_file = tmp_path / "sipp_stats.csv"
    error_file = tmp_path / "sipp_errors.log"
    argv = [
        sipp, f"{server.host}:{server.sip_port}", "-sf", str(scenario), "-inf", str(users_csv),
        # sipp 3.6 does not expand [field0] inside [authentication ...] but does expand -au/-ap:
        "-au", "[field0]", "-ap", "[field1]",
        "-m", str(calls if calls is not None else len(users)), "-l", "1", "-i", server.host, "-p", "0",
        "-t", "u1" if transport == "udp" else "t1", "-nostdin", "-timeout", f"{int(seconds)}s",
        "-timeout_error", "-max_recv_loops", "100", "-trace_stat", "-stf", str(stat_file), "-trace_err",
        "-error_file", str(error_file), *extra,
    ]
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
    )
    try:
        async with asyncio.timeout(seconds + 10):
            out, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        out, _ = await process.communicate()
    return SippRun(
        process.returncode if process.returncode is not None else -1,
        read_sipp_stats(stat_file),
        error_file.read_text(errors="replace") if error_file.exists() else "",
        out.decode(errors="replace"),
    )


def read_sipp_stats(path: Path) -> dict[str, str]:
    """The last row of a sipp ``-trace_stat`` file as {column: value} (columns separated by ';')."""
    if not path.exists():
        return {}
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if len(lines) < 2:
        return {}
    header = lines[0].split(";")
    return dict(zip(header, lines[-1].split(";"), strict=False))
