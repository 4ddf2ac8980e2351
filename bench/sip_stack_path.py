"""CPU cost of one UDP request through the SIP stack, without sockets: parse, then the transaction layer
and dispatch, then the answer serialized (the datagram send is a no-op).

Each round also sends every request a second time: the retransmission is matched from its raw bytes
and answered with the stored response. Runs OPTIONS (answered by the stack) and, with ``--register``,
a REGISTER answered by a trivial synchronous handler. CPU time (``time.process_time``) is used so
that other load on the machine inflates the figures less than wall time would. Server transactions
stay alive as they would for timer J (64*T1), so the run also shows the cost of many live ones.

    .venv/bin/python bench/sip_stack_path.py --messages 20000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from cti_server.config import config_from_mapping
from cti_server.events import EventBus
from cti_server.sip.memory_transport import MemoryFlow, MemoryTransports
from cti_server.sip.message import make_response
from cti_server.sip.parser import parse_message
from cti_server.sip.stack import IncomingRequest, SipComponent


def request(method: str, i: int) -> bytes:
    """What sipp's OPTIONS / REGISTER scenarios send (with rport)."""
    return (f"{method} sip:127.0.0.1:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5061;rport;branch=z9hG4bK-{i}\r\nMax-Forwards: 70\r\n"
            f"From: <sip:u{i}@127.0.0.1>;tag={i}SIPpTag00\r\nTo: <sip:u{i}@127.0.0.1>\r\n"
            f"Call-ID: {i}-bench@127.0.0.1\r\nCSeq: 1 {method}\r\n"
            f"Contact: <sip:u{i}@127.0.0.1:5061>\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n").encode()


def report(text: str) -> None:
    sys.stdout.write(text + "\n")


async def run(messages: int, rounds: int, method: str) -> None:
    config = config_from_mapping({"sip": {"udp_port": 0, "tcp_port": 0}, "log": {"level": "warning"}})
    stack = SipComponent(config, EventBus())
    stack._loop = asyncio.get_running_loop()
    flow = MemoryFlow(keep=False)
    stack._transports = MemoryTransports(flow)  # type: ignore[assignment]
    if method == "REGISTER":
        stack.register_handler("REGISTER", lambda incoming: answer_200(incoming))
    for round_number in range(rounds):
        data = [request(method, round_number * messages + i) for i in range(messages)]
        start = time.process_time()
        for item in data:
            parse_message(item)
        parse_only = time.process_time() - start
        data = [request(method, (round_number + rounds) * messages + i) for i in range(messages)]
        start = time.process_time()
        for item in data:
            stack._on_message(item, flow)  # type: ignore[arg-type]
        full = time.process_time() - start
        report(f"{method:8} round {round_number + 1}: parse {parse_only / messages * 1e6:6.1f} us  "
               f"parse+stack+answer {full / messages * 1e6:6.1f} us  "
               f"-> {messages / full:6.0f} req/s per core  "
               f"(live server transactions {stack.transactions['server']})")
        start = time.process_time()
        for item in data:
            stack._on_message(item, flow)  # type: ignore[arg-type]
        absorbed = time.process_time() - start
        report(f"{method:8} round {round_number + 1}: retransmission absorbed in "
               f"{absorbed / messages * 1e6:6.1f} us (the last answer resent, no parse)")
    await stack.stop()


def answer_200(incoming: IncomingRequest) -> None:
    incoming.respond(make_response(incoming.request, 200, to_tag="b"))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--register", action="store_true", help="also REGISTER with a trivial handler")
    args = parser.parse_args()
    asyncio.run(run(args.messages, args.rounds, "OPTIONS"))
    if args.register:
        asyncio.run(run(args.messages, args.rounds, "REGISTER"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
