"""Concurrent relayed G.711 calls through the real B2BUA, with sipp playing the RTP: packet loss and the
jitter the relay adds, at N concurrent calls (issue 4: 500 calls, < 0.1 % loss, < 5 ms p99).

    apt-get install tcpdump sip-tester        # the capture and sipp (not needed by the test suite)
    .venv/bin/python bench/b2bua_media_bench.py --calls 100 250 500 --seconds 10 --realtime 10
    .venv/bin/python bench/b2bua_media_bench.py --calls 100 250 --seconds 10 --realtime 10 --player pcap

Set-up (all on loopback): the B2BUA under test (``bench/b2bua_bench.py --serve-core``: SIP stack,
registrar, B2BUA with anchored media, i.e. two ``RtpEndpoint`` legs and an ``RtpRelay`` per call; or the
whole ``cti-server run`` with ``--server full``) pinned to CPU 0. A sipp UAS registered as the DID's user
(``bench/scenarios/media_uas.xml``) and a sipp UAC (``bench/scenarios/media_uac*.xml``) pinned to CPU 1.
The UAC places N calls at ``--rate`` calls/s; after the ACK it plays PCMU (20 ms packets of
``cti_server/media/assets/moh.wav``, written by this script) until all N calls have streamed at once for
``--seconds``; then BYE. Two players: ``--player rtpstream`` (default) is sipp's ``rtp_stream`` action
(``media_uac_rtpstream.xml``: a raw PCMU file, an ordinary UDP socket per call, a few sipp threads);
``--player pcap`` is ``play_pcap_audio`` of a pcap written by this script (``media_uac.xml``; sipp's own
g711a.pcap has 30 ms packets and lasts 7 s). play_pcap_audio sends through a raw UDP socket per call, and
the kernel offers every UDP datagram on the host to each of them: each packet the relay sends then costs
it a walk over N raw sockets, so that mode overstates the relay's cost more the more calls there are.
The UAS runs with ``-rtp_echo``: what the relay sends it comes back, so each call has RTP in both
directions through the relay (2N streams of 50 packets/s: 50,000 packets/s at 500 calls).

Measurement: ``tcpdump -i lo`` with kernel timestamps (nanosecond precision) captures every RTP packet
twice, as it goes into the relay (sipp -> relay port) and as it comes out (relay port -> sipp), both
stamped by the same kernel clock when the sending process hands the datagram to loopback. Which two relay
ports belong to one call is read from the server's ``rtp_latched`` log lines (call_id, port). Per stream
and direction, over the packets sent while all N calls were up:
  - RFC 3550 A.8 interarrival jitter of the packets going in (sipp's own pacing error, or the echo's,
    not ours) and coming out; the relay adds ``out - in`` (p50/p99 over the streams);
  - the transit time through the relay of each packet (out - in of the same sequence number): p50, p99,
    p99.9 and max over all packets (the direct form of "how much the relay delays and spreads packets");
  - loss: packets that went in and never came out (whole calls, not only the window);
  - the server's CPU time (utime + stime from /proc, sampled every 0.25 s) per relayed packet in the
    window: the figure that stays comparable while other work shares the machine.
tcpdump's "dropped by kernel" count is reported: a capture that dropped packets makes the loss figure
an upper bound (the run says so). ``--realtime P`` runs the server and both sipps SCHED_FIFO priority P
and tcpdump at P - 1 (``chrt``, root), the closest to dedicated cores on a shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import b2bua_bench as calls_bench  # noqa: E402  (the server config, process and sipp helpers)

from cti_server.media.g711 import CODECS  # noqa: E402
from cti_server.media.wav import pcm_to_frames, read_wav_pcm  # noqa: E402

SCENARIOS = ROOT / "bench" / "scenarios"
AUDIO = ROOT / "cti_server" / "media" / "assets" / "moh.wav"
# The server's RTP range, below the ephemeral ports (32768-60999 on Linux) that the sipps' SIP and media
# sockets get, so a port in it is always the relay's.
RTP_MIN, RTP_MAX = 20000, 29999
PTIME = 0.02
SAMPLES = 160
CLOCK = 8000.0
TICK = os.sysconf("SC_CLK_TCK")


def emit(obj: object) -> None:
    sys.stdout.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")
    sys.stdout.flush()


# ------------------------------------------------------------------------------------------ pcap files
def write_rtp_pcap(path: Path, seconds: float) -> int:
    """A pcap (Ethernet/IPv4/UDP) of one PCMU stream, 20 ms packets for ``seconds``, sent every 20 ms:
    what sipp's play_pcap_audio replays (it rewrites the addresses and keeps the timing)."""
    frames = pcm_to_frames(read_wav_pcm(AUDIO), CODECS["PCMU"], 20)
    count = int(seconds / PTIME)
    ssrc = random.getrandbits(32)
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for i in range(count):
        header = struct.pack("!BBHII", 0x80, 0x80 if i == 0 else 0, i, i * SAMPLES, ssrc)
        rtp = header + frames[i % len(frames)]
        udp = struct.pack("!HHHH", 5000, 6000, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0,
                         bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
        frame = b"\x00" * 12 + b"\x08\x00" + ip + udp
        at = 1_700_000_000 + i * 20_000  # microseconds
        out += struct.pack("<IIII", at // 1_000_000, at % 1_000_000, len(frame), len(frame)) + frame
    path.write_bytes(out)
    return count


@dataclass(slots=True)
class Capture:
    """RTP packets seen on lo: per relay port, (seq, rtp timestamp, capture time) in capture order."""

    into: dict[int, list[tuple[int, int, float]]] = field(default_factory=lambda: defaultdict(list))
    out_of: dict[int, list[tuple[int, int, float]]] = field(default_factory=lambda: defaultdict(list))
    packets: int = 0


def read_capture(path: Path) -> Capture:
    """Split a tcpdump capture of lo into the streams going into and coming out of the relay ports."""
    data = path.read_bytes()
    capture = Capture()
    if len(data) < 24:
        return capture
    magic = struct.unpack_from("<I", data)[0]
    scale = 1e-9 if magic == 0xA1B23C4D else 1e-6
    link = struct.unpack_from("<I", data, 20)[0]
    skip = 14 if link == 1 else 16  # Ethernet (lo) or Linux cooked capture
    record = struct.Struct("<IIII")
    udp_rtp = struct.Struct("!HH4xBBHI")
    into, out_of = capture.into, capture.out_of
    offset = 24
    end = len(data)
    while offset + 16 <= end:
        sec, frac, incl, _orig = record.unpack_from(data, offset)
        offset += 16
        packet = offset + skip
        offset += incl
        if incl < skip + 20 + 8 + 12:
            continue
        ihl = (data[packet] & 0x0F) * 4
        if data[packet + 9] != 17:
            continue
        sport, dport, first, _pt, seq, ts = udp_rtp.unpack_from(data, packet + ihl)
        if first >> 6 != 2:
            continue
        at = sec + frac * scale
        # RTP only: the relay's RTP ports are even (RTCP uses the odd ones); sipp's may be either.
        if RTP_MIN <= dport <= RTP_MAX and not dport & 1 and not RTP_MIN <= sport <= RTP_MAX:
            into[dport].append((seq, ts, at))
        elif RTP_MIN <= sport <= RTP_MAX and not sport & 1 and not RTP_MIN <= dport <= RTP_MAX:
            out_of[sport].append((seq, ts, at))
        else:
            continue
        capture.packets += 1
    return capture


def jitter_ms(points: list[tuple[int, int, float]]) -> float:
    """RFC 3550 A.8 interarrival jitter in ms of (seq, rtp timestamp, arrival) in arrival order."""
    jitter = 0.0
    previous: float | None = None
    for _seq, ts, at in points:
        transit = at - ts / CLOCK
        if previous is not None:
            jitter += (abs(transit - previous) - jitter) / 16
        previous = transit
    return jitter * 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else math.nan


def spread_ms(seconds: list[float]) -> dict[str, float]:
    """p50, p99, p99.9 and max of durations given in seconds, in ms."""
    ordered = sorted(seconds)
    if not ordered:
        return {}
    at = {"p50": 0.5, "p99": 0.99, "p999": 0.999, "max": 1.0}
    last = len(ordered) - 1
    return {name: round(1000 * ordered[min(last, int(q * len(ordered)))], 3) for name, q in at.items()}


# --------------------------------------------------------------------------------------------- running
def latched_calls(log: Path, since: int) -> dict[str, set[int]]:
    """call_id -> the relay ports that latched, from the server's JSON log after byte ``since``."""
    calls: dict[str, set[int]] = defaultdict(set)
    with log.open("rb") as handle:
        handle.seek(since)
        for line in handle:
            if b"rtp_latched" not in line:
                continue
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                calls[str(entry.get("call_id"))].add(int(entry["port"]))
    return calls


class CpuSampler:
    """utime + stime of some processes every 0.25 s, as (wall time, {name: cpu seconds})."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            now: dict[str, float] = {}
            for name, pid in self.pids.items():
                with contextlib.suppress(OSError):
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    now[name] = (int(fields[11]) + int(fields[12])) / TICK
                    if name == "server":  # user time: Python; system time: syscalls, loopback delivery
                        now["server_user"] = int(fields[11]) / TICK
            self.samples.append((time.time(), now))
            if self._stop.wait(0.25):
                return

    def between(self, start: float, end: float) -> tuple[dict[str, float], float]:
        """({name: cpu seconds}, wall seconds) between the first and last sample inside [start, end]."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return {}, 0.0
        first, last = inside[0][1], inside[-1][1]
        used = {name: last[name] - first[name] for name in last if name in first}
        return used, inside[-1][0] - inside[0][0]


@contextlib.contextmanager
def tcpdump(path: Path, realtime: int) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, int]]]:
    """Capture UDP to and from the relay's port range on lo; yields the drop counts after it stopped."""
    binary = shutil.which("tcpdump")
    if binary is None:
        raise SystemExit("tcpdump is needed: apt-get install tcpdump")
    argv = [binary, "-i", "lo", "-nn", "-s", "96", "-B", str(256 * 1024), "--time-stamp-precision=nano",
            "-w", str(path), f"udp and portrange {RTP_MIN}-{RTP_MAX}"]
    if realtime:
        argv = ["chrt", "-f", str(max(1, realtime - 1)), *argv]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    line = proc.stderr.readline().decode(errors="replace")  # "listening on lo, ..." once it captures
    if "listening" not in line:
        raise RuntimeError(f"tcpdump did not start: {line}")
    stats: dict[str, int] = {}
    try:
        yield proc, stats
    finally:
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        tail = proc.communicate(timeout=30)[1].decode(errors="replace")
        for text in tail.splitlines():
            words = text.split()
            if len(words) >= 2 and words[0].isdigit():
                stats[" ".join(words[1:])] = int(words[0])


