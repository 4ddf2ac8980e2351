"""Calls per second through the B2BUA: our server against sippy's B2BUA, same load, same machine.

A sipp UAC calls (INVITE, 200, ACK, BYE; SDP but no RTP) through the B2BUA under test to a sipp UAS,
stepping the call rate; a step passes when at least 99.9% of its calls complete and it ends within 1.25x
its planned seconds (a B2BUA that falls behind still completes late calls, at the rate it can carry).
The B2BUA is pinned to CPU 0 (``taskset -c 0``), both sipps to CPU 1. Our server routes the calls as a
real trunk call: the UAC's address is an allowed trunk source, the called number is a DID ringing user
``bench``, and the UAS is that user's registered contact (a REGISTER with digest auth first). Media is
anchored as in production (two RTP endpoints per call). sippy runs as ``b2bua --static_route`` to the UAS.

    .venv/bin/pip install -e '.[bench]'     # sippy, only for this benchmark
    .venv/bin/python bench/b2bua_bench.py --rates 100,200,300,400 --seconds 10

Three B2BUAs are measured in turn: ``cti-b2bua-core`` (this script's ``--serve-core``: the SIP stack,
registrar and B2BUA of the server and nothing else), ``cti-server`` (the whole server, whose other
components react to every call event: screen pops, call logs, webhooks) and ``sippy``.

Prints one JSON line per step (with the CPU seconds the B2BUA process used, from /proc) and a summary
with the best passing rate of each, their ratio, and calls per CPU-second (the capacity of one core,
which stays meaningful when other work shares the machine).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cti_server.calls.component import CallsComponent
    from cti_server.sip.registrar import RegistrarComponent
    from cti_server.sip.stack import SipComponent

ROOT = Path(__file__).resolve().parent.parent
REGISTER_SCENARIO = ROOT / "tests" / "interop" / "calls" / "phone_register.xml"
VENV_BIN = Path(sys.executable).parent
DID = "15550100"
USER, PASSWORD = "bench", "bench-secret"
PASS_RATIO = 0.999
KEPT_UP_RATIO = 1.25
"""A step passes only if it also ended within this multiple of its planned seconds: sipp retransmits
until a late call completes, so a B2BUA far behind the offered rate still completes 99.9 % of its calls,
at the rate it can carry (``carried_rate``), not the one offered."""


def emit(obj: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def server_config(sip_port: int) -> str:
    return f"""
