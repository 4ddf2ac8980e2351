"""RTP relay benchmark: N concurrent relayed G.711 calls, packet loss and the jitter the relay adds.

The relay server (this script with ``--role relay``) runs pinned to one core (``taskset -c 0``) with
N ``RtpRelay`` calls, each between two ``RtpEndpoint`` legs, exactly as the server builds them. The
generator (this script, pinned to the other core) plays both phones of every call: every 20 ms each of
the 2N streams sends one 160-byte G.711 packet, phases spread evenly over the 20 ms, and receives the
relayed stream of the other phone with kernel receive timestamps (SO_TIMESTAMPNS).

Per stream it computes the RFC 3550 A.8 interarrival jitter twice: at the sender (actual send time vs
RTP timestamp: the generator's own pacing error) and at the receiver (kernel arrival time vs RTP
timestamp). The relay adds ``receiver - sender``; the figure reported is the 99th percentile of that
over all streams, with the loss over all packets.

    .venv/bin/python bench/rtp_relay_bench.py --calls 100 250 500 --seconds 10 --realtime 10

BENCH_PROFILE=1 prints a cProfile of the relay process to stderr; BENCH_DEBUG=1 prints per-stream loss.
See bench/README.md for the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cti_server.media.rtcp import ReceiverStatistics  # noqa: E402

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux value
PTIME = 0.02
PAYLOAD_SIZE = 160
_HEADER = struct.Struct("!BBHII")
_TIMESPEC = struct.Struct("@qq")
_SEQ_TS_SSRC = struct.Struct("!HII")


def emit(line: str) -> None:
    """One result line on stdout (the relay's stdout is the generator's pipe)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# ----------------------------------------------------------------------------------------------- relay
async def run_relay(use_uvloop: bool, transcode: bool, relay_on_loop: bool = False) -> None:
    """Read the phones' addresses on stdin, build the calls, print their ports, relay until 'stop'."""
    from cti_server.config import MediaConfig
    from cti_server.event_loop import tune_switch_interval
    from cti_server.media.endpoint import MediaSocketPoller, RtpEndpoint, receive_buffer_size
    from cti_server.media.ports import RtpPortAllocator

    MediaSocketPoller.threaded = not relay_on_loop
    tune_switch_interval(MediaSocketPoller.threaded)  # as the server does at start-up
    defaults = MediaConfig()
    receive_buffer = receive_buffer_size(defaults.receive_buffer_ms, defaults.ptime)
    from cti_server.media.relay import LegMedia, RtpRelay

    request = json.loads(sys.stdin.readline())
    allocator = RtpPortAllocator(request["port_min"], request["port_max"])
    relays = []
    endpoints = []
    ports = []
    media_a = LegMedia("PCMU", 0, 101)
    media_b = LegMedia("PCMA", 8, 101) if transcode else media_a
    for caller, callee in request["calls"]:
        a = await RtpEndpoint.open("127.0.0.1", allocator, call_id="bench", leg="a",
                                   receive_buffer=receive_buffer)
        b = await RtpEndpoint.open("127.0.0.1", allocator, call_id="bench", leg="b",
                                   receive_buffer=receive_buffer)
        a.set_remote(tuple(caller), frozenset({0, 101}))
        b.set_remote(tuple(callee), frozenset({media_b.payload_type, 101}))
        relays.append(RtpRelay(a, media_a, b, media_b, call_id="bench"))
        endpoints += [a, b]
        ports.append([a.port, b.port])
    gc.collect()
    gc.freeze()  # the set-up objects never need scanning again: keeps collector pauses short
    emit(json.dumps({"ports": ports, "loop": type(asyncio.get_running_loop()).__module__,
                     "media_thread": MediaSocketPoller.threaded}))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_reader(sys.stdin.fileno(), stop.set)
    await stop.wait()
    totals: dict[str, int] = {}
    for endpoint in endpoints:
        for key, value in endpoint.counters.as_dict().items():
            totals[key] = totals.get(key, 0) + value
    emit(json.dumps(totals))
    for endpoint in endpoints:
        endpoint.close()


def relay_main(args: argparse.Namespace) -> None:
    from cti_server.config import LogConfig
    from cti_server.logs import configure_logging

    configure_logging(LogConfig(level="warning", format="json"), stream=sys.stderr)
    if os.environ.get("BENCH_PROFILE"):
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
    if args.uvloop:
        import uvloop  # optional dependency: pip install cti-server[speed]

        uvloop.run(run_relay(True, args.transcode, args.relay_on_loop))
    else:
        asyncio.run(run_relay(False, args.transcode, args.relay_on_loop))
    if os.environ.get("BENCH_PROFILE"):
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(15)


