"""SIP load benchmark: sipp drives OPTIONS and REGISTER-with-digest-auth at the running server.

The server runs as ``cti-server run`` in a subprocess (log level warning), pinned to CPU 0 with
``taskset`` when available; sipp runs pinned to CPU 1. For each rate step sipp sends ``rate`` calls
per second for ``--duration`` seconds; one OPTIONS call is one transaction, one REGISTER call is two
(REGISTER -> 401, REGISTER with credentials -> 200). The report gives transactions/s achieved,
failed calls and retransmissions; ``--find-max`` steps the rate up until a step fails.

    .venv/bin/python bench/sip_bench.py --scenario options --rates 1000,2000,3000 --duration 10
    .venv/bin/python bench/sip_bench.py --scenario register --rates 500,1000 --users 1000
    .venv/bin/python bench/sip_bench.py --scenario options --find-max --start 1000 --step 500

``--profile`` runs the server under cProfile and prints the top functions after the run.
Only loopback addresses are used; every sipp run is bounded by ``-m`` and ``-timeout``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import pstats
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = Path(__file__).resolve().parent / "scenarios"
REALM = "cti.local"
TRANSACTIONS_PER_CALL = {"options": 1, "register": 2}


@dataclass
class StepResult:
    """One sipp run at one rate."""

    scenario: str
    rate: int
    calls: int
    successful: int
    failed: int
    retransmissions: int
    elapsed_s: float
    returncode: int
    server_cpu_s: float
    duration_s: float

    @property
    def transactions(self) -> int:
        return self.successful * TRANSACTIONS_PER_CALL[self.scenario]

    @property
    def transactions_per_s(self) -> float:
        return self.transactions / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def server_cpu_us_per_transaction(self) -> float:
        """Server CPU time (user + system) per successful transaction: independent of other load."""
        return self.server_cpu_s * 1e6 / self.transactions if self.transactions else 0.0

    @property
    def kept_up(self) -> bool:
        """Every call succeeded and the run took no longer than offered (the server kept the pace)."""
        return (self.failed == 0 and self.successful == self.calls
                and self.elapsed_s <= self.duration_s * 1.1 + 1.0)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.successful == self.calls

    def line(self) -> str:
        return (f"{self.scenario:8} rate {self.rate:5}/s  calls {self.calls:6}  ok {self.successful:6}  "
                f"failed {self.failed:5}  retrans {self.retransmissions:6}  "
                f"{self.transactions_per_s:6.0f} transactions/s  ({self.elapsed_s:.1f} s)  "
                f"server CPU {self.server_cpu_us_per_transaction:5.0f} us/transaction"
                f"{'' if self.kept_up else '  (fell behind)'}")


def report(text: str) -> None:
    """One line of the benchmark's report on stdout."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pin(cpu: int | None) -> list[str]:
    """``taskset -c CPU`` when taskset exists and the machine has that CPU."""
    if cpu is None or cpu < 0 or shutil.which("taskset") is None or cpu >= (os.cpu_count() or 1):
        return []
    return ["taskset", "-c", str(cpu)]


def write_config(directory: Path, users: int, sip_port: int, http_port: int) -> Path:
    """A server config with ``users`` accounts (u2000...) stored as MD5 HA1 (sipp 3.6 speaks MD5 only)."""
    lines = [
        "[http]", 'host = "127.0.0.1"', f"port = {http_port}",
        "[log]", 'level = "warning"', 'format = "json"',
        "[sip]", 'host = "127.0.0.1"', f"udp_port = {sip_port}", f"tcp_port = {sip_port}",
        f'realm = "{REALM}"', 'digest_algorithms = ["MD5"]', "max_expires = 3600",
        "[store]", f'url = "sqlite+aiosqlite:///{directory / "bench.db"}"',
    ]
    for i in range(users):
        name = f"u{2000 + i}"
        ha1 = hashlib.md5(f"{name}:{REALM}:pw{name}".encode()).hexdigest()
        lines += ["[[sip.users]]", f'username = "{name}"', f'ha1_md5 = "{ha1}"']
    path = directory / "bench.toml"
    path.write_text("\n".join(lines) + "\n")
    (directory / "users.csv").write_text(
        "SEQUENTIAL\n" + "".join(f"u{2000 + i};pwu{2000 + i}\n" for i in range(users))
    )
    return path


