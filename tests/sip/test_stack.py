"""The SIP stack over real loopback sockets: dispatch, built-in answers, bad input, CANCEL, 2xx
retransmission, received/rport, UAC transactions and the stats route."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from cti_server.api import create_app
from cti_server.api.sip_stats import SIP_STACK_KEY
from cti_server.events import EventBus
from cti_server.sip.message import SipRequest, SipResponse, make_request, make_response
from cti_server.sip.parser import parse_message
from cti_server.sip.stack import IncomingRequest, LogBudget, SipComponent, call_id_of
from cti_server.store import Store
from cti_server.store.passwords import PasswordHashing
from tests.api.conftest import api_config, make_tenants
from tests.conftest import make_config
from tests.store.backends import sqlite_store, sqlite_template

__all__ = ["sqlite_store", "sqlite_template"]  # fixtures used here
from tests.sip.tx_messages import sip_request

FAST_TIMERS = {"t1": 0.02, "t2": 0.08, "t4": 0.1}
WAIT = 2.0


class UdpPeer(asyncio.DatagramProtocol):
    """A UDP socket on loopback that queues what it receives."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait((data, addr))

    @property
    def port(self) -> int:
        assert self.transport is not None
        port: int = self.transport.get_extra_info("sockname")[1]
        return port

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)

    async def receive(self) -> SipRequest | SipResponse:
        data, _ = await asyncio.wait_for(self.queue.get(), WAIT)
        return parse_message(data)

    async def response(self) -> SipResponse:
        message = await self.receive()
        assert isinstance(message, SipResponse)
        return message

    async def nothing(self, within: float = 0.3) -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(self.queue.get(), within)


async def udp_peer() -> UdpPeer:
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_datagram_endpoint(UdpPeer, local_addr=("127.0.0.1", 0))
    return peer


@pytest.fixture
async def stack() -> AsyncIterator[SipComponent]:
    component = SipComponent(make_config(sip={"timers": FAST_TIMERS, "max_message_size": 1500}), EventBus())
    await component.start()
    yield component
    await component.stop()


@pytest.fixture
async def peer() -> AsyncIterator[UdpPeer]:
    p = await udp_peer()
    yield p
    assert p.transport is not None
    p.transport.close()


def udp(stack: SipComponent) -> tuple[str, int]:
    assert stack.udp_address is not None
    return stack.udp_address


async def test_options_answered_with_capabilities(stack: SipComponent, peer: UdpPeer) -> None:
    stack.register_handler("REGISTER", lambda incoming: None)
    peer.send(sip_request("OPTIONS", peer.port), udp(stack))
    response = await peer.response()
    assert response.status == 200 and response.to_tag
    assert set(response.headers.get_all("Allow")) == {"ACK", "CANCEL", "OPTIONS", "REGISTER"}
    assert response.headers.get("Accept") == "application/sdp"
    assert response.headers.get("Supported") is not None
    assert response.headers.get("Server") == "cti-server"
    assert stack.stats["options_answered"] == 1 and stack.stats["requests_in"] == 1


async def test_retransmitted_request_gets_the_same_response_again(stack: SipComponent, peer: UdpPeer) -> None:
    data = sip_request("OPTIONS", peer.port)
    peer.send(data, udp(stack))
    first = await peer.response()
    peer.send(data, udp(stack))
    second = await peer.response()
    assert second.serialize() == first.serialize()
    assert stack.stats["server_transactions_created"] == 1
    assert stack.stats["retransmissions_absorbed"] == 1


async def test_unknown_method_501_known_method_405_with_allow(stack: SipComponent, peer: UdpPeer) -> None:
    peer.send(sip_request("FROBNICATE", peer.port), udp(stack))
    assert (await peer.response()).status == 501
    peer.send(sip_request("SUBSCRIBE", peer.port, branch="z9hG4bKp2"), udp(stack))
    response = await peer.response()
    assert response.status == 405 and "OPTIONS" in response.headers.get_all("Allow")


async def test_in_dialog_request_without_handler_is_481(stack: SipComponent, peer: UdpPeer) -> None:
    peer.send(sip_request("BYE", peer.port, to_tag="gone"), udp(stack))
    assert (await peer.response()).status == 481


def test_log_budget_limits_lines_per_second() -> None:
    budget = LogBudget(2)
    assert [budget.allow(10.0), budget.allow(10.1), budget.allow(10.2), budget.allow(10.9)] == [
        True, True, False, False]
    assert budget.allow(11.0) and budget.take_suppressed() == 2 and budget.take_suppressed() == 0