# ------------------------------------------------------------------------------------------- generator
class Stream:
    """One direction of one call: sent from ``sender`` to the relay port, received on ``receiver``."""

    __slots__ = ("arrivals", "destination", "packet", "phase", "receiver", "send_times", "sender", "ssrc")

    def __init__(self, sender: socket.socket, receiver: socket.socket, phase: float, ssrc: int,
                 payload_type: int) -> None:
        self.sender = sender
        self.receiver = receiver
        self.destination: tuple[str, int] = ("127.0.0.1", 0)
        self.phase = phase
        self.ssrc = ssrc
        self.packet = bytearray(_HEADER.pack(0x80, payload_type, 0, 0, ssrc) + b"\xd5" * PAYLOAD_SIZE)
        self.send_times: list[float] = []
        self.arrivals: list[tuple[int, float]] = []


def open_phone() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # holds a whole run if need be
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    return sock


def jitter_ms(points: list[tuple[int, float]]) -> float:
    """RFC 3550 A.8 jitter (ms) of (sequence number, time) points, with our ReceiverStatistics."""
    stats = ReceiverStatistics(probation=0)
    for seq, at in points:
        stats.receive(seq, seq * PAYLOAD_SIZE, at)
    return stats.jitter_seconds * 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run_generator(calls: int, seconds: float, args: argparse.Namespace) -> dict[str, object]:
    phones = [(open_phone(), open_phone()) for _ in range(calls)]
    streams: list[Stream] = []
    callee_type = 8 if args.transcode else 0
    for caller, callee in phones:
        streams.append(Stream(caller, callee, 0.0, random.getrandbits(32), 0))
        streams.append(Stream(callee, caller, 0.0, random.getrandbits(32), callee_type))
    for index, stream in enumerate(streams):
        stream.phase = PTIME * index / len(streams)
    by_receiver: dict[int, tuple[socket.socket, dict[int, Stream]]] = {}
    for stream in streams:
        by_receiver[stream.receiver.fileno()] = (stream.receiver, {})
    for stream in streams:
        by_receiver[stream.receiver.fileno()][1][stream.ssrc] = stream

    port_min = args.port_base
    relay_cmd = [sys.executable, __file__, "--role", "relay"]
    if args.uvloop:
        relay_cmd.append("--uvloop")
    if args.transcode:
        relay_cmd.append("--transcode")
    if args.relay_on_loop:
        relay_cmd.append("--relay-on-loop")
    if args.realtime:
        relay_cmd = ["chrt", "-f", str(args.realtime), *relay_cmd]
    if args.relay_cpu is not None:
        relay_cmd = ["taskset", "-c", str(args.relay_cpu), *relay_cmd]
    relay = subprocess.Popen(relay_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert relay.stdin is not None and relay.stdout is not None
    request = {"port_min": port_min, "port_max": port_min + 4 * calls + 200,
               "calls": [[c.getsockname(), d.getsockname()] for c, d in phones]}
    relay.stdin.write(json.dumps(request) + "\n")
    relay.stdin.flush()
    ready = json.loads(relay.stdout.readline())
    for i, (port_a, port_b) in enumerate(ready["ports"]):
        streams[2 * i].destination = ("127.0.0.1", port_a)
        streams[2 * i + 1].destination = ("127.0.0.1", port_b)

    user_before, system_before = _process_user_system(relay.pid)
    cpu_before = user_before + system_before
    wall_before = time.time()
    start = time.time() + 0.2
    end = start + seconds
    order = sorted(streams, key=lambda s: s.phase)
    tick = 0
    index = 0
    pack_into = _SEQ_TS_SSRC.pack_into
    # Sending on time comes first. The kernel stamps each datagram as it is queued (SO_TIMESTAMPNS), so
    # when we read it does not change what we measure: the receive sockets (4 MiB buffers) hold the
    # whole run and are drained afterwards. Not waiting on them also keeps the relay's sends from
    # waking this process up for every packet, a cost that would be charged to the relay.
    while True:
        now = time.time()
        if now >= end:
            break
        while now < end:
            stream = order[index]
            due = start + tick * PTIME + stream.phase
            if due > now:
                break
            pack_into(stream.packet, 2, tick & 0xFFFF, (tick * PAYLOAD_SIZE) & 0xFFFFFFFF, stream.ssrc)
            stream.sender.sendto(stream.packet, stream.destination)
            stream.send_times.append(time.time())
            index += 1
            if index == len(order):
                index = 0
                tick += 1
            now = time.time()
        wait = start + tick * PTIME + order[index].phase - time.time()
        if wait > 0.0002:
            time.sleep(wait)
    # Drain until a whole pass finds nothing for half a second: a relay that fell behind on a busy
    # machine still delivers late, and that is jitter, not loss.
    quiet_since = time.time()
    while time.time() - quiet_since < 0.5 and time.time() < end + 15:
        if sum(_read_stamped(sock, by_ssrc, 1 << 30) for sock, by_ssrc in by_receiver.values()):
            quiet_since = time.time()
        else:
            time.sleep(0.05)
    user_after, system_after = _process_user_system(relay.pid)
    cpu_after = user_after + system_after
    wall = time.time() - wall_before
    relay.stdin.write("stop\n")
    relay.stdin.flush()
    counters = json.loads(relay.stdout.readline())
    relay.wait(10)

    sent = sum(len(s.send_times) for s in streams)
    received_total = sum(len(s.arrivals) for s in streams)
    added = []
    receiver_jitters = []
    for stream in streams:
        if len(stream.arrivals) < 10:
            continue
        sender_points = list(enumerate(stream.send_times))
        receiver_jitter = jitter_ms(stream.arrivals)
        receiver_jitters.append(receiver_jitter)
        added.append(receiver_jitter - jitter_ms(sender_points))
    if os.environ.get("BENCH_DEBUG"):
        losses = sorted(len(s.send_times) - len(s.arrivals) for s in streams)
        sys.stderr.write(f"per-stream loss min/median/max: {losses[0]} {losses[len(losses) // 2]} "
                         f"{losses[-1]}\n")
        worst = max(streams, key=lambda s: len(s.send_times) - len(s.arrivals))
        got = {seq for seq, _ in worst.arrivals}
        missing = [i for i in range(len(worst.send_times)) if i not in got]
        sys.stderr.write(f"worst stream missing seqs: {missing[:20]}...{missing[-5:]}\n")
    for caller, callee in phones:
        caller.close()
        callee.close()
    return {
        "calls": calls,
        "streams": len(streams),
        "seconds": seconds,
        "packets_sent": sent,
        "packets_received": received_total,
        "loss_percent": 100.0 * (sent - received_total) / sent if sent else 0.0,
        "added_jitter_p50_ms": percentile(added, 0.50),
        "added_jitter_p99_ms": percentile(added, 0.99),
        "receiver_jitter_p99_ms": percentile(receiver_jitters, 0.99),
        # CPU of the relay over the sending time (it is idle while the receive sockets are drained).
        "relay_cpu_percent": 100.0 * (cpu_after - cpu_before) / seconds,
        "wall_seconds": wall,
        "relay_cpu_us_per_packet": 1e6 * (cpu_after - cpu_before) / max(1, counters["packets_received"]),
        "relay_user_us_per_packet": 1e6 * (user_after - user_before) / max(1, counters["packets_received"]),
        "relay_loop": ready["loop"],
        "relay_media_thread": ready["media_thread"],
        "relay_counters": counters,
    }


_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size)