@contextlib.contextmanager
def running_server(
    config: Path, http_port: int, cpu: int | None, profile: Path | None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``cti-server run --config`` and wait for /healthz; SIGINT it afterwards."""
    python = [sys.executable]
    if profile is not None:
        python += ["-m", "cProfile", "-o", str(profile)]
    argv = [*pin(cpu), *python, "-m", "cti_server", "run", "--config", str(config)]
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120  # the store imports every sip.users entry at start
        while True:
            if process.poll() is not None:
                err = process.stderr.read().decode(errors="replace") if process.stderr else ""
                raise RuntimeError(f"server exited with {process.returncode}: {err[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not answer /healthz within 120 s")
            time.sleep(0.2)
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def epoch_of(stamp: str) -> float:
    """The epoch seconds of a sipp time column (``date<TAB>time<TAB>epoch``)."""
    try:
        return float(stamp.strip().split("\t")[-1])
    except ValueError:
        return 0.0


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` from /proc (0 where /proc is missing)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_step(scenario: str, rate: int, duration: float, sip_port: int, workdir: Path, cpu: int | None,
             transport: str, server_pid: int) -> StepResult:
    calls = int(rate * duration)
    stat_file = workdir / f"stats_{scenario}_{rate}.csv"
    stat_file.unlink(missing_ok=True)
    argv = [
        *pin(cpu), shutil.which("sipp") or "sipp", f"127.0.0.1:{sip_port}",
        "-sf", str(SCENARIOS / f"{scenario}.xml"), "-inf", str(workdir / "users.csv"),
        "-au", "[field0]", "-ap", "[field1]",  # sipp 3.6 expands fields here, not inside [authentication]
        "-i", "127.0.0.1", "-p", "0", "-t", "u1" if transport == "udp" else "t1",
        "-r", str(rate), "-rp", "1000", "-m", str(calls), "-l", str(max(100, rate * 2)),
        "-nostdin", "-timeout", f"{int(duration) + 30}s", "-timeout_error",
        "-trace_stat", "-stf", str(stat_file), "-fd", "1", "-max_socket", "1000",
    ]
    cpu_before = cpu_seconds(server_pid)
    completed = subprocess.run(argv, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               timeout=duration + 60, check=False)
    text = stat_file.read_text(errors="replace") if stat_file.exists() else ""
    rows = [r for r in text.splitlines() if r.strip()]
    if len(rows) < 2:
        raise RuntimeError(f"sipp wrote no statistics (exit {completed.returncode}): "
                           f"{completed.stderr.decode(errors='replace')[-1000:]}")
    stats = dict(zip(rows[0].split(";"), rows[-1].split(";"), strict=False))
    return StepResult(
        scenario=scenario,
        rate=rate,
        calls=calls,
        successful=int(stats.get("SuccessfulCall(C)", "0") or 0),
        failed=int(stats.get("FailedCall(C)", "0") or 0),
        retransmissions=int(stats.get("Retransmissions(C)", "0") or 0),
        elapsed_s=epoch_of(stats.get("CurrentTime", "")) - epoch_of(stats.get("StartTime", "")),
        returncode=completed.returncode,
        server_cpu_s=cpu_seconds(server_pid) - cpu_before,
        duration_s=duration,
    )


def rates_to_try(args: argparse.Namespace) -> Iterator[int]:
    if args.find_max:
        rate = args.start
        while rate <= args.limit:
            yield rate
            rate += args.step
    else:
        yield from (int(r) for r in args.rates.split(","))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", choices=sorted(TRANSACTIONS_PER_CALL), action="append",
                        help="options and/or register (default both)")
    parser.add_argument("--rates", default="1000,2000", help="comma-separated calls/s to run")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per rate step")
    parser.add_argument("--users", type=int, default=1000, help="accounts for the REGISTER scenario")
    parser.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    parser.add_argument("--find-max", action="store_true", help="step the rate until a step fails")
    parser.add_argument("--start", type=int, default=500)
    parser.add_argument("--step", type=int, default=500)
    parser.add_argument("--limit", type=int, default=10_000)
    parser.add_argument("--server-cpu", type=int, default=0, help="CPU to pin the server to (-1: none)")
    parser.add_argument("--sipp-cpu", type=int, default=1, help="CPU to pin sipp to (-1: none)")
    parser.add_argument("--profile", action="store_true", help="run the server under cProfile")
    parser.add_argument("--profile-dir", type=Path, default=None, help="keep the .prof files here")
    parser.add_argument("--json", action="store_true", help="print results as JSON lines too")
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        sys.stderr.write("sip_bench: sipp is not installed (Debian package sip-tester)\n")
        return 2
    scenarios = args.scenario or ["options", "register"]
    results: list[StepResult] = []
    with tempfile.TemporaryDirectory(prefix="sip-bench-") as tmp:
        workdir = Path(tmp)
        for scenario in scenarios:
            sip_port, http_port = free_port(), free_port()
            config = write_config(workdir, args.users, sip_port, http_port)
            profile = workdir / f"{scenario}.prof" if args.profile else None
            # A fresh server per scenario: REGISTER bindings do not weigh on the OPTIONS figures.
            with running_server(config, http_port, args.server_cpu, profile) as server:
                for rate in rates_to_try(args):
                    result = run_step(scenario, rate, args.duration, sip_port, workdir, args.sipp_cpu,
                                      args.transport, server.pid)
                    results.append(result)
                    report(result.line())
                    if args.json:
                        row = {**result.__dict__, "transactions_per_s": result.transactions_per_s}
                        report(json.dumps(row))
                    if args.find_max and not result.kept_up:
                        break
            if profile is not None and profile.exists() and args.profile_dir is not None:
                args.profile_dir.mkdir(parents=True, exist_ok=True)
                shutil.copy(profile, args.profile_dir / profile.name)
            if profile is not None and profile.exists():
                report(f"--- cProfile of the server during {scenario} (top 25 by own time) ---")
                pstats.Stats(str(profile)).sort_stats("tottime").print_stats(25)
    for scenario in scenarios:
        good = [r for r in results if r.scenario == scenario and r.kept_up]
        best = max(good, key=lambda r: r.transactions_per_s, default=None)
        mine = [r for r in results if r.scenario == scenario and r.transactions]
        if best is None:
            report(f"{scenario}: no rate step kept up without failures")
        else:
            report(f"{scenario}: best step kept up without failures: {best.rate} calls/s -> "
                   f"{best.transactions_per_s:.0f} transactions/s, {best.retransmissions} retransmissions")
        if mine:
            cpu = min(r.server_cpu_us_per_transaction for r in mine)
            report(f"{scenario}: server CPU {cpu:.0f} us per transaction at best -> "
                   f"{1e6 / cpu if cpu else 0:.0f} transactions/s on one dedicated core")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