def run_step(calls: int, args: argparse.Namespace, work: Path, sip_port: int, uac_media: int,
             pids: dict[str, int], log: Path, pcap_seconds: float) -> dict[str, object]:
    stats_file = work / f"uac_{calls}.csv"
    hold_ms = int((pcap_seconds + 0.5) * 1000)
    scenario = "media_uac.xml" if args.player == "pcap" else "media_uac_rtpstream.xml"
    argv = calls_bench.sipp(
        f"127.0.0.1:{sip_port}", "-sf", str(SCENARIOS / scenario), "-s", calls_bench.DID,
        "-r", str(args.rate), "-m", str(calls), "-l", str(calls), "-d", str(hold_ms), "-mp", str(uac_media),
        "-p", "0", "-timeout", f"{int(pcap_seconds + calls / args.rate + 60)}s", "-trace_stat", "-stf",
        str(stats_file), "-fd", "1")
    if args.realtime and not args.sipp_normal:
        argv = ["chrt", "-f", str(args.realtime), *argv]
    log_offset = log.stat().st_size
    capture_file = work / f"lo_{calls}.pcap"
    started = time.time()
    with tcpdump(capture_file, args.realtime) as (dump, drops):
        uac = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
        with CpuSampler({**pids, "sipp_uac": uac.pid, "tcpdump": dump.pid}) as cpu:
            try:
                uac.wait(timeout=pcap_seconds + calls / args.rate + 90)
            except subprocess.TimeoutExpired:
                uac.kill()
                uac.wait()
    row = calls_bench.last_stats_row(stats_file)
    capture = read_capture(capture_file)
    if not args.keep:
        capture_file.unlink()
    result = analyse(capture, latched_calls(log, log_offset), cpu)
    return {"calls": calls, "rate": args.rate, "sipp_exit": uac.returncode,
            "successful_calls": int(row.get("SuccessfulCall(C)", "0") or 0),
            "failed_calls": int(row.get("FailedCall(C)", "0") or 0),
            "step_seconds": round(time.time() - started, 1), **result,
            "capture": {"packets": capture.packets, **drops,
                        "complete": not drops.get("packets dropped by kernel", 0)},
            "load_average": round(os.getloadavg()[0], 2)}