def test_call_id_of_raw_bytes() -> None:
    assert call_id_of(b"OPTIONS x SIP/2.0\r\ni: abc@h \r\n\r\n") == "abc@h"
    assert call_id_of(b"\x00\xff garbage") is None


async def test_max_forwards_zero_is_483_except_options(stack: SipComponent, peer: UdpPeer) -> None:
    stack.register_handler("MESSAGE", lambda incoming: incoming.respond(make_response(incoming.request, 200)))
    hop = "Max-Forwards: 0\r\n"
    peer.send(sip_request("MESSAGE", peer.port, extra=hop).replace(b"Max-Forwards: 70\r\n", b""), udp(stack))
    assert (await peer.response()).status == 483
    peer.send(sip_request("OPTIONS", peer.port, branch="z9hG4bKp2", extra=hop)
              .replace(b"Max-Forwards: 70\r\n", b""), udp(stack))
    assert (await peer.response()).status == 200


async def test_handlers_sync_async_and_failing(stack: SipComponent, peer: UdpPeer) -> None:
    seen: list[IncomingRequest] = []

    def on_message(incoming: IncomingRequest) -> None:
        seen.append(incoming)
        incoming.respond(make_response(incoming.request, 202, to_tag="t"))

    async def on_info(incoming: IncomingRequest) -> None:
        await asyncio.sleep(0)
        incoming.respond(make_response(incoming.request, 200, to_tag="t"))

    async def on_notify(incoming: IncomingRequest) -> None:
        raise RuntimeError("handler bug")

    stack.register_handler("MESSAGE", on_message)
    stack.register_handler("INFO", on_info)
    stack.register_handler("NOTIFY", on_notify)
    peer.send(sip_request("MESSAGE", peer.port, rport=True), udp(stack))
    assert (await peer.response()).status == 202
    assert seen[0].transport == "udp" and seen[0].source == ("127.0.0.1", peer.port)
    assert seen[0].local == udp(stack)
    peer.send(sip_request("INFO", peer.port, branch="z9hG4bKp2"), udp(stack))
    assert (await peer.response()).status == 200
    peer.send(sip_request("NOTIFY", peer.port, branch="z9hG4bKp3"), udp(stack))
    assert (await peer.response()).status == 500
    assert stack.stats["handler_errors"] == 1


async def test_malformed_request_gets_400_and_garbage_is_dropped(stack: SipComponent, peer: UdpPeer) -> None:
    broken = sip_request("OPTIONS", peer.port).replace(b"Max-Forwards: 70", b"Max-Forwards: many")
    peer.send(broken, udp(stack))
    response = await peer.response()
    assert response.status == 400 and "Max-Forwards" in response.reason
    # A fault in a header the answer must copy (CSeq) leaves nothing usable to answer: dropped.
    peer.send(sip_request("OPTIONS", peer.port).replace(b"CSeq: 1 OPTIONS", b"CSeq: one OPTIONS"),
              udp(stack))
    for garbage in (b"\x00\xff\x13garbage", b"SIP/2.0 200 OK\r\n\r\n", b"INVITE\r\n\r\n", b"\r\n\r\n"):
        peer.send(garbage, udp(stack))
    await peer.nothing()
    assert stack.stats["garbage_dropped"] == 4 and stack.stats["keepalives_in"] == 1
    peer.send(sip_request("OPTIONS", peer.port, branch="z9hG4bKp9"), udp(stack))
    assert (await peer.response()).status == 200


async def test_oversize_datagram_gets_513(stack: SipComponent, peer: UdpPeer) -> None:
    peer.send(sip_request("MESSAGE", peer.port, body=b"x" * 2000,
                          extra="Content-Type: text/plain\r\n"), udp(stack))
    assert (await peer.response()).status == 513
    assert stack.stats["oversize_messages"] == 1


async def test_response_goes_to_rport_source_or_to_via_port(stack: SipComponent, peer: UdpPeer) -> None:
    other = await udp_peer()
    try:
        # rport: answer to the source port; the Via gets received and rport (RFC 3581 4).
        peer.send(sip_request("OPTIONS", peer.port, rport=True, via_port=other.port), udp(stack))
        response = await peer.response()
        assert response.top_via.rport == str(peer.port) and response.top_via.received == "127.0.0.1"
        # no rport: answer to the sent-by port (RFC 3261 18.2.2).
        peer.send(sip_request("OPTIONS", peer.port, branch="z9hG4bKp2", via_port=other.port), udp(stack))
        assert (await other.response()).status == 200
        await peer.nothing(0.1)
    finally:
        assert other.transport is not None
        other.transport.close()


