"""The push protocol for voice, without sockets: the real routing engine (memory backend, simulated
clock) drives ``QueueCalls``; the B2BUA underneath is a recording stand-in whose phones answer when the
test says. Accept on the page, decline on the page, a late answer, an accepted call the phone never takes,
a supervisor's withdrawal, and steps taken by another server process on a shared backend."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from cti_server.calls.caller_id import CallerId
from cti_server.calls.model import Call, Direction, EndReason, Leg, LegRole
from cti_server.calls.queue_calls import QueueCalls, QueuedCall
from cti_server.calls.session import CallSession
from cti_server.events import Event, EventBus
from cti_server.routing.backend import RoutingBackend
from cti_server.routing.clock import SimulatedClock
from cti_server.routing.engine import RoutingEngine
from cti_server.routing.memory import MemoryRoutingBackend
from cti_server.routing.model import Agent, Queue, RoutingConfig, WorkItem
from cti_server.sip.headers import Headers
from tests.routing.conftest import drop_prefix, make_backend

PHONES = {"a1": "1001", "a2": "1002"}  # routing agent -> SIP user


@dataclass(eq=False)
class Phone:
    """A B-leg ringing one phone; ``answer`` settles what its INVITE gets."""

    label: str
    session: CallSession
    purpose: str = "queue"
    finished: bool = False
    cancel_wanted: bool = False
    leg_id: str = ""
    answer: asyncio.Future[int] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    model: Leg = field(default_factory=lambda: Leg(LegRole.B, peer="udp:127.0.0.1:5062"))


class FakeB2bua:
    """What QueueCalls uses of the B2BUA, recording CANCEL, ACK, BYE and bridges."""

    def __init__(self) -> None:
        self.calls_config = SimpleNamespace(no_answer_timeout=30.0, session_expires=1800,
                                            ring_again_after=5.0)
        self.router = SimpleNamespace(user_targets=self.user_targets)
        self.media = SimpleNamespace(accept_answer=lambda *a: None, resume=lambda *a: None,
                                     bridge=self.bridge, close_leg=self.close_leg)
        self.stats: Counter[str] = Counter()
        self.queue_calls: QueueCalls | None = None
        self.phones: list[Phone] = []
        self.log: list[tuple[str, str]] = []
        self.ended: list[EndReason] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self.rang = asyncio.Event()

    def clock(self) -> float:
        return 100.0

    async def user_targets(self, users: list[str]) -> list[Any]:
        return [SimpleNamespace(label=user) for user in users]

    async def _run_branch(self, session: CallSession, target: Any, responded: Any, purpose: str) -> int:
        phone = Phone(target.label, session, purpose, leg_id=f"b{len(self.phones)}")
        self.phones.append(phone)
        self.rang.set()
        session.branches.append(phone)  # type: ignore[arg-type]
        assert self.queue_calls is not None
        self.queue_calls.on_agent_ringing(session, phone, None)  # type: ignore[arg-type]  # 180
        status = await phone.answer
        phone.finished = True
        if status < 300:
            await self.queue_calls.on_agent_answered(session, phone, _ok())  # type: ignore[arg-type]
        return status

    async def _cancel_branch(self, phone: Phone) -> None:
        if phone.finished or phone.cancel_wanted:
            return
        phone.cancel_wanted = True
        self.log.append(("CANCEL", phone.label))

    def _confirm_uac_dialog(self, phone: Phone, response: Any) -> bool:
        return True

    async def _send_ack(self, phone: Phone, response: Any) -> None:
        self.log.append(("ACK", phone.label))

    async def _bye(self, phone: Phone) -> None:
        self.log.append(("BYE", phone.label))

    async def _drop_leg(self, phone: Phone) -> None:
        pass

    def bridge(self, a: str, b: str) -> None:
        self.log.append(("bridge", next(p.label for p in self.phones if p.leg_id == b)))

    async def close_leg(self, leg_id: str) -> None:
        pass

    def _arm_session_timer(self, leg: Any) -> None:
        pass

    async def _end(self, session: CallSession, reason: EndReason, **kwargs: Any) -> None:
        session.ending = True
        self.ended.append(reason)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def ringing(self) -> list[str]:
        return [p.label for p in self.phones if not p.finished and not p.cancel_wanted]

    def phone(self, label: str) -> Phone:
        return [p for p in self.phones if p.label == label][-1]


def _ok() -> Any:
    return SimpleNamespace(headers=Headers(), body=b"", status=200)


@dataclass
class Floor:
    bus: EventBus
    engine: RoutingEngine
    b2bua: FakeB2bua
    calls: QueueCalls
    events: list[Event]

    async def settle(self) -> None:
        """Let every handler and spawned task run to its next wait (no clock involved)."""
        for _ in range(50):  # handlers and the B2BUA's tasks; ring rounds wait on their phones
            await self.bus.drain()
            await asyncio.sleep(0)

    async def call(self, call_id: str = "call1") -> QueuedCall:
        """A queued caller as ``QueueCalls.take`` leaves it (answered, music on), then its item queued."""
        call = Call(caller=CallerId("+15557770000", None, "from"), called_number="15550300",
                    call_center="cc1", direction=Direction.INBOUND, publish=self.bus.publish, now=1.0,
                    call_id=call_id)
        session = CallSession(call)
        session.a = SimpleNamespace(leg_id="a")  # type: ignore[assignment]
        queued = QueuedCall(session, call_id)
        queued.item_args = {"channel": "voice", "queue": "support", "call_center": "cc1",
                            "data": {"call_id": call_id}}
        self.calls.queued[call_id] = self.calls.by_item[call_id] = queued
        stored = await self.engine.enqueue(WorkItem(id=call_id, **queued.item_args))
        queued.item_args["created"] = stored.created
        await self.settle()
        return queued

    def trail(self) -> list[tuple[str, str | None]]:
        return [(e.topic.removeprefix("work_item."), e.data.get("agent"))
                for e in self.events if e.topic.startswith("work_item.")]

    def rung(self) -> list[dict[str, str]]:
        return [e.data["target"]["ringing"] for e in self.events if e.topic == "call.ringing"]


async def make_floor(backend: RoutingBackend | None = None, shared: bool = False) -> Floor:
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe("*", events.append)
    backend = backend or MemoryRoutingBackend()
    engine = RoutingEngine(backend, SimulatedClock(1000.0), bus.publish)
    await backend.put_routing_config(RoutingConfig(id="default", push_timeout_s=30))
    await backend.put_queue(Queue(id="support", call_center="cc1", routing_config="default"))
    b2bua = FakeB2bua()

    async def sip_user_of(agent: str) -> str | None:
        return PHONES.get(agent)

    async def call_center_id_of(name: str) -> str:
        return name

    calls = QueueCalls(b2bua, bus, lambda: engine, sip_user_of, call_center_id_of,  # type: ignore[arg-type]
                       shared_routing=shared)
    await calls.start()
    return Floor(bus, engine, b2bua, calls, events)


async def agents(floor: Floor, *ids: str) -> None:
    for agent_id in ids:
        await floor.engine.register_agent(Agent(id=agent_id, call_center="cc1", queues=["support"]))
        await floor.engine.set_agent_status(agent_id, "Available")


@pytest.fixture
async def floor() -> Floor:
    floor = await make_floor()
    await agents(floor, "a1", "a2")
    return floor


async def test_the_offer_rings_the_agents_phone_and_its_answer_is_the_accept(floor: Floor) -> None:
    await floor.call()
    assert floor.b2bua.ringing() == ["1001"]
    assert floor.rung() == [{"agent": "a1", "user": "1001"}]
    floor.b2bua.phone("1001").answer.set_result(200)
    await floor.settle()
    assert floor.trail()[-2:] == [("offered", "a1"), ("accepted", "a1")]
    assert ("bridge", "1001") in floor.b2bua.log and ("BYE", "1001") not in floor.b2bua.log
    assert (await floor.engine.get_item("call1")).state == "assigned"


async def test_accept_on_the_page_keeps_the_phone_ringing_and_its_answer_connects(floor: Floor) -> None:
    queued = await floor.call()
    await floor.engine.accept("call1", "a1")  # POST .../accept
    await floor.settle()
    assert queued.accepted and floor.b2bua.ringing() == ["1001"]
    floor.b2bua.phone("1001").answer.set_result(200)
    await floor.settle()
    assert ("bridge", "1001") in floor.b2bua.log and ("BYE", "1001") not in floor.b2bua.log
    assert floor.trail().count(("accepted", "a1")) == 1
    assert queued.connected and queued.session.call.target["agent"] == "a1"


async def test_decline_on_the_page_cancels_the_phone_at_once_and_a_late_answer_is_hung_up(
        floor: Floor) -> None:
    await floor.call()
    await floor.engine.decline("call1", "a1", "on a break")  # POST .../decline
    await floor.settle()
    assert ("CANCEL", "1001") in floor.b2bua.log
    assert floor.b2bua.ringing() == ["1002"]  # never two agents at once
    floor.b2bua.phone("1001").answer.set_result(200)  # its 200 crossed our CANCEL
    await floor.settle()
    assert floor.b2bua.log[-2:] == [("ACK", "1001"), ("BYE", "1001")]
    assert ("bridge", "1001") not in floor.b2bua.log
    assert (await floor.engine.get_item("call1")).state == "offered"  # still a2's offer
    floor.b2bua.phone("1002").answer.set_result(200)
    await floor.settle()
    assert ("bridge", "1002") in floor.b2bua.log
    assert [t for t in floor.trail() if t[0] in ("declined", "offered", "accepted")] == [
        ("offered", "a1"), ("declined", "a1"), ("offered", "a2"), ("accepted", "a2")]
    assert floor.rung() == [{"agent": "a1", "user": "1001"}, {"agent": "a2", "user": "1002"}]


@pytest.mark.parametrize("topic", ["timed_out", "moved", "withdrawn"])
async def test_every_end_of_the_offer_cancels_the_phone(floor: Floor, topic: str) -> None:
    await floor.call()
    if topic == "timed_out":
        floor.engine.clock.advance(31)  # type: ignore[attr-defined]
        await floor.engine.tick()
    elif topic == "moved":
        await floor.engine.move_item("call1", agent="a2")
    else:
        await floor.engine.withdraw("call1", "spam")
    await floor.settle()
    assert ("CANCEL", "1001") in floor.b2bua.log
    assert floor.b2bua.ringing() == ([] if topic == "withdrawn" else ["1002"])
    assert floor.b2bua.ended == ([EndReason.UNAVAILABLE] if topic == "withdrawn" else [])


async def test_a_phone_rejecting_is_a_decline(floor: Floor) -> None:
    await floor.call()
    floor.b2bua.phone("1001").answer.set_result(486)
    await floor.settle()
    declined = [e for e in floor.events if e.topic == "work_item.declined"]
    assert [(e.data["agent"], e.data["reason"]) for e in declined] == [("a1", "phone answered 486")]
    assert floor.b2bua.ringing() == ["1002"]


async def test_an_accepted_call_the_phone_does_not_take_is_queued_again(floor: Floor) -> None:
    queued = await floor.call()
    await floor.engine.accept("call1", "a1")
    await floor.settle()
    floor.b2bua.phone("1001").answer.set_result(480)
    await floor.settle()
    old = await floor.engine.get_item("call1")
    assert (old.state, old.close_reason) == ("closed", "phone_not_answered")
    assert queued.item_id == "call1.1"
    again = await floor.engine.get_item("call1.1")
    assert (again.state, again.agent, again.data["call_id"]) == ("offered", "a2", "call1")
    assert again.created == old.created  # keeps its place in the queue
    assert floor.b2bua.ringing() == ["1002"]
    floor.b2bua.phone("1002").answer.set_result(200)
    await floor.settle()
    assert ("bridge", "1002") in floor.b2bua.log
    assert (await floor.engine.get_item("call1.1")).state == "assigned"


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_steps_on_another_process_are_applied_when_the_item_is_read(kind: str) -> None:
    prefix = f"test:queue-calls:{uuid.uuid4().hex[:8]}:"
    backend = await make_backend(kind, prefix)
    # Another server process: the same routing state (for Redis its own connection), its own bus.
    other = backend if kind == "memory" else await make_backend(kind, prefix)
    try:
        here = await make_floor(backend, shared=True)
        await agents(here, "a1", "a2")
        elsewhere = RoutingEngine(other, SimulatedClock(1000.0), EventBus().publish)
        queued = await here.call()
        await elsewhere.decline("call1", "a1", "busy elsewhere")  # offers it to a2, over there
        await here.settle()
        assert here.b2bua.ringing() == ["1001"]  # not heard
        await here.calls.reconcile()
        await here.settle()
        assert ("CANCEL", "1001") in here.b2bua.log and here.b2bua.ringing() == ["1002"]
        await elsewhere.accept("call1", "a2")  # a2 pressed Accept on a page served over there
        here.b2bua.phone("1002").answer.set_result(200)  # ... and the phone answered before we read it
        assert queued.ring_task is not None
        await queued.ring_task  # the answer, the accept refused (taken over there), the bridge
        assert ("bridge", "1002") in here.b2bua.log and ("BYE", "1002") not in here.b2bua.log
        await here.calls.stop()
    finally:
        if kind == "redis":
            await drop_prefix(prefix)
            await other.aclose()
        await backend.aclose()


async def test_an_agent_alone_who_declined_is_rung_again_only_after_a_pause() -> None:
    floor = await make_floor()
    floor.b2bua.calls_config.ring_again_after = 0.01
    await agents(floor, "a1")
    queued = await floor.call()
    await floor.engine.decline("call1", "a1", "in a hurry")  # nobody else fits: offered to a1 again
    await floor.settle()
    assert floor.trail()[-2:] == [("declined", "a1"), ("offered", "a1")]
    assert ("CANCEL", "1001") in floor.b2bua.log and floor.b2bua.ringing() == []  # not at once
    floor.b2bua.rang.clear()
    await asyncio.wait_for(floor.b2bua.rang.wait(), 5)  # the round after the pause rings it
    assert floor.b2bua.ringing() == ["1001"] and queued.agent == "a1"
    floor.b2bua.phone("1001").answer.set_result(200)
    await floor.settle()
    assert ("bridge", "1001") in floor.b2bua.log