def _read_stamped(sock: socket.socket, by_ssrc: dict[int, Stream], limit: int) -> int:
    """Read up to ``limit`` queued datagrams, recording (sequence, kernel arrival time) per stream."""
    count = 0
    while count < limit:
        try:
            data, ancdata, _flags, _addr = sock.recvmsg(2048, _ANCILLARY)
        except BlockingIOError:
            break
        count += 1
        seq, ssrc = struct.unpack_from("!H4xI", data, 2)
        stream = by_ssrc.get(ssrc)
        if stream is None:
            continue
        arrival = float("nan")
        for level, kind, value in ancdata:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = _TIMESPEC.unpack(value[: _TIMESPEC.size])
                arrival = sec + nsec / 1e9
        stream.arrivals.append((seq, arrival))
    return count


def _process_user_system(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid``: Python work vs system calls and loopback delivery."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", choices=("generator", "relay"), default="generator")
    parser.add_argument("--calls", type=int, nargs="+", default=[100, 250, 500])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--relay-cpu", type=int, default=0, help="core for the relay (taskset -c)")
    parser.add_argument("--generator-cpu", type=int, default=1, help="core for this generator")
    parser.add_argument("--port-base", type=int, default=40000)
    parser.add_argument("--uvloop", action="store_true", help="run the relay on uvloop (optional extra)")
    parser.add_argument("--relay-on-loop", action="store_true",
                        help="relay on the event loop, not the media thread (media.relay_thread = false)")
    parser.add_argument("--transcode", action="store_true", help="leg b uses PCMA: every packet transcoded")
    parser.add_argument("--realtime", type=int, default=0, metavar="PRIORITY",
                        help="run relay and generator SCHED_FIFO at PRIORITY (root; approximates dedicated "
                             "cores on a machine other work is using)")
    args = parser.parse_args()
    if args.role == "relay":
        relay_main(args)
        return
    if args.generator_cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.generator_cpu})
    if args.realtime:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(args.realtime))
    emit(f"# {platform.node()} {platform.processor() or platform.machine()} cpus={os.cpu_count()} "
         f"python={platform.python_version()} load={os.getloadavg()}")
    for calls in args.calls:
        result = run_generator(calls, args.seconds, args)
        emit(json.dumps(result))


if __name__ == "__main__":
    main()