async def test_stray_cancel_is_481(stack: SipComponent, peer: UdpPeer) -> None:
    peer.send(sip_request("CANCEL", peer.port, branch="z9hG4bKnone"), udp(stack))
    assert (await peer.response()).status == 481
    assert stack.stats["answered_481"] == 1


async def test_cancel_answers_200_then_487_and_the_ack_closes_it(stack: SipComponent, peer: UdpPeer) -> None:
    cancelled: list[str] = []
    stack.register_handler("INVITE", lambda incoming: incoming.on_cancel(
        lambda invite: cancelled.append(invite.request.call_id)))
    peer.send(sip_request("INVITE", peer.port), udp(stack))
    assert (await peer.response()).status == 100
    peer.send(sip_request("CANCEL", peer.port), udp(stack))
    statuses = {(await peer.response()).cseq.method: 0 for _ in range(2)}
    assert set(statuses) == {"CANCEL", "INVITE"}
    assert cancelled == ["c1@peer"]
    # The 487 is retransmitted (timer G) until the ACK; the ACK ends that.
    final = await peer.response()
    assert final.status == 487
    peer.send(sip_request("ACK", peer.port, to_tag=final.to_tag), udp(stack))
    await asyncio.sleep(0.05)
    while not peer.queue.empty():
        peer.queue.get_nowait()
    await peer.nothing(0.2)
    assert stack.transactions["server"] == 1  # the CANCEL's, in Completed until J; the INVITE's is gone


async def test_invite_2xx_retransmitted_until_ack_and_ack_reaches_handler(
    stack: SipComponent, peer: UdpPeer
) -> None:
    acks: list[IncomingRequest] = []
    stack.register_handler("INVITE", lambda incoming: incoming.respond(
        make_response(incoming.request, 200, to_tag="uas")))
    stack.register_handler("ACK", acks.append)
    peer.send(sip_request("INVITE", peer.port), udp(stack))
    assert (await peer.response()).status == 100
    oks = [await peer.response() for _ in range(3)]  # the 2xx and two retransmissions (13.3.1.4)
    assert [ok.status for ok in oks] == [200, 200, 200]
    peer.send(sip_request("ACK", peer.port, branch="z9hG4bKack", to_tag="uas"), udp(stack))
    await asyncio.sleep(0.1)
    while not peer.queue.empty():
        peer.queue.get_nowait()
    await peer.nothing(0.2)
    assert len(acks) == 1 and acks[0].request.method == "ACK"
    assert stack.transactions["invite_2xx"] == 0


async def test_send_request_runs_a_client_transaction(stack: SipComponent, peer: UdpPeer) -> None:
    provisional: list[int] = []
    request = make_request("OPTIONS", f"sip:peer@127.0.0.1:{peer.port}", from_="<sip:svc@127.0.0.1>;tag=s1",
                           to="<sip:peer@127.0.0.1>", call_id="uac-1", cseq=1,
                           via="SIP/2.0/UDP placeholder")
    task = asyncio.ensure_future(stack.send_request(request, ("udp", "127.0.0.1", peer.port),
                                                    on_provisional=lambda r: provisional.append(r.status)))
    received = await peer.receive()
    assert isinstance(received, SipRequest)
    via = received.top_via
    assert via.branch and via.branch.startswith("z9hG4bK") and "rport" in via.params
    assert (via.host, via.port) == udp(stack)
    peer.send(make_response(received, 180).serialize(), udp(stack))
    peer.send(make_response(received, 200, to_tag="p").serialize(), udp(stack))
    response = await asyncio.wait_for(task, WAIT)
    assert response.status == 200 and provisional == [180]


async def test_send_request_times_out_with_408_after_retransmitting(
    stack: SipComponent, peer: UdpPeer
) -> None:
    request = make_request("MESSAGE", "sip:peer@127.0.0.1", from_="<sip:svc@127.0.0.1>;tag=s1",
                           to="<sip:peer@127.0.0.1>", call_id="uac-2", cseq=1, via="SIP/2.0/UDP x")
    response = await asyncio.wait_for(stack.send_request(request, ("udp", "127.0.0.1", peer.port)), WAIT)
    assert response.status == 408  # timer F = 64*T1 = 1.28 s with T1 = 20 ms
    assert peer.queue.qsize() >= 5  # the request and its retransmissions
    assert stack.stats["transactions_timed_out"] == 1