[http]
host = "127.0.0.1"
port = 0
[log]
level = "warning"
format = "json"
[sip]
host = "127.0.0.1"
udp_port = {sip_port}
tcp_port = {sip_port}
digest_algorithms = ["MD5"]
[[sip.users]]
username = "{USER}"
password = "{PASSWORD}"
[media]
rtp_port_min = 30000
rtp_port_max = 39999
rtp_timeout = 0.0
[calls]
[[calls.trunks]]
name = "sipp"
host = "127.0.0.1"
port = 5060
allowed_sources = ["127.0.0.1"]
[[calls.dids]]
number = "{DID}"
call_center = "bench"
users = ["{USER}"]
"""


def wait_udp_answer(port: int, seconds: float = 90.0) -> None:
    """Wait until something answers an OPTIONS on ``port`` (the server is up)."""
    deadline = time.monotonic() + seconds
    message = (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
               "Via: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bKbench\r\n"
               "From: <sip:bench@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: bench-up\r\n"
               "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        while time.monotonic() < deadline:
            s.sendto(message, ("127.0.0.1", port))
            with contextlib.suppress(OSError):
                s.recvfrom(65535)
                return
    raise RuntimeError(f"nothing answers SIP on UDP {port}")


@contextlib.contextmanager
def process(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    handle = log.open("wb")
    proc = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=log.parent)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        handle.close()


def sipp(*args: str) -> list[str]:
    return ["taskset", "-c", "1", shutil.which("sipp") or "sipp", *args, "-nostdin", "-i", "127.0.0.1"]


def register_uas(sip_port: int, uas_port: int, work: Path) -> None:
    users = work / "bench_user.csv"
    users.write_text(f"SEQUENTIAL\n{USER};{PASSWORD};{uas_port}\n")
    result = subprocess.run(
        sipp(f"127.0.0.1:{sip_port}", "-sf", str(REGISTER_SCENARIO), "-inf", str(users), "-au", "[field0]",
             "-ap", "[field1]", "-m", "1", "-p", "0", "-timeout", "10s", "-timeout_error"),
        capture_output=True, cwd=work, timeout=30, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"registering the UAS failed: {result.stdout.decode(errors='replace')[-2000:]}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (and its waited-for children) from /proc, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(v) for v in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def run_step(target_port: int, rate: int, seconds: int, work: Path, name: str,
             pid: int) -> dict[str, object]:
    calls = rate * seconds
    cpu_before = cpu_seconds(pid)
    stats = work / f"{name}_{rate}.csv"
    argv = sipp(f"127.0.0.1:{target_port}", "-sn", "uac", "-s", DID, "-r", str(rate), "-m", str(calls),
                "-d", "0", "-p", "0", "-l", str(max(rate * 4, 100)), "-timeout", f"{seconds + 30}s",
                "-trace_stat", "-stf", str(stats), "-fd", "1")
    started = time.monotonic()
    try:
        subprocess.run(argv, capture_output=True, cwd=work, timeout=seconds + 60, check=False)
    except subprocess.TimeoutExpired:
        pass  # an overloaded step: whatever sipp wrote to its statistics file counts
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(pid) - cpu_before
    row = last_stats_row(stats)
    ok = int(row.get("SuccessfulCall(C)", "0") or 0)
    failed = int(row.get("FailedCall(C)", "0") or 0)
    retrans = int(row.get("Retransmissions(C)", "0") or 0)
    completed = ok / calls if calls else 0.0
    kept_up = elapsed <= seconds * KEPT_UP_RATIO
    return {"b2bua": name, "rate": rate, "calls": calls, "successful": ok, "failed": failed,
            "retransmissions": retrans, "completed": round(completed, 5),
            "passed": completed >= PASS_RATIO and kept_up, "kept_up": kept_up,
            "seconds": round(elapsed, 1), "carried_rate": round(ok / elapsed, 1) if elapsed > 0 else None,
            "cpu_seconds": round(cpu, 2),
            "calls_per_cpu_second": round(ok / cpu, 1) if cpu > 0 else None}


def last_stats_row(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if len(lines) < 2:
        return {}
    return dict(zip(lines[0].split(";"), lines[-1].split(";"), strict=False))


async def start_core(config_path: Path) -> tuple[SipComponent, RegistrarComponent, CallsComponent]:
    """Start only the SIP stack, the registrar and the B2BUA, as `cti-server run` starts them (cached
    loggers, GC tuning; no store, web edge or call-event subscribers)."""
    from cti_server.calls.component import CallsComponent
    from cti_server.config import load_config
    from cti_server.event_loop import tune_garbage_collector, tune_switch_interval
    from cti_server.events import EventBus
    from cti_server.logs import configure_logging
    from cti_server.sip.registrar import RegistrarComponent
    from cti_server.sip.stack import SipComponent

    config = load_config(config_path)
    configure_logging(config.log, cache_loggers=True)
    bus = EventBus()
    sip = SipComponent(config, bus)
    registrar = RegistrarComponent.attach(sip, config.sip, bus)
    calls = CallsComponent.attach(sip, registrar.registrar, config, bus)
    await sip.start()
    await registrar.start()
    await calls.start()
    tune_garbage_collector()
    tune_switch_interval(config.media.relay_thread)
    return sip, registrar, calls


async def serve_core(config_path: Path) -> None:
    """Serve with the core of ``start_core`` until SIGINT or SIGTERM."""
    import asyncio
    import signal

    sip, registrar, calls = await start_core(config_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await calls.stop()
    await registrar.stop()
    await sip.stop()


IN_PROCESS_SDP = (b"v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                  b"t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
UAC = ("127.0.0.1", 5061)
UAS = ("127.0.0.1", 5062)


class _Wire:
    """Stands in for the UDP socket of the stack under test: what it sends is kept per peer address."""

    def __init__(self, local: tuple[str, int]) -> None:
        self.local = local
        self.sent: dict[tuple[str, int], list[bytes]] = {UAC: [], UAS: []}

    def sendto(self, data: bytes, remote: tuple[str, int]) -> None:
        self.sent.setdefault(remote, []).append(data)

    def take(self, remote: tuple[str, int]) -> list[bytes]:
        out, self.sent[remote] = self.sent[remote], []
        return out


def _header(message: bytes, name: bytes) -> bytes:
    start = message.index(b"\r\n" + name + b": ") + len(name) + 4
    return message[start:message.index(b"\r\n", start)]


def _answer(request: bytes, status: bytes, to_tag: bytes, body: bytes = b"") -> bytes:
    """A sipp-UAS-like response to ``request`` (its Via, From, To with our tag, Call-ID, CSeq)."""
    to = _header(request, b"To")
    if b"tag=" not in to:
        to += b";tag=" + to_tag
    lines = [b"SIP/2.0 " + status, b"Via: " + _header(request, b"Via"), b"From: " + _header(request, b"From"),
             b"To: " + to, b"Call-ID: " + _header(request, b"Call-ID"), b"CSeq: " + _header(request, b"CSeq"),
             b"Contact: <sip:bench@%s:%d;transport=UDP>" % (UAS[0].encode(), UAS[1])]
    if body:
        lines.append(b"Content-Type: application/sdp")
    lines += [b"Content-Length: %d" % len(body), b"", body]
    return b"\r\n".join(lines)


def _uac_request(method: bytes, port: int, call: int, cseq: int, to_tag: bytes = b"",
                 body: bytes = b"") -> bytes:
    """What sipp's uac scenario sends (INVITE with SDP, ACK, BYE), as text of call ``call``."""
    did, host = DID.encode(), UAC[0].encode()
    to = b"%s <sip:%s@127.0.0.1:%d>" % (did, did, port) + (b";tag=" + to_tag if to_tag else b"")
    lines = [b"%s sip:%s@127.0.0.1:%d SIP/2.0" % (method, did, port),
             b"Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK-%d-%d-%d" % (host, UAC[1], call, cseq, len(method)),
             b"From: sipp <sip:sipp@%s:%d>;tag=%dSIPpTag00%d" % (host, UAC[1], call, call),
             b"To: " + to, b"Call-ID: %d-bench@%s" % (call, host),
             b"CSeq: %d %s" % (cseq, method), b"Contact: sip:sipp@%s:%d" % (host, UAC[1]),
             b"Max-Forwards: 70", b"Subject: Performance Test"]
    if body:
        lines.append(b"Content-Type: application/sdp")
    lines += [b"Content-Length: %d" % len(body), b"", body]
    return b"\r\n".join(lines)


