"""Async request handlers start at once, inside the receive path (RFC 3261 section 17.2 server
transactions stay the stack's): one that never suspends answers before the datagram's callback
returns, one that suspends goes on in a Task, and failures before or after a suspension are a 500."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator

import pytest

from cti_server.events import EventBus
from cti_server.sip.memory_transport import MemoryFlow, MemoryTransports
from cti_server.sip.message import SipResponse, make_response
from cti_server.sip.parser import parse_message
from cti_server.sip.stack import IncomingRequest, SipComponent
from tests.conftest import make_config

marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="outside")


def statuses(flow: MemoryFlow) -> list[int]:
    """The status codes of what the stack sent, in order."""
    out = []
    for data in flow.sent:
        message = parse_message(data)
        assert isinstance(message, SipResponse)
        out.append(message.status)
    return out


def request(method: str, branch: str) -> bytes:
    return (f"{method} sip:127.0.0.1:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK{branch}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:a@127.0.0.1>\r\n"
            f"Call-ID: {branch}@127.0.0.1\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n").encode()


@pytest.fixture
async def wired() -> AsyncIterator[tuple[SipComponent, MemoryFlow]]:
    stack = SipComponent(make_config(), EventBus())
    flow = MemoryFlow()
    stack._loop = asyncio.get_running_loop()
    stack._transports = MemoryTransports(flow)  # type: ignore[assignment]
    yield stack, flow
    await stack.stop()


async def test_handler_without_suspension_answers_within_the_receive_call(
    wired: tuple[SipComponent, MemoryFlow],
) -> None:
    stack, flow = wired

    async def handler(incoming: IncomingRequest) -> None:
        marker.set("handler")
        incoming.respond(make_response(incoming.request, 200, to_tag="x"))

    stack.register_handler("REGISTER", handler)
    stack._on_message(request("REGISTER", "1"), flow)
    assert statuses(flow) == [200]
    assert not stack._tasks
    assert marker.get() == "outside"  # the handler ran in its own copy of the context


async def test_handler_that_suspends_goes_on_in_a_task(wired: tuple[SipComponent, MemoryFlow]) -> None:
    stack, flow = wired
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def handler(incoming: IncomingRequest) -> None:
        marker.set("handler")
        await asyncio.sleep(0)
        reason = await gate
        assert marker.get() == "handler"
        incoming.respond(make_response(incoming.request, 202, reason, to_tag="x"))

    stack.register_handler("MESSAGE", handler)
    stack._on_message(request("MESSAGE", "2"), flow)
    assert flow.sent == [] and len(stack._tasks) == 1
    gate.set_result("Later")
    for _ in range(5):
        await asyncio.sleep(0)
    assert statuses(flow) == [202]
    assert marker.get() == "outside"


@pytest.mark.parametrize("suspend_first", [False, True])
async def test_failing_async_handler_is_answered_500(
    wired: tuple[SipComponent, MemoryFlow], suspend_first: bool
) -> None:
    stack, flow = wired

    async def handler(incoming: IncomingRequest) -> None:
        if suspend_first:
            await asyncio.sleep(0)
        raise RuntimeError("boom")

    stack.register_handler("MESSAGE", handler)
    stack._on_message(request("MESSAGE", "3"), flow)
    for _ in range(5):
        await asyncio.sleep(0)
    assert statuses(flow) == [500]
    assert stack.stats["handler_errors"] == 1


async def test_suspended_handler_is_cancelled_on_stop(wired: tuple[SipComponent, MemoryFlow]) -> None:
    stack, flow = wired
    cancelled: list[bool] = []

    async def handler(incoming: IncomingRequest) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    stack.register_handler("MESSAGE", handler)
    stack._on_message(request("MESSAGE", "4"), flow)
    await asyncio.sleep(0)
    await stack.stop()
    assert cancelled == [True]
