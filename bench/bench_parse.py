"""Parse and serialize time per SIP message (RFC 3261 section 7) for a set of typical messages.

Run on purpose, not in the test suite: ``.venv/bin/python bench/bench_parse.py [--iterations N]``.
Prints, per message, the CPU time per call and the wall-clock mean and p99 in microseconds of
``parse_message`` (which includes the eager checks of Via, From, To, Call-ID, CSeq, Contact) and of
``serialize()``, and the messages one core parses per second. Figures are recorded in bench/README.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cti_server.sip import parse_message

SDP = (
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\ns=-\r\nc=IN IP4 192.0.2.101\r\n"
    b"t=0 0\r\nm=audio 49172 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
)

INVITE = (
    b"INVITE sip:+15551234567@cti.example.com;user=phone SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnashds8;received=192.0.2.1\r\n"
    b"Max-Forwards: 69\r\n"
    b"Record-Route: <sip:192.0.2.10;lr>\r\n"
    b'From: "Alice Caller" <sip:+15557654321@trunk.example.net;user=phone>;tag=1928301774\r\n'
    b"To: <sip:+15551234567@cti.example.com;user=phone>\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:+15557654321@192.0.2.1:5060;transport=udp>\r\n"
    b"P-Asserted-Identity: <sip:+15557654321@trunk.example.net;user=phone>\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY\r\n"
    b"Supported: timer, replaces, 100rel\r\n"
    b"Session-Expires: 1800;refresher=uac\r\n"
    b"User-Agent: Cisco-SIPGateway/IOS-15.x\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n\r\n" + SDP
)

OK_200 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport=5060;received=192.0.2.10\r\n"
    b'From: "Alice Caller" <sip:+15557654321@trunk.example.net;user=phone>;tag=1928301774\r\n'
    b"To: <sip:+15551234567@cti.example.com;user=phone>;tag=a6c85cf\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:agent-17@198.51.100.5:5060>\r\n"
    b"Record-Route: <sip:192.0.2.10;lr>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n\r\n" + SDP
)

REGISTER = (
    b"REGISTER sip:cti.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.23:5062;branch=z9hG4bKnashds7;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:1001@cti.example.com>;tag=a73kszlfl\r\n"
    b"To: <sip:1001@cti.example.com>\r\n"
    b"Call-ID: 1j9FpLxk3uxtm8tn@198.51.100.23\r\n"
    b"CSeq: 2 REGISTER\r\n"
    b"Contact: <sip:1001@198.51.100.23:5062;transport=udp>;expires=3600;"
    b'+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"\r\n'
    b'Authorization: Digest username="1001", realm="cti.example.com", '
    b'nonce="ea9c8e88df84f1cec4341ae6cbe5a359", uri="sip:cti.example.com", '
    b'response="dfe56131d1958046689d83306477ecc", algorithm=MD5, qop=auth, nc=00000001, '
    b'cnonce="0a4f113b"\r\n'
    b"Expires: 3600\r\n"
    b"User-Agent: Yealink SIP-T46S 66.85.0.5\r\n"
    b"Content-Length: 0\r\n\r\n"
)

OPTIONS = (
    b"OPTIONS sip:cti.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-ping-1;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:ping@192.0.2.10>;tag=ping1\r\n"
    b"To: <sip:cti.example.com>\r\n"
    b"Call-ID: ping-1@192.0.2.10\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Accept: application/sdp\r\n"
    b"Content-Length: 0\r\n\r\n"
)

BYE = (
    b"BYE sip:+15557654321@192.0.2.1:5060;transport=udp SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-bye-1;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"Route: <sip:192.0.2.10;lr>\r\n"
    b"From: <sip:+15551234567@cti.example.com;user=phone>;tag=a6c85cf\r\n"
    b'To: "Alice Caller" <sip:+15557654321@trunk.example.net;user=phone>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 231 BYE\r\n"
    b"Content-Length: 0\r\n\r\n"
)

NOTIFY_BODY = b"SIP/2.0 200 OK\r\n"
NOTIFY = (
    b"NOTIFY sip:agent-17@198.51.100.5:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-notify-1;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:cti.example.com>;tag=n0t1fy\r\n"
    b"To: <sip:agent-17@cti.example.com>;tag=r3f3r\r\n"
    b"Call-ID: refer-1@203.0.113.5\r\n"
    b"CSeq: 3 NOTIFY\r\n"
    b"Contact: <sip:203.0.113.5:5060>\r\n"
    b"Event: refer;id=93809824\r\n"
    b"Subscription-State: terminated;reason=noresource\r\n"
    b"Content-Type: message/sipfrag;version=2.0\r\n"
    b"Content-Length: " + str(len(NOTIFY_BODY)).encode() + b"\r\n\r\n" + NOTIFY_BODY
)

MESSAGES = {
    "INVITE with SDP": INVITE,
    "200 OK (INVITE, SDP)": OK_200,
    "REGISTER with Authorization": REGISTER,
    "OPTIONS": OPTIONS,
    "BYE": BYE,
    "NOTIFY (sipfrag)": NOTIFY,
}


def out(line: str) -> None:
    """Write one line of the table to stdout."""
    sys.stdout.write(line + "\n")


def measure(operation: Callable[[], object], iterations: int) -> tuple[float, float, float]:
    """(CPU mean, wall mean, wall p99) in microseconds of ``operation`` over ``iterations`` calls.

    The CPU mean (process time) is what the code costs; wall times include waiting for a core, which
    on a shared machine is most of the p99.
    """
    for _ in range(min(1000, iterations)):
        operation()  # warm caches (header-name cache, regex caches)
    timings: list[int] = []
    clock = time.perf_counter_ns
    cpu_start = time.process_time_ns()
    for _ in range(iterations):
        start = clock()
        operation()
        timings.append(clock() - start)
    cpu = (time.process_time_ns() - cpu_start) / iterations / 1000
    timings.sort()
    return cpu, statistics.fmean(timings) / 1000, timings[int(len(timings) * 0.99) - 1] / 1000


def main() -> None:
    """Print a table of parse and serialize times per message."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=20_000)
    args = parser.parse_args()
    out(f"python {platform.python_version()} on {platform.machine()}, {args.iterations} iterations each; "
          f"times in microseconds")
    out(f"{'message':28} {'bytes':>5} | {'parse cpu':>9} {'wall':>7} {'p99':>7} | "
          f"{'serialize cpu':>13} {'wall':>6} {'p99':>6} | {'parses/s/core':>13}")
    for name, data in MESSAGES.items():
        message = parse_message(data)
        p_cpu, p_mean, p_p99 = measure(partial(parse_message, data), args.iterations)
        s_cpu, s_mean, s_p99 = measure(message.serialize, args.iterations)
        out(f"{name:28} {len(data):5d} | {p_cpu:9.1f} {p_mean:7.1f} {p_p99:7.1f} | "
              f"{s_cpu:13.1f} {s_mean:6.1f} {s_p99:6.1f} | {1e6 / p_cpu:13.0f}")


if __name__ == "__main__":
    main()
