"""Call routing: who may call (trunk allow-list, digest for users, 403 for strangers) and whom to ring."""

from __future__ import annotations

from typing import Any

from cti_server.calls.failures import best_failure, end_reason_for
from cti_server.calls.model import Direction, EndReason
from cti_server.calls.routing import CallRoute, CallRouter, Forking, Rejection, contact_destination
from cti_server.calls.trunk_auth import authorization_for
from cti_server.sip.bindings import Binding, InMemoryBindings, RegistrarBindings
from cti_server.sip.digest import DigestAuthenticator, users_from_config
from cti_server.sip.headers import Headers
from cti_server.sip.message import SipRequest
from cti_server.sip.redis_bindings import RedisBindings
from cti_server.sip.uri import parse_uri
from tests.conftest import make_config
from tests.sip.conftest import bindings, redis_bindings

__all__ = ["bindings", "redis_bindings"]  # fixtures: the tests of ringing run on both stores

NOW = 1000.0


def router(bindings: RegistrarBindings, **calls: Any) -> CallRouter:
    calls.setdefault("trunks", [
        {"name": "carrier", "host": "192.0.2.10", "allowed_sources": ["192.0.2.0/28"], "priority": 1},
        {"name": "backup", "host": "198.51.100.7", "port": 5080, "transport": "tcp", "priority": 2},
    ])
    calls.setdefault("dids", [
        {"number": "+15550100", "call_center": "support", "users": ["1001", "1002"]},
        {"number": "+15550200", "call_center": "sales", "queue": "sales"},
    ])
    config = make_config(calls=calls)
    sip = config.sip
    users = users_from_config(sip.users, sip.realm)
    authenticator = DigestAuthenticator(sip.realm, users, algorithms=("MD5",), secret=b"s" * 32)
    return CallRouter(config, bindings, authenticator, clock=lambda: NOW)


def invite(to: str, from_user: str = "+15557770000", *extra: tuple[str, str]) -> SipRequest:
    headers = Headers([
        ("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"), ("From", f"<sip:{from_user}@example.com>;tag=1"),
        ("To", f"<sip:{to}@cti.local>"), ("Call-ID", "c1"), ("CSeq", "1 INVITE"),
        ("Contact", "<sip:caller@192.0.2.1>"), *extra])
    return SipRequest("INVITE", parse_uri(f"sip:{to}@cti.local"), headers)


async def register(bindings: RegistrarBindings, user: str, contact: str, source: tuple[str, int],
                   expires_at: float = NOW + 300) -> None:
    await bindings.add(Binding(aor=f"sip:{user}@cti.local", key=contact, contact=contact,
                               expires_at=expires_at, call_id="r", cseq=1, source=source, transport="udp"))


async def test_trunk_call_to_did_rings_every_registered_phone(bindings: RegistrarBindings) -> None:
    await register(bindings, "1001", "sip:1001@10.0.0.5:5062", ("203.0.113.9", 40000))  # behind NAT
    await register(bindings, "1002", "sip:1002@192.0.2.50:5060", ("192.0.2.50", 5060))
    await register(bindings, "1002", "sip:1002@192.0.2.51", ("192.0.2.51", 5070), expires_at=NOW - 1)
    route = await router(bindings).route(invite("+1-555-0100"), ("192.0.2.3", 5060))
    assert isinstance(route, CallRoute)
    assert route.direction is Direction.INBOUND and route.forking is Forking.PARALLEL
    assert route.call_center == "support" and route.called_number == "+1-555-0100"
    assert route.description["trunk"] == "carrier"
    destinations = sorted(t.destination for t in route.targets)
    assert destinations == [("udp", "192.0.2.50", 5060), ("udp", "203.0.113.9", 40000)]
    assert {t.label for t in route.targets} == {"1001", "1002"}


async def test_trunk_call_failures() -> None:
    bindings = InMemoryBindings()
    calls = router(bindings)
    assert await calls.route(invite("5559999"), ("192.0.2.3", 5060)) == Rejection(404, "Not Found")
    assert await calls.route(invite("+15550100"), ("192.0.2.3", 5060)) == \
        Rejection(480, "Temporarily Unavailable")  # nobody registered
    queued = await calls.route(invite("+15550200"), ("192.0.2.3", 5060))
    # A queue DID is answered by us and handed to the routing engine (calls/queue_calls.py).
    assert isinstance(queued, CallRoute) and queued.forking is Forking.QUEUE and queued.targets == []
    assert queued.description["queue"] and queued.call_center