async def test_send_request_transport_failure_is_503(stack: SipComponent) -> None:
    from tests.conftest import free_port

    request = make_request("OPTIONS", "sip:x@127.0.0.1", from_="<sip:svc@127.0.0.1>;tag=s1",
                           to="<sip:x@127.0.0.1>", call_id="uac-3", cseq=1, via="SIP/2.0/TCP x")
    port = free_port()
    response = await asyncio.wait_for(stack.send_request(request, ("tcp", "127.0.0.1", port)), WAIT)
    assert response.status == 503


async def test_stats_route_reports_counters_to_admins_only(
    aiohttp_client: Any, stack: SipComponent, peer: UdpPeer, sqlite_store: Store
) -> None:
    app = create_app(api_config(), store=sqlite_store)
    app[SIP_STACK_KEY] = stack
    tenants = await make_tenants(sqlite_store, PasswordHashing(api_config().auth))
    client: TestClient = await aiohttp_client(app)
    # the OPTIONS goes last: its server transaction lives only 64*T1 = 1.28 s (T1 = 20 ms here), which
    # hashing the tenants' passwords on a loaded machine can outlast
    peer.send(sip_request("OPTIONS", peer.port), udp(stack))
    await peer.response()
    assert (await client.get("/api/v1/sip/stats")).status == 401
    assert (await client.get("/api/v1/sip/stats", headers=tenants.headers("supervisor"))).status == 403
    body = await (await client.get("/api/v1/sip/stats", headers=tenants.headers("admin"))).json()
    assert body["counters"]["options_answered"] == 1
    assert body["transactions"]["server"] == 1


async def test_stats_route_is_503_without_a_stack(aiohttp_client: Any, sqlite_store: Store) -> None:
    tenants = await make_tenants(sqlite_store, PasswordHashing(api_config().auth))
    client: TestClient = await aiohttp_client(create_app(api_config(), store=sqlite_store))
    assert (await client.get("/api/v1/sip/stats", headers=tenants.headers("admin"))).status == 503


def uac_invite(peer_port: int, call_id: str) -> SipRequest:
    return make_request("INVITE", f"sip:peer@127.0.0.1:{peer_port}", from_="<sip:svc@127.0.0.1>;tag=s1",
                        to="<sip:peer@127.0.0.1>", call_id=call_id, cseq=1, via="SIP/2.0/UDP x")


async def test_send_invite_failure_is_acked_by_the_stack(stack: SipComponent, peer: UdpPeer) -> None:
    task = asyncio.ensure_future(stack.send_request(uac_invite(peer.port, "inv-1"),
                                                    ("udp", "127.0.0.1", peer.port)))
    invite = await peer.receive()
    assert isinstance(invite, SipRequest)
    peer.send(make_response(invite, 486, to_tag="busy").serialize(), udp(stack))
    assert (await asyncio.wait_for(task, WAIT)).status == 486
    ack = await peer.receive()
    assert isinstance(ack, SipRequest) and ack.method == "ACK" and ack.to_tag == "busy"
    assert ack.top_via.branch == invite.top_via.branch


async def test_send_invite_2xx_retransmissions_reach_the_tu(stack: SipComponent, peer: UdpPeer) -> None:
    again: list[int] = []
    task = asyncio.ensure_future(stack.send_request(uac_invite(peer.port, "inv-2"),
                                                    ("udp", "127.0.0.1", peer.port),
                                                    on_retransmitted_2xx=lambda r: again.append(r.status)))
    invite = await peer.receive()
    assert isinstance(invite, SipRequest)
    ok = make_response(invite, 200, to_tag="yes").serialize()
    peer.send(ok, udp(stack))
    assert (await asyncio.wait_for(task, WAIT)).status == 200
    peer.send(ok, udp(stack))
    await asyncio.sleep(0.1)
    assert again == [200]  # the TU ACKs 2xx itself (send_ack), each retransmission included


async def test_rport_with_several_vias_keeps_them_all(stack: SipComponent, peer: UdpPeer) -> None:
    second_via = b"Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKup\r\n"
    data = sip_request("OPTIONS", peer.port, rport=True).replace(
        b"Max-Forwards: 70\r\n", second_via + b"Max-Forwards: 70\r\n")
    peer.send(data, udp(stack))
    response = await peer.response()
    vias = response.vias
    assert len(vias) == 2 and vias[1].host == "proxy.example.com"
    assert vias[0].rport == str(peer.port) and vias[0].received == "127.0.0.1"
