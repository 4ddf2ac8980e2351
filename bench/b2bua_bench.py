"""Calls per second through the B2BUA: our server against sippy's B2BUA, same load, same machine.

A sipp UAC calls (INVITE, 200, ACK, BYE; SDP but no RTP) through the B2BUA under test to a sipp UAS,
stepping the call rate; a step passes when at least 99.9% of its calls complete. The B2BUA is pinned to
CPU 0 (``taskset -c 0``), both sipps to CPU 1. Our server routes the calls as a real trunk call: the UAC's
address is an allowed trunk source, the called number is a DID ringing user ``bench``, and the UAS is
that user's registered contact (a REGISTER with digest auth first). Media is anchored as in production
(two RTP endpoints per call). sippy runs as ``b2bua --static_route`` to the UAS.

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

ROOT = Path(__file__).resolve().parent.parent
REGISTER_SCENARIO = ROOT / "tests" / "interop" / "calls" / "phone_register.xml"
VENV_BIN = Path(sys.executable).parent
DID = "15550100"
USER, PASSWORD = "bench", "bench-secret"
PASS_RATIO = 0.999


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
    return {"b2bua": name, "rate": rate, "calls": calls, "successful": ok, "failed": failed,
            "retransmissions": retrans, "completed": round(completed, 5), "passed": completed >= PASS_RATIO,
            "seconds": round(elapsed, 1), "cpu_seconds": round(cpu, 2),
            "calls_per_cpu_second": round(ok / cpu, 1) if cpu > 0 else None}


def last_stats_row(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if len(lines) < 2:
        return {}
    return dict(zip(lines[0].split(";"), lines[-1].split(";"), strict=False))


async def serve_core(config_path: Path) -> None:
    """Only the SIP stack, the registrar and the B2BUA (no store, web edge or call-event subscribers)."""
    import asyncio
    import signal

    from cti_server.calls.component import CallsComponent
    from cti_server.config import load_config
    from cti_server.events import EventBus
    from cti_server.logs import configure_logging
    from cti_server.sip.registrar import RegistrarComponent
    from cti_server.sip.stack import SipComponent

    config = load_config(config_path)
    configure_logging(config.log)
    bus = EventBus()
    sip = SipComponent(config, bus)
    registrar = RegistrarComponent.attach(sip, config.sip, bus)
    calls = CallsComponent.attach(sip, registrar.registrar, config, bus)
    components = [sip, registrar, calls]
    for component in components:
        await component.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for component in reversed(components):
        await component.stop()


def bench_ours(rates: list[int], seconds: int, work: Path, uas_port: int,
               core: bool = False, uvloop: bool = False) -> list[dict[str, object]]:
    port = free_port()
    config = work / "bench.toml"
    config.write_text(server_config(port))
    name = "cti-b2bua-core" if core else "cti-server"
    if core:
        script = str(Path(__file__).resolve())
        argv = ["taskset", "-c", "0", sys.executable, script, "--serve-core", str(config),
                *(["--uvloop"] if uvloop else [])]
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
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="100,200,300,400", help="comma-separated calls per second")
    parser.add_argument("--seconds", type=int, default=10, help="duration of each step")
    parser.add_argument("--skip-sippy", action="store_true")
    parser.add_argument("--skip-server", action="store_true", help="only the B2BUA core and sippy")
    parser.add_argument("--skip-core", action="store_true", help="not the B2BUA core alone")
    parser.add_argument("--serve-core", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--uvloop", action="store_true",
                        help="run the B2BUA core on uvloop (pip install .[speed])")
    args = parser.parse_args()
    if args.serve_core is not None:
        import asyncio

        if args.uvloop:
            import uvloop

            uvloop.install()
        asyncio.run(serve_core(args.serve_core))
        return 0
    rates = [int(r) for r in args.rates.split(",")]
    with tempfile.TemporaryDirectory(prefix="b2bua-bench-") as tmp:
        work = Path(tmp)
        uas_port = free_port()
        uas = sipp("-sn", "uas", "-p", str(uas_port), "-mp", str(free_port()))
        with process(uas, work / "uas.log"):
            time.sleep(0.5)
            core = [] if args.skip_core else bench_ours(rates, args.seconds, work, uas_port, core=True,
                                                        uvloop=args.uvloop)
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
