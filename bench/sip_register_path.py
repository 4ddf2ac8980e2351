"""CPU cost of one authenticated registration through the SIP stack and the registrar, without sockets:
REGISTER -> 401 (digest challenge), then REGISTER with MD5 credentials -> 200 (RFC 3261 section 10.3,
22.4; RFC 7616), and a refresh with the same nonce and nc=00000002 -> 200, each parsed, matched,
handled by the real registrar (static users, in-memory bindings) and answered (the datagram send is
kept in a list). Figures are the lowest CPU time (``time.process_time``) over batches of 250, which a
shared machine disturbs least.

    .venv/bin/python bench/sip_register_path.py --registrations 3000
    .venv/bin/python bench/sip_register_path.py --registrations 3000 --profile   # cProfile of the 200s
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import pstats
import re
import sys
import time

from cti_server.config import Config, config_from_mapping
from cti_server.event_loop import tune_garbage_collector
from cti_server.events import EventBus
from cti_server.logs import configure_logging
from cti_server.sip.digest import compute_response
from cti_server.sip.memory_transport import MemoryFlow, MemoryTransports
from cti_server.sip.registrar import RegistrarComponent
from cti_server.sip.stack import SipComponent

USERS = 500
BATCH = 250
_NONCE_RE = re.compile(r'nonce="([^"]+)"')
_OPAQUE_RE = re.compile(r'opaque="([^"]+)"')


def register(i: int, cseq: int, authorization: str = "") -> bytes:
    """What sipp's register scenario sends."""
    user = f"u{2000 + i % USERS}"
    return (f"REGISTER sip:127.0.0.1:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5061;rport;branch=z9hG4bK-{i}-{cseq}\r\nMax-Forwards: 70\r\n"
            f"From: <sip:{user}@127.0.0.1>;tag={i}SIPpTag00\r\nTo: <sip:{user}@127.0.0.1>\r\n"
            f"Call-ID: {i}-bench@127.0.0.1\r\nCSeq: {cseq} REGISTER\r\n"
            f"Contact: <sip:{user}@127.0.0.1:5061>\r\nExpires: 3600\r\n{authorization}"
            f"Content-Length: 0\r\n\r\n").encode()


def authorization(i: int, challenge: str, nc: int = 1) -> str:
    user = f"u{2000 + i % USERS}"
    nonce_match = _NONCE_RE.search(challenge)
    assert nonce_match is not None, challenge[:200]
    nonce = nonce_match.group(1)
    opaque = _OPAQUE_RE.search(challenge)
    ha1 = hashlib.md5(f"{user}:cti:pw{user}".encode()).hexdigest()
    response = compute_response("MD5", ha1, method="REGISTER", uri="sip:127.0.0.1:5060", nonce=nonce,
                                qop="auth", nc=f"{nc:08x}", cnonce="abc")
    return (f'Authorization: Digest username="{user}",realm="cti",nonce="{nonce}",'
            f'uri="sip:127.0.0.1:5060",response="{response}",algorithm=MD5,cnonce="abc",qop=auth,'
            f'nc={nc:08x}' + (f',opaque="{opaque.group(1)}"' if opaque else "") + "\r\n")


async def timed(stack: SipComponent, flow: MemoryFlow, messages: list[bytes]) -> float:
    """Lowest CPU seconds per message over batches of BATCH."""
    best = float("inf")
    for start in range(0, len(messages), BATCH):
        chunk = messages[start:start + BATCH]
        began = time.process_time()
        for data in chunk:
            stack._on_message(data, flow)
            await asyncio.sleep(0)  # a suspended handler's task gets its turn, as in the server
        best = min(best, (time.process_time() - began) / len(chunk))
    return best


def bench_config() -> Config:
    """Realm ``cti`` with USERS accounts (MD5 HA1s) that ``register``/``authorization`` speak for."""
    users = [{"username": f"u{2000 + i}",
              "ha1_md5": hashlib.md5(f"u{2000 + i}:cti:pwu{2000 + i}".encode()).hexdigest()}
             for i in range(USERS)]
    return config_from_mapping({
        "sip": {"udp_port": 0, "tcp_port": 0, "realm": "cti", "users": users, "digest_algorithms": ["MD5"]},
        "log": {"level": "warning"},
    })


async def run(registrations: int, profile: bool, with_refresh: bool = True) -> None:
    config = bench_config()
    configure_logging(config.log, cache_loggers=True)  # as `cti-server run` does
    bus = EventBus()
    stack = SipComponent(config, bus)
    stack._loop = asyncio.get_running_loop()
    flow = MemoryFlow()
    stack._transports = MemoryTransports(flow)  # type: ignore[assignment]
    RegistrarComponent.attach(stack, config.sip, bus)
    tune_garbage_collector()  # as `cti-server run` does once started
    first = await timed(stack, flow, [register(i, 1) for i in range(registrations)])
    challenges = [data.decode() for data in flow.sent]
    assert all(c.startswith("SIP/2.0 401") for c in challenges), challenges[0][:200]
    flow.sent.clear()
    second_requests = [register(i, 2, authorization(i, c)) for i, c in enumerate(challenges)]
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    second = await timed(stack, flow, second_requests)
    if profiler is not None:
        profiler.disable()
    accepted = sum(1 for data in flow.sent if data.startswith(b"SIP/2.0 200"))
    flow.sent.clear()
    # A phone's refresh before expiry: the nonce it holds again with nc=00000002 (RFC 7616 section
    # 3.4), one transaction.
    refreshes = ([register(i, 3, authorization(i, c, nc=2)) for i, c in enumerate(challenges)]
                 if with_refresh else [])
    refresh = await timed(stack, flow, refreshes)
    refreshed = sum(1 for data in flow.sent if data.startswith(b"SIP/2.0 200"))
    sys.stdout.write(f"REGISTER -> 401 {first * 1e6:6.1f} us   REGISTER+auth -> 200 {second * 1e6:6.1f} us   "
                     f"per registration {(first + second) * 1e6:6.1f} us   "
                     f"({accepted}/{registrations} accepted)   "
                     f"refresh (nonce reused, nc=2) -> 200 {refresh * 1e6:6.1f} us ({refreshed} accepted)\n")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    await stack.stop()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--registrations", type=int, default=3000)
    parser.add_argument("--profile", action="store_true", help="cProfile the authenticated REGISTERs")
    parser.add_argument("--no-refresh", action="store_true",
                        help="leave the refresh out (e.g. to count instructions under valgrind)")
    args = parser.parse_args()
    asyncio.run(run(args.registrations, args.profile, not args.no_refresh))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
