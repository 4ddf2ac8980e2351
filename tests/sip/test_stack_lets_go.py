"""A transaction that only waits out its timer (M, K, J, L: up to 64*T1 after the answer) keeps nothing of
the transaction user's: not the request, not the response, not the callbacks (and what they refer to).
At hundreds of calls per second, whatever it kept lived 32 s longer and was scanned again and again by
the garbage collector. Reference counting alone must free these objects (the collector is off here)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator, Iterator

import pytest

from cti_server.events import EventBus
from cti_server.sip.memory_transport import MemoryFlow, MemoryTransports
from cti_server.sip.message import SipRequest, SipResponse, make_request, make_response
from cti_server.sip.parser import parse_message
from cti_server.sip.stack import IncomingRequest, SipComponent
from tests.conftest import make_config


class _Transports(MemoryTransports):
    async def flow_to(self, transport: str, remote: tuple[str, int], _timeout: float) -> MemoryFlow:
        return self.flow


class _Owner:
    """Stands for what a callback refers to (a call and its legs)."""


@pytest.fixture(autouse=True)
def no_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    yield
    gc.enable()


@pytest.fixture
async def wired() -> AsyncIterator[tuple[SipComponent, MemoryFlow]]:
    stack = SipComponent(make_config(), EventBus())
    flow = MemoryFlow()
    stack._loop = asyncio.get_running_loop()
    stack._transports = _Transports(flow)  # type: ignore[assignment]
    yield stack, flow
    await stack.stop()


def sent(flow: MemoryFlow) -> SipRequest | SipResponse:
    return parse_message(flow.sent[-1])


async def test_answered_invite_client_transaction_keeps_no_request_response_or_callbacks(
    wired: tuple[SipComponent, MemoryFlow],
) -> None:
    stack, flow = wired
    owner = _Owner()
    seen: list[int] = []
    request = make_request("INVITE", "sip:b@127.0.0.1:5062", from_="<sip:a@127.0.0.1>;tag=a",
                           to="<sip:b@127.0.0.1>", call_id="lets-go-1", cseq=1, via="SIP/2.0/UDP x")
    request_ref = weakref.ref(request)
    on_provisional = lambda r, o=owner: seen.append(r.status)  # noqa: E731 - refers to ``owner``
    task = asyncio.ensure_future(stack.send_request(request, ("udp", "127.0.0.1", 5062), on_provisional))
    del request, on_provisional
    await asyncio.sleep(0)
    invite = sent(flow)
    assert isinstance(invite, SipRequest)
    stack._on_message(make_response(invite, 180, to_tag="b").serialize(), flow)
    stack._on_message(make_response(invite, 200, to_tag="b").serialize(), flow)
    response = await task
    assert response.status == 200 and seen == [180]
    response_ref, owner_ref = weakref.ref(response), weakref.ref(owner)
    del task, response, owner
    await asyncio.sleep(0)  # the loop lets go of the finished task's last step
    assert stack.transactions["client"] == 1  # in Accepted, waiting out timer M
    alive = [ref() is not None for ref in (request_ref, response_ref, owner_ref)]
    assert alive == [False, False, False]


async def test_answered_bye_client_transaction_keeps_no_request(
    wired: tuple[SipComponent, MemoryFlow],
) -> None:
    stack, flow = wired
    request = make_request("BYE", "sip:b@127.0.0.1:5062", from_="<sip:a@127.0.0.1>;tag=a",
                           to="<sip:b@127.0.0.1>;tag=b", call_id="lets-go-2", cseq=2, via="SIP/2.0/UDP x")
    request_ref = weakref.ref(request)
    task = asyncio.ensure_future(stack.send_request(request, ("udp", "127.0.0.1", 5062)))
    del request
    await asyncio.sleep(0)
    bye = sent(flow)
    assert isinstance(bye, SipRequest)
    stack._on_message(make_response(bye, 200).serialize(), flow)
    assert (await task).status == 200
    del task
    assert stack.transactions["client"] == 1  # in Completed, waiting out timer K
    assert request_ref() is None


async def test_answered_invite_server_transaction_lets_go_of_cancel_and_ack_timeout_callbacks(
    wired: tuple[SipComponent, MemoryFlow],
) -> None:
    stack, flow = wired
    owners: list[weakref.ref[_Owner]] = []

    def handler(incoming: IncomingRequest) -> None:
        cancel_owner, ack_owner = _Owner(), _Owner()
        owners.extend((weakref.ref(cancel_owner), weakref.ref(ack_owner)))
        incoming.on_cancel(lambda _incoming, o=cancel_owner: None)
        incoming.on_ack_timeout(lambda o=ack_owner: None)
        incoming.respond(make_response(incoming.request, 200, to_tag="srv"))

    stack.register_handler("INVITE", handler)
    invite = make_request("INVITE", "sip:svc@127.0.0.1:5060", from_="<sip:a@127.0.0.1>;tag=a",
                          to="<sip:svc@127.0.0.1>", call_id="lets-go-3", cseq=1,
                          via="SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKletsgo3")
    stack._on_message(invite.serialize(), flow)
    ok = sent(flow)
    assert isinstance(ok, SipResponse) and ok.status == 200
    assert owners[0]() is None  # the CANCEL callback: a CANCEL after the answer changes nothing
    assert owners[1]() is not None  # the 2xx is resent until the ACK, and its timeout still counts
    ack = make_request("ACK", "sip:svc@127.0.0.1:5060", from_="<sip:a@127.0.0.1>;tag=a",
                       to="<sip:svc@127.0.0.1>;tag=srv", call_id="lets-go-3", cseq=1,
                       via="SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKletsgo3ack")
    stack._on_message(ack.serialize(), flow)
    assert stack.transactions["server"] == 1 and stack.transactions["invite_2xx"] == 0
    assert owners[1]() is None