async def test_strangers_get_403_users_get_a_407_challenge_then_route_out() -> None:
    bindings = InMemoryBindings()
    calls = router(bindings)
    stranger = await calls.route(invite("+4930123456"), ("203.0.113.66", 5060))
    assert stranger == Rejection(403, "Forbidden")
    challenge = await calls.route(invite("+4930123456", "1001"), ("192.0.2.99", 5060))
    assert isinstance(challenge, Rejection) and challenge.status == 407
    name, value = challenge.headers[0]
    assert name == "Proxy-Authenticate"
    answer = authorization_for(value, method="INVITE", uri="sip:+4930123456@cti.local", username="1001",
                               password="secret1001")
    route = await calls.route(invite("+4930123456", "1001", ("Proxy-Authorization", answer)),
                              ("192.0.2.99", 5060))
    assert isinstance(route, CallRoute)
    assert route.direction is Direction.OUTBOUND and route.forking is Forking.FAILOVER
    assert route.caller.number == "1001" and route.caller_user == "1001"
    assert [(t.label, t.destination) for t in route.targets] == [
        ("carrier", ("udp", "192.0.2.10", 5060)), ("backup", ("tcp", "198.51.100.7", 5080))]
    assert str(route.targets[1].request_uri) == "sip:+4930123456@198.51.100.7:5080;transport=tcp"
    wrong = authorization_for(value, method="INVITE", uri="sip:x@cti.local", username="1001", password="bad")
    refused = await calls.route(invite("+4930123456", "1001", ("Proxy-Authorization", wrong)),
                                ("192.0.2.99", 5060))
    assert refused == Rejection(403, "Forbidden")


async def test_user_calls_another_user_internally(bindings: RegistrarBindings) -> None:
    await register(bindings, "1002", "sip:1002@192.0.2.50", ("192.0.2.50", 5060))
    calls = router(bindings)
    challenge = await calls.route(invite("1002", "1001"), ("192.0.2.99", 5060))
    assert isinstance(challenge, Rejection)
    answer = authorization_for(challenge.headers[0][1], method="INVITE", uri="sip:1002@cti.local",
                               username="1001", password="secret1001")
    route = await calls.route(invite("1002", "1001", ("Proxy-Authorization", answer)), ("192.0.2.99", 5060))
    assert isinstance(route, CallRoute) and route.direction is Direction.INTERNAL
    assert [t.label for t in route.targets] == ["1002"]


async def test_unreachable_bindings_store_counts_as_nobody_registered() -> None:
    store = RedisBindings.from_url("redis://127.0.0.1:1/0", "test:unreachable:")  # nothing listens on 1
    try:
        refused = await router(store).route(invite("+15550100"), ("192.0.2.3", 5060))
    finally:
        await store.stop()
    assert refused == Rejection(480, "Temporarily Unavailable")


def test_contact_destination_follows_nat() -> None:
    same = Binding(aor="a", key="k", contact="sip:u@127.0.0.1:5090", expires_at=1, call_id="c", cseq=1,
                   source=("127.0.0.1", 5060), transport="udp")
    assert contact_destination(same, parse_uri(same.contact)) == ("udp", "127.0.0.1", 5090)
    natted = Binding(aor="a", key="k", contact="sip:u@10.0.0.1:5060", expires_at=1, call_id="c", cseq=1,
                     source=("198.51.100.1", 61000), transport="udp")
    assert contact_destination(natted, parse_uri(natted.contact)) == ("udp", "198.51.100.1", 61000)
    tcp = Binding(aor="a", key="k", contact="sip:u@198.51.100.1:5060;transport=tcp", expires_at=1,
                  call_id="c", cseq=1, source=("198.51.100.1", 50123), transport="tcp")
    assert contact_destination(tcp, parse_uri(tcp.contact)) == ("tcp", "198.51.100.1", 50123)


def test_best_failure_for_the_caller() -> None:
    assert best_failure([]) == 480
    assert best_failure([486, 480, 603]) == 603
    assert best_failure([480, 486]) == 486
    assert best_failure([408, 404]) == 404
    assert best_failure([407]) == 403  # our credentials at the trunk failed: not the caller's business
    assert best_failure([408, 503]) == 480
    assert best_failure([503, 500]) == 503
    assert end_reason_for(486) is EndReason.BUSY
    assert end_reason_for(487) is EndReason.CANCELLED
    assert end_reason_for(502) is EndReason.FAILED