def analyse(capture: Capture, latched: dict[str, set[int]], cpu: CpuSampler) -> dict[str, object]:
    # One stream per direction of a call: into one of its relay ports, out of the other.
    pairs = []
    for ports in latched.values():
        if len(ports) != 2:
            continue
        first, second = sorted(ports)
        pairs += [(first, second), (second, first)]
    streams = [(capture.into.get(src, []), capture.out_of.get(dst, [])) for src, dst in pairs]
    streams = [(i, o) for i, o in streams if len(i) >= 10]
    if not streams:
        return {"error": "no relayed stream captured (see the server log)"}
    # The window in which every call was streaming: from the last first packet to the first last one.
    window_start = max(i[0][2] for i, _ in streams)
    window_end = min(i[-1][2] for i, _ in streams)
    all_concurrent = window_end - window_start > 1.0
    if not all_concurrent:
        window_start, window_end = min(i[0][2] for i, _ in streams), max(i[-1][2] for i, _ in streams)
    sent = received = 0
    added: list[float] = []
    jitter_in: list[float] = []
    jitter_out: list[float] = []
    transit: list[float] = []
    transit_all: list[float] = []
    out_in_window = 0
    for into, out_of in streams:
        seqs_out = {seq: at for seq, _ts, at in out_of}
        sent += len(into)
        matched = [seqs_out[seq] - at for seq, _ts, at in into if seq in seqs_out]
        received += len(matched)
        transit_all += matched
        window_in = [p for p in into if window_start <= p[2] <= window_end]
        sent_at = {seq: at for seq, _ts, at in window_in}
        window_out = [p for p in out_of if p[0] in sent_at]
        out_in_window += len(window_out)
        transit += [at - sent_at[seq] for seq, _ts, at in window_out]
        if len(window_out) >= 10:
            before, after = jitter_ms(window_in), jitter_ms(window_out)
            jitter_in.append(before)
            jitter_out.append(after)
            added.append(after - before)
    used, cpu_wall = cpu.between(window_start, window_end)
    cpu_seconds = used.get("server", 0.0)
    # Packets relayed in the CPU-sampled part of the window, pro rata.
    packets = out_in_window * (cpu_wall / (window_end - window_start)) if window_end > window_start else 0
    return {
        "streams": len(streams),
        "all_calls_concurrent_seconds": round(window_end - window_start, 2) if all_concurrent else 0.0,
        "packets_in": sent, "packets_out": received,
        "loss_percent": round(100.0 * (sent - received) / sent, 4) if sent else None,
        "added_jitter_p50_ms": round(percentile(added, 0.5), 3),
        "added_jitter_p99_ms": round(percentile(added, 0.99), 3),
        "jitter_in_p99_ms": round(percentile(jitter_in, 0.99), 3),
        "jitter_out_p99_ms": round(percentile(jitter_out, 0.99), 3),
        "transit_ms": spread_ms(transit),
        # Every packet of the calls, also while calls were being set up and torn down (SIP work).
        "transit_whole_calls_ms": spread_ms(transit_all),
        "relayed_packets_per_second": round(out_in_window / (window_end - window_start), 0)
        if window_end > window_start else None,
        "server_cpu_us_per_packet": round(1e6 * cpu_seconds / packets, 2) if packets else None,
        "server_user_us_per_packet": round(1e6 * used.get("server_user", 0.0) / packets, 2)
        if packets else None,
        "cpu_percent": {name: round(100 * value / cpu_wall, 1) for name, value in used.items()}
        if cpu_wall else {},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, nargs="+", default=[100, 250, 500])
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="how long all calls of the largest step stream at once")
    parser.add_argument("--rate", type=int, default=50,
                        help="calls per second while setting up (SIP work competes with the media then)")
    parser.add_argument("--player", choices=("rtpstream", "pcap"), default="rtpstream",
                        help="rtpstream: sipp's rtp_stream of raw PCMU from a UDP socket per call; pcap: "
                             "play_pcap_audio, a raw socket per call that every UDP packet on the host is "
                             "offered to (costs the relay O(calls) per packet, see bench/README.md)")
    parser.add_argument("--server", choices=("core", "full"), default="core",
                        help="core: bench/b2bua_bench.py --serve-core; full: cti-server run")
    parser.add_argument("--relay-on-loop", action="store_true",
                        help="media.relay_thread = false: relay on the event loop that runs SIP")
    parser.add_argument("--uvloop", action="store_true", help="core on uvloop (pip install .[speed])")
    parser.add_argument("--realtime", type=int, default=0, metavar="PRIORITY",
                        help="SCHED_FIFO priority for server and sipps (chrt -f; root)")
    parser.add_argument("--sipp-normal", action="store_true",
                        help="with --realtime, leave the sipps at normal priority (only server and tcpdump)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and captures")
    args = parser.parse_args()
    for tool in ("sipp", "tcpdump", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (apt-get install sip-tester tcpdump util-linux)")
    emit(f"# {platform.node()} {platform.machine()} cpus={os.cpu_count()} python={platform.python_version()} "
         f"load={os.getloadavg()} {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC")
    work = Path(tempfile.mkdtemp(prefix="b2bua-media-bench-"))
    try:
        pcap_seconds = args.seconds + max(args.calls) / args.rate + 1.0
        write_rtp_pcap(work / "media.pcap", pcap_seconds)
        (work / "media.ulaw").write_bytes(b"".join(pcm_to_frames(read_wav_pcm(AUDIO), CODECS["PCMU"], 20)))
        sip_port = calls_bench.free_port()
        config = work / "bench.toml"
        text = calls_bench.server_config(sip_port).replace('level = "warning"', 'level = "info"')
        text = text.replace("rtp_port_min = 30000", f"rtp_port_min = {RTP_MIN}")
        text = text.replace("rtp_port_max = 39999", f"rtp_port_max = {RTP_MAX}")
        if args.relay_on_loop:
            text = text.replace("rtp_timeout = 0.0", "rtp_timeout = 0.0\nrelay_thread = false")
        if f"rtp_port_min = {RTP_MIN}" not in text or (args.relay_on_loop and "relay_thread" not in text):
            raise SystemExit("bench/b2bua_bench.py's server_config changed: update the RTP range edit")
        config.write_text(text)
        prefix = ["chrt", "-f", str(args.realtime)] if args.realtime else []
        if args.server == "core":
            server = [*prefix, "taskset", "-c", "0", sys.executable, str(ROOT / "bench" / "b2bua_bench.py"),
                      "--serve-core", str(config), *(["--uvloop"] if args.uvloop else [])]
        else:
            server = [*prefix, "taskset", "-c", "0", str(calls_bench.VENV_BIN / "cti-server"), "run",
                      "--config", str(config)]
        uas_port, uas_media, uac_media = (calls_bench.free_port() for _ in range(3))
        uas = calls_bench.sipp("-sf", str(SCENARIOS / "media_uas.xml"), "-p", str(uas_port), "-mp",
                               str(uas_media), "-rtp_echo")
        if args.realtime and not args.sipp_normal:
            uas = [*prefix, *uas]
        log = work / "server.log"
        with calls_bench.process(uas, work / "uas.log") as uas_proc, calls_bench.process(server, log) as proc:
            calls_bench.wait_udp_answer(sip_port)
            calls_bench.register_uas(sip_port, uas_port, work)
            pids = {"server": proc.pid, "sipp_uas": uas_proc.pid}
            for calls in args.calls:
                emit(run_step(calls, args, work, sip_port, uac_media, pids, log, pcap_seconds))
                time.sleep(1)
    finally:
        if args.keep:
            emit(f"# kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
