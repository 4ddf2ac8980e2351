"""RFC 3261 13.3.1.4 over real loopback sockets: a 2xx to INVITE whose ACK never comes is resent with T1
doubling up to T2, and after 64*T1 the transaction user hears about it (``on_ack_timeout``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from cti_server.sip.message import SipResponse, make_response
from cti_server.sip.parser import parse_message
from cti_server.sip.stack import IncomingRequest, SipComponent
from tests.sip.test_stack import FAST_TIMERS, UdpPeer, peer, stack, udp
from tests.sip.tx_messages import sip_request

TIMERS = FAST_TIMERS  # 64*T1 = 1.28 s
__all__ = ["peer", "stack"]  # fixtures used here


def answer_with_2xx(timed_out: asyncio.Event) -> Callable[[IncomingRequest], None]:
    def on_invite(incoming: IncomingRequest) -> None:
        incoming.on_ack_timeout(timed_out.set)
        incoming.respond(make_response(incoming.request, 200, to_tag="uas"))
    return on_invite


async def test_unacked_2xx_is_resent_doubling_to_t2_then_the_tu_is_told(
    stack: SipComponent, peer: UdpPeer
) -> None:
    timed_out = asyncio.Event()
    stack.register_handler("INVITE", answer_with_2xx(timed_out))
    loop = asyncio.get_running_loop()
    peer.send(sip_request("INVITE", peer.port), udp(stack))
    arrivals: list[float] = []

    async def collect() -> None:
        while True:
            data, _ = await peer.queue.get()
            message = parse_message(data)
            if isinstance(message, SipResponse) and message.status == 200:
                arrivals.append(loop.time())

    collector = asyncio.ensure_future(collect())
    async with asyncio.timeout(64 * TIMERS["t1"] + 2):
        await timed_out.wait()
    collector.cancel()
    # T1, 2*T1, 4*T1 = T2, then every T2 until 64*T1: about 17 copies. Doubling without the T2 cap
    # would give 7 (0.02 .. 0.64 s), so 10 or more shows the cap.
    assert len(arrivals) >= 10, arrivals
    assert arrivals[-1] - arrivals[0] <= 64 * TIMERS["t1"] + 0.5
    assert stack.transactions["invite_2xx"] == 0
    assert stack.stats["transactions_timed_out"] >= 1


async def test_acked_2xx_does_not_report_a_timeout(stack: SipComponent, peer: UdpPeer) -> None:
    timed_out = asyncio.Event()
    acked = asyncio.Event()
    stack.register_handler("INVITE", answer_with_2xx(timed_out))
    stack.register_handler("ACK", lambda _incoming: acked.set())
    peer.send(sip_request("INVITE", peer.port), udp(stack))
    assert (await peer.response()).status == 100
    assert (await peer.response()).status == 200
    peer.send(sip_request("ACK", peer.port, branch="z9hG4bKack", to_tag="uas"), udp(stack))
    await asyncio.wait_for(acked.wait(), 2)
    assert stack.transactions["invite_2xx"] == 0  # retransmission stopped: timer H cannot fire any more
    assert not timed_out.is_set()