async def run_in_process(config_path: Path, calls: int) -> dict[str, object]:
    """``calls`` sipp-like calls (INVITE/180/200/ACK/BYE/200 on both legs) through the stack, registrar and
    B2BUA of ``--serve-core``, fed as datagrams to the stack with no sockets or sipp in between (RTP
    endpoints are real): the CPU per call of our code alone, steady even on a loaded machine."""
    import asyncio
    import time as _time

    from cti_server.sip.bindings import Binding
    from cti_server.sip.registrar import aor_for
    from cti_server.sip.transport import UdpFlow

    sip, registrar, calls_component = await start_core(config_path)
    config = sip.config
    transports = sip._transports
    assert transports is not None and transports.udp is not None and sip.udp_address is not None
    port = sip.udp_address[1]
    wire = _Wire(sip.udp_address)
    real_udp, transports.udp = transports.udp, wire  # type: ignore[assignment]
    await registrar.registrar.bindings.add(Binding(
        aor=aor_for(USER, config.sip.realm), key="bench", contact=f"sip:{USER}@{UAS[0]}:{UAS[1]}",
        expires_at=_time.time() + 3600, call_id="bench-register", cseq=1, source=UAS, transport="udp"))
    flow_a, flow_b = UdpFlow(wire, UAC), UdpFlow(wire, UAS)  # type: ignore[arg-type]
    deliver = sip._on_message

    async def settle() -> None:
        for _ in range(4):
            await asyncio.sleep(0)

    completed = 0
    cpu_started = _time.process_time()
    started = _time.perf_counter()
    for call in range(calls):
        deliver(_uac_request(b"INVITE", port, call, 1, body=IN_PROCESS_SDP), flow_a)
        await settle()
        invite_b = next(m for m in wire.take(UAS) if m.startswith(b"INVITE"))
        tag = b"uas%d" % call
        deliver(_answer(invite_b, b"180 Ringing", tag), flow_b)
        deliver(_answer(invite_b, b"200 OK", tag, IN_PROCESS_SDP), flow_b)
        await settle()
        ok_a = next(m for m in wire.take(UAC) if m.startswith(b"SIP/2.0 200"))
        a_tag = _header(ok_a, b"To").rsplit(b"tag=", 1)[1]
        deliver(_uac_request(b"ACK", port, call, 1, a_tag), flow_a)
        deliver(_uac_request(b"BYE", port, call, 2, a_tag), flow_a)
        await settle()
        bye_b = next(m for m in wire.take(UAS) if m.startswith(b"BYE"))
        deliver(_answer(bye_b, b"200 OK", tag), flow_b)
        await settle()
        if any(m.startswith(b"SIP/2.0 200") and b"BYE" in _header(m, b"CSeq") for m in wire.take(UAC)):
            completed += 1
    cpu = _time.process_time() - cpu_started
    wall = _time.perf_counter() - started
    transports.udp = real_udp
    await calls_component.stop()
    await registrar.stop()
    await sip.stop()
    return {"b2bua": "cti-b2bua-core in process", "calls": calls, "completed": completed,
            "cpu_seconds": round(cpu, 3), "cpu_us_per_call": round(cpu / calls * 1e6),
            "calls_per_cpu_second": round(calls / cpu, 1), "wall_seconds": round(wall, 2),
            "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0]}


def bench_ours(rates: list[int], seconds: int, work: Path, uas_port: int,
               core: bool = False, event_loop: str = "auto") -> list[dict[str, object]]:
    port = free_port()
    config = work / "bench.toml"
    config.write_text(server_config(port))
    name = "cti-b2bua-core" if core else "cti-server"
    if core:
        script = str(Path(__file__).resolve())
        argv = ["taskset", "-c", "0", sys.executable, script, "--serve-core", str(config),
                "--event-loop", event_loop]
    else:
        argv = ["taskset", "-c", "0", str(VENV_BIN / "cti-server"), "run", "--config", str(config)]
    results = []
    with process(argv, work / f"{name}.log") as server:
        wait_udp_answer(port)
        register_uas(port, uas_port, work)
        for rate in rates:
            result = run_step(port, rate, seconds, work, name, server.pid)
            emit(result)
            results.append(result)
            time.sleep(2)
    return results


def bench_sippy(rates: list[int], seconds: int, work: Path, uas_port: int) -> list[dict[str, object]]:
    b2bua = VENV_BIN / "b2bua"
    if not b2bua.exists():
        emit({"b2bua": "sippy", "skipped": "pip install -e '.[bench]' installs it"})
        return []
    port = free_port()
    argv = ["taskset", "-c", "0", str(b2bua), "--foreground=on", "--auth_enable=off", "--acct_enable=off",
            "--sip_address=127.0.0.1", f"--sip_port={port}", f"--static_route=127.0.0.1:{uas_port}"]
    results = []
    with process(argv, work / "sippy.log") as sippy:
        wait_udp_answer(port)
        for rate in rates:
            result = run_step(port, rate, seconds, work, "sippy", sippy.pid)
            emit(result)
            results.append(result)
            time.sleep(2)
    return results


def per_cpu(results: list[dict[str, object]]) -> float:
    """Calls per CPU-second of the B2BUA over every step (what one core would carry)."""
    passing = [r for r in results if r.get("cpu_seconds")]
    calls = sum(int(str(r["successful"])) for r in passing)
    cpu = sum(float(str(r["cpu_seconds"])) for r in passing)
    return round(calls / cpu, 1) if cpu else 0.0


def best(results: list[dict[str, object]]) -> int:
    passing = [int(str(r["rate"])) for r in results if r.get("passed")]
    return max(passing) if passing else 0


def main() -> int:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing
    from cti_server.event_loop import loop_factory, run_on_event_loop

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="100,200,300,400", help="comma-separated calls per second")
    parser.add_argument("--seconds", type=int, default=10, help="duration of each step")
    parser.add_argument("--skip-sippy", action="store_true")
    parser.add_argument("--skip-server", action="store_true", help="only the B2BUA core and sippy")
    parser.add_argument("--skip-core", action="store_true", help="not the B2BUA core alone")
    parser.add_argument("--serve-core", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--event-loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                        help="the B2BUA core's loop, as server.event_loop of `cti-server run` (auto: uvloop "
                             "when installed, pip install .[speed])")
    parser.add_argument("--uvloop", action="store_const", const="uvloop", dest="event_loop",
                        help="same as --event-loop uvloop")
    parser.add_argument("--in-process", type=int, metavar="CALLS", default=0,
                        help="no sipp: feed CALLS calls' datagrams straight to the core's stack in this "
                             "process and print its CPU per call (steady on a loaded machine)")
    args = parser.parse_args()
    if args.in_process:
        with tempfile.TemporaryDirectory(prefix="b2bua-inproc-") as tmp:
            config = Path(tmp) / "bench.toml"
            config.write_text(server_config(free_port()))
            result = run_on_event_loop(args.event_loop, run_in_process(config, args.in_process))
        emit({**result, "load_average": os.getloadavg()[0]})
        return 0
    if args.serve_core is not None:
        run_on_event_loop(args.event_loop, serve_core(args.serve_core))
        return 0
    rates = [int(r) for r in args.rates.split(",")]
    emit({"core_event_loop": "asyncio" if loop_factory(args.event_loop) is None else "uvloop"})
    with tempfile.TemporaryDirectory(prefix="b2bua-bench-") as tmp:
        work = Path(tmp)
        uas_port = free_port()
        uas = sipp("-sn", "uas", "-p", str(uas_port), "-mp", str(free_port()))
        with process(uas, work / "uas.log"):
            time.sleep(0.5)
            core = [] if args.skip_core else bench_ours(rates, args.seconds, work, uas_port, core=True,
                                                        event_loop=args.event_loop)
            ours = [] if args.skip_server else bench_ours(rates, args.seconds, work, uas_port)
            theirs = [] if args.skip_sippy else bench_sippy(rates, args.seconds, work, uas_port)
    summary = {"cpu_count": os.cpu_count(), "load_average": os.getloadavg()[0],
               "core_best_rate": best(core), "server_best_rate": best(ours), "sippy_best_rate": best(theirs),
               "core_to_sippy": round(best(core) / best(theirs), 2) if best(theirs) else None,
               "core_calls_per_cpu_second": per_cpu(core), "server_calls_per_cpu_second": per_cpu(ours),
               "sippy_calls_per_cpu_second": per_cpu(theirs)}
    emit({"summary": summary})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
