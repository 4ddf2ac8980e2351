"""The lab for call interop tests: the real server in-process with a trunk and a DID, and sipp processes.

The trunk is 127.0.0.2 (its allowed source); phones register from 127.0.0.1 with digest auth; every
sipp runs with a timeout and its statistics file; the server's ``call.*`` events are collected.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cti_server.events import Event
from cti_server.server import CtiServer
from tests.conftest import free_port, make_config
from tests.interop.conftest import read_sipp_stats, require_tool

SCENARIOS = Path(__file__).parent
TRUNK_IP = "127.0.0.2"
DID = "15550100"
USERS = {"1001": "secret1001", "1002": "secret1002"}
RUN_TIMEOUT = 25.0


@dataclass
class Sipp:
    """One sipp process."""

    process: asyncio.subprocess.Process
    stat_file: Path
    name: str

    async def result(self, seconds: float = RUN_TIMEOUT) -> tuple[int, dict[str, str], str]:
        try:
            async with asyncio.timeout(seconds):
                out, _ = await self.process.communicate()
        except TimeoutError:
            self.process.kill()
            out, _ = await self.process.communicate()
        code = self.process.returncode if self.process.returncode is not None else -1
        return code, read_sipp_stats(self.stat_file), out.decode(errors="replace")[-3000:]

    async def ok(self, seconds: float = RUN_TIMEOUT) -> dict[str, str]:
        code, stats, output = await self.result(seconds)
        assert code == 0, f"sipp {self.name} failed ({code}): {output}"
        return stats

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


class Lab:
    """The server plus the sipps of one test, and the call events it published."""

    def __init__(self, server: CtiServer, sip_port: int, tmp: Path) -> None:
        self.server = server
        self.sip_port = sip_port
        self.tmp = tmp
        self.events: list[Event] = []
        self.sipps: list[Sipp] = []
        server.bus.subscribe("call.*", self.events.append)

    async def sipp(self, name: str, *args: str, ip: str = "127.0.0.1") -> Sipp:
        binary = require_tool("sipp", "sip-tester")
        stat_file = self.tmp / f"{name}.csv"
        error_file = self.tmp / f"{name}.err"
        argv = [binary, *args, "-i", ip, "-nostdin", "-timeout", f"{int(RUN_TIMEOUT)}s", "-timeout_error",
                "-trace_stat", "-stf", str(stat_file), "-trace_err", "-error_file", str(error_file)]
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, cwd=self.tmp)
        run = Sipp(process, stat_file, name)
        self.sipps.append(run)
        return run

    async def phone(self, user: str, scenario: str, *extra: str) -> Sipp:
        """Start a phone's answering sipp, then register its contact (user, digest, Contact port)."""
        port = free_port()
        uas = await self.sipp(f"phone{user}", "-sf", str(SCENARIOS / scenario), "-p", str(port),
                              "-mp", str(free_port()), "-rtp_echo", "-m", "1", *extra)
        users = self.tmp / f"reg{user}.csv"
        users.write_text(f"SEQUENTIAL\n{user};{USERS[user]};{port}\n")
        register = await self.sipp(f"register{user}", f"127.0.0.1:{self.sip_port}", "-sf",
                                   str(SCENARIOS / "phone_register.xml"), "-inf", str(users),
                                   "-au", "[field0]", "-ap", "[field1]", "-m", "1", "-p", "0")
        await register.ok()
        return uas

    async def trunk_call(self, scenario: str, *extra: str, service: str = DID) -> Sipp:
        return await self.sipp("trunk", f"127.0.0.1:{self.sip_port}", "-sf", str(SCENARIOS / scenario),
                               "-s", service, "-m", "1", "-p", "0", "-mp", str(free_port()), *extra,
                               ip=TRUNK_IP)

    def topics(self) -> list[str]:
        return [e.topic for e in self.events]

    async def ended(self, seconds: float = 10.0) -> Event:
        async with asyncio.timeout(seconds):
            while True:
                for event in self.events:
                    if event.topic == "call.ended":
                        return event
                await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def calls_lab(tmp_path: Path) -> AsyncIterator[Any]:
    """``start(sip=..., media=..., **calls)`` -> a started ``Lab`` (``sip``/``media``: overrides of those
    config sections, e.g. short timers); everything is stopped on exit."""
    labs: list[Lab] = []

    async def start(*, sip: dict[str, Any] | None = None, media: dict[str, Any] | None = None,
                    **calls: Any) -> Lab:
        sip_port = free_port()
        # Below the ephemeral range (where sipp's media ports come from), apart from other tests' ranges.
        base = random.randrange(20000, 32000, 200)
        calls.setdefault("trunks", [{"name": "carrier", "host": TRUNK_IP, "allowed_sources": [TRUNK_IP]}])
        calls.setdefault("dids", [{"number": f"+{DID}", "call_center": "support", "users": ["1001"]}])
        config = make_config(
            sip={"udp_port": sip_port, "tcp_port": sip_port, "digest_algorithms": ["MD5"], **(sip or {})},
            media={"rtp_port_min": base, "rtp_port_max": base + 199, **(media or {})},
            calls=calls,
        )
        server = CtiServer(config)
        await server.start()
        lab = Lab(server, sip_port, tmp_path)
        labs.append(lab)
        return lab

    yield start
    for lab in labs:
        for run in lab.sipps:
            run.kill()
            with contextlib.suppress(Exception):
                await run.process.wait()
        await lab.server.stop()
