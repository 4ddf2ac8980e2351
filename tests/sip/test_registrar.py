"""The registrar (RFC 3261 section 10.3) driven directly: REGISTER in, response out, on a fake clock."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from cti_server.api import create_app
from cti_server.api.registrations import BINDINGS_KEY
from cti_server.config import Config, SipConfig, SipUserConfig
from cti_server.events import Event, EventBus
from cti_server.sip.bindings import BindingsUnavailable, InMemoryBindings, RegistrarBindings
from cti_server.sip.digest import (
    DigestAuthenticator,
    compute_ha1,
    compute_response,
    parse_auth_params,
    users_from_config,
)
from cti_server.sip.message import SipRequest, SipResponse, make_request, new_branch
from cti_server.sip.redis_bindings import RedisBindings
from cti_server.sip.registrar import STORE_RETRY_AFTER, Registrar, RegistrarComponent, contact_key
from cti_server.sip.uri import parse_uri
from cti_server.store import Store
from cti_server.store.passwords import PasswordHashing
from cti_server.store.tenancy import User
from tests.api.conftest import Tenants, api_config, make_tenants
from tests.conftest import make_config
from tests.sip.conftest import RedisBindingsFactory
from tests.store.backends import sqlite_store, sqlite_template

__all__ = ["sqlite_store", "sqlite_template"]  # fixtures used here


async def api_client_with_bindings(
    aiohttp_client: Any, store: Store, bindings: RegistrarBindings | None
) -> tuple[TestClient, Tenants]:
    """The full app on ``store`` with the registrar's ``bindings``, and credentials of every role."""
    app = create_app(api_config(), store=store)
    if bindings is not None:
        app[BINDINGS_KEY] = bindings
    tenants = await make_tenants(store, PasswordHashing(api_config().auth))
    client: TestClient = await aiohttp_client(app)
    return client, tenants

REALM = "cti.local"
NOW = 1_700_000_000.0
SOURCE = ("203.0.113.9", 41000)


class Phone:
    """A UAC that registers like a desk phone: answers challenges and counts CSeq itself."""

    def __init__(self, user: str = "1001", password: str = "secret1001",
                 call_id: str = "reg-1@phone") -> None:
        self.user = user
        self.password = password
        self.call_id = call_id
        self.cseq = 0
        self.nc = 0
        self.challenge: dict[str, str] | None = None

    def request(self, contacts: list[str] | None = None, expires: int | None = None,
                extra: list[tuple[str, str]] | None = None, to_user: str | None = None,
                authorize: bool = True, cseq: int | None = None) -> SipRequest:
        self.cseq = cseq if cseq is not None else self.cseq + 1
        headers: list[tuple[str, str]] = []
        for contact in contacts if contacts is not None else [f"<sip:{self.user}@192.168.1.20:5060>"]:
            headers.append(("Contact", contact))
        if expires is not None:
            headers.append(("Expires", str(expires)))
        if authorize and self.challenge is not None:
            headers.append(("Authorization", self._authorization()))
        headers.append(("User-Agent", "TestPhone/1.0"))
        headers += extra or []
        to = f"<sip:{to_user or self.user}@{REALM}>"
        return make_request(
            "REGISTER", f"sip:{REALM}", from_=f"{to};tag=ft{self.cseq}", to=to, call_id=self.call_id,
            cseq=self.cseq, via=f"SIP/2.0/UDP 192.168.1.20:5060;branch={new_branch()};rport", headers=headers,
        )

    def learn(self, response: SipResponse) -> None:
        values = response.headers.get_all("WWW-Authenticate")
        assert values, "401 without WWW-Authenticate"
        self.challenge = parse_auth_params(values[0].partition(" ")[2])
        self.nc = 0

    def _authorization(self) -> str:
        assert self.challenge is not None
        self.nc += 1
        c = self.challenge
        algorithm = c["algorithm"]
        ha1 = compute_ha1(algorithm, self.user, c["realm"], self.password)
        nc = f"{self.nc:08x}"
        response = compute_response(algorithm, ha1, method="REGISTER", uri=f"sip:{REALM}", nonce=c["nonce"],
                                    qop="auth", nc=nc, cnonce="abc123")
        return (f'Digest username="{self.user}", realm="{c["realm"]}", nonce="{c["nonce"]}", '
                f'uri="sip:{REALM}", response="{response}", algorithm={algorithm}, qop=auth, nc={nc}, '
                f'cnonce="abc123", opaque="{c["opaque"]}"')


def sip_config(**overrides: Any) -> SipConfig:
    values: dict[str, Any] = {
        "realm": REALM, "min_expires": 60, "default_expires": 600, "max_expires": 3600,
        "max_contacts_per_user": 3,
        "users": (SipUserConfig("1001", password="secret1001"), SipUserConfig("1002", password="secret1002")),
    }
    values.update(overrides)
    return SipConfig(**values)


def make_registrar(bus: EventBus | None = None, bindings: RegistrarBindings | None = None,
                   **overrides: Any) -> Registrar:
    config = sip_config(**overrides)
    auth = DigestAuthenticator(REALM, users_from_config(config.users, REALM),
                               algorithms=config.digest_algorithms, nonce_lifetime=config.nonce_lifetime,
                               secret=b"test-secret" * 3)
    return Registrar(config, bindings if bindings is not None else InMemoryBindings(), auth, bus)


async def send(registrar: Registrar, request: SipRequest, now: float = NOW) -> SipResponse:
    return await registrar.handle_register(request, source=SOURCE, transport="udp", now=now)


async def register(registrar: Registrar, phone: Phone, now: float = NOW, **kwargs: Any) -> SipResponse:
    """REGISTER, answering one 401 challenge the way a phone does."""
    response = await send(registrar, phone.request(**kwargs), now)
    if response.status == 401:
        phone.learn(response)
        kwargs.pop("cseq", None)
        response = await send(registrar, phone.request(**kwargs), now)
    return response


def contact_expires(response: SipResponse) -> dict[str, int]:
    out = {}
    for value in response.headers.get_all("Contact"):
        uri, _, params = value.partition(">;")
        expires = next(p for p in params.split(";") if p.startswith("expires="))
        out[uri.lstrip("<")] = int(expires.split("=")[1])
    return out


# --- authentication -----------------------------------------------------------------------------


async def test_register_without_credentials_is_challenged_with_both_algorithms() -> None:
    response = await send(make_registrar(), Phone().request())
    assert response.status == 401
    values = response.headers.get_all("WWW-Authenticate")
    assert [parse_auth_params(v.partition(" ")[2])["algorithm"] for v in values] == ["SHA-256", "MD5"]
    assert response.to_tag is not None


async def test_register_with_credentials_binds_and_lists_contacts_with_date(
    bindings: RegistrarBindings,
) -> None:
    registrar = make_registrar(bindings=bindings)
    response = await register(registrar, Phone(), expires=300)
    assert response.status == 200
    assert contact_expires(response) == {"sip:1001@192.168.1.20:5060": 300}
    assert response.headers.get("Date", ) is not None and "GMT" in (response.headers.get("Date") or "")
    (binding,) = await registrar.bindings.lookup("sip:1001@cti.local")
    assert binding.source == SOURCE
    assert binding.transport == "udp"
    assert binding.user_agent == "TestPhone/1.0"
    assert binding.expires_at == NOW + 300


async def test_wrong_password_is_challenged_again() -> None:
    response = await register(make_registrar(), Phone(password="wrong"))
    assert response.status == 401


async def test_to_must_be_the_authenticated_user(bindings: RegistrarBindings) -> None:
    registrar = make_registrar(bindings=bindings)
    phone = Phone()
    phone.learn(await send(registrar, phone.request()))
    response = await send(registrar, phone.request(to_user="1002"))
    assert response.status == 403
    assert await registrar.bindings.all() == []


async def test_malformed_authorization_is_400() -> None:
    registrar = make_registrar()
    request = Phone().request(extra=[("Authorization", 'Digest username="1001, realm=')])
    response = await send(registrar, request)
    assert response.status == 400
    assert "unterminated" in response.reason


async def test_stale_nonce_gets_stale_challenge() -> None:
    registrar = make_registrar()
    phone = Phone()
    phone.learn(await send(registrar, phone.request()))
    response = await send(registrar, phone.request(), NOW + 10_000)
    assert response.status == 401
    challenge = response.headers.get_all("WWW-Authenticate")[0]
    assert parse_auth_params(challenge.partition(" ")[2])["stale"] == "true"


async def test_unsupported_require_is_420() -> None:
    response = await send(make_registrar(), Phone().request(extra=[("Require", "path, 100rel")]))
    assert response.status == 420
    assert response.headers.get("Unsupported") == "100rel"


async def test_path_is_stored_and_reflected_when_supported(bindings: RegistrarBindings) -> None:
    registrar = make_registrar(bindings=bindings)
    path = [("Path", "<sip:edge1.example;lr>"), ("Path", "<sip:edge2.example;lr>"),
            ("Supported", "path"), ("Require", "path")]
    phone = Phone()
    response = await register(registrar, phone, extra=path)
    assert response.status == 200
    assert response.headers.get_all("Path") == ["<sip:edge1.example;lr>", "<sip:edge2.example;lr>"]
    (binding,) = await registrar.bindings.lookup("sip:1001@cti.local")
    assert binding.path == ("<sip:edge1.example;lr>", "<sip:edge2.example;lr>")
    # Without Supported: path the binding keeps it but the 200 does not show it.
    quiet = await send(registrar, phone.request(extra=[("Path", "<sip:edge3.example;lr>")]))
    assert quiet.status == 200
    assert quiet.headers.get_all("Path") == []
    (binding,) = await registrar.bindings.lookup("sip:1001@cti.local")
    assert binding.path == ("<sip:edge3.example;lr>",)


async def test_outbound_flow_gets_require_outbound_and_edge_without_ob_gets_439(
    bindings: RegistrarBindings,
) -> None:
    registrar = make_registrar(bindings=bindings)
    flow = ';+sip.instance="<urn:uuid:00000000-0000-0000-0000-0000000000aa>";reg-id=1'
    phone = Phone()
    ok = await register(registrar, phone, contacts=["<sip:1001@10.0.0.1>" + flow],
                        extra=[("Supported", "path, outbound")])
    assert ok.status == 200
    assert ok.headers.get_all("Require") == ["outbound"]
    refused = await send(registrar, phone.request(contacts=["<sip:1001@10.0.0.1>" + flow],
                                                  extra=[("Path", "<sip:edge.example;lr>")]))
    assert refused.status == 439
    accepted = await send(registrar, phone.request(contacts=["<sip:1001@10.0.0.1>" + flow],
                                                   extra=[("Path", "<sip:edge.example;lr;ob>")]))
    assert accepted.status == 200
    plain = await send(registrar, Phone("1002", "secret1002", "c9").request())
    assert plain.headers.get_all("Require") == []


# --- expiry -------------------------------------------------------------------------------------


async def test_contact_expires_param_wins_over_header_and_default_applies(
    bindings: RegistrarBindings,
) -> None:
    registrar = make_registrar(bindings=bindings)
    phone = Phone()
    response = await register(registrar, phone, expires=900, contacts=[
        "<sip:1001@10.0.0.1:5060>;expires=120", "<sip:1001@10.0.0.2:5060>"])
    assert contact_expires(response) == {"sip:1001@10.0.0.1:5060": 120, "sip:1001@10.0.0.2:5060": 900}
    other = await register(registrar, Phone("1002", "secret1002", "c2"), contacts=["<sip:1002@10.0.0.3>"])
    assert contact_expires(other) == {"sip:1002@10.0.0.3": 600}


async def test_too_brief_is_423_with_min_expires_and_long_is_capped(bindings: RegistrarBindings) -> None:
    registrar = make_registrar(bindings=bindings)
    phone = Phone()
    response = await register(registrar, phone, expires=30)
    assert response.status == 423
    assert response.headers.get("Min-Expires") == "60"
    assert await registrar.bindings.all() == []
    response = await register(registrar, phone, expires=99_999)
    assert response.status == 200
    assert list(contact_expires(response).values()) == [3600]


async def test_bad_expires_values_are_400() -> None:
    registrar = make_registrar()
    phone = Phone()
    assert (await register(registrar, phone, contacts=["<sip:1001@h>;expires=soon"])).status == 400
    assert (await register(registrar, phone, contacts=["<sip:1001@h>;q=2"])).status == 400
    response = await register(registrar, phone, extra=[("Expires", "never")])
    assert response.status == 400


async def test_sweep_expires_bindings_and_publishes(bindings: RegistrarBindings) -> None:
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe("registration.*", seen.append)
    registrar = make_registrar(bus, bindings)
    await register(registrar, Phone(), expires=60)
    assert [e.topic for e in seen] == ["registration.added"]
    assert await registrar.sweep(NOW + 59) == []
    expired = await registrar.sweep(NOW + 61)
    assert [b.contact for b in expired] == ["sip:1001@192.168.1.20:5060"]
    assert seen[-1].topic == "registration.expired"
    assert seen[-1].data["aor"] == "sip:1001@cti.local"


@pytest.mark.redis
async def test_two_registrars_on_one_redis_announce_each_expiry_once(
    redis_bindings: RedisBindingsFactory,
) -> None:
    """Two server processes sweep the same Redis bindings at once: each expiry is announced by one."""
    import asyncio

    seen: list[Event] = []
    registrars = []
    for _ in range(2):
        bus = EventBus()
        bus.subscribe("registration.expired", seen.append)
        registrars.append(make_registrar(bus, await redis_bindings()))
    a, b = registrars
    await register(a, Phone(), expires=60)
    await register(b, Phone("1002", "secret1002", "c2"), expires=60)
    assert {x.aor for x in await a.bindings.all()} == {"sip:1001@cti.local", "sip:1002@cti.local"}
    await asyncio.gather(*(r.sweep(NOW + 61) for r in (a, b, a, b)))
    assert sorted(e.data["aor"] for e in seen) == ["sip:1001@cti.local", "sip:1002@cti.local"]
    assert await b.bindings.all() == []


async def test_unreachable_store_is_503_with_retry_after_for_phones_and_the_api(
    aiohttp_client: Any, sqlite_store: Store,
) -> None:
    store = RedisBindings.from_url("redis://127.0.0.1:1/0", "test:unreachable:")  # nothing listens on 1
    registrar = make_registrar(bindings=store)
    try:
        response = await register(registrar, Phone(), expires=300)
        assert (response.status, response.headers.get("Retry-After")) == (503, str(STORE_RETRY_AFTER))
        with pytest.raises(BindingsUnavailable):
            await registrar.sweep(NOW)
        client, tenants = await api_client_with_bindings(aiohttp_client, sqlite_store, store)
        listing = await client.get("/api/v1/sip/registrations", headers=tenants.headers("admin"))
        assert listing.status == 503
        assert "unreachable" in await listing.text()
    finally:
        await store.stop()


# --- several contacts, refresh, removal ----------------------------------------------------------


async def test_refresh_then_unregister_one_contact_publishes_events(bindings: RegistrarBindings) -> None:
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe("registration.*", seen.append)
    registrar = make_registrar(bus, bindings)
    phone = Phone()
    await register(registrar, phone, contacts=["<sip:1001@10.0.0.1>", "<sip:1001@10.0.0.2>"], expires=300)
    response = await send(registrar, phone.request(contacts=["<sip:1001@10.0.0.1>"], expires=300), NOW + 100)
    assert response.status == 200
    assert contact_expires(response) == {"sip:1001@10.0.0.1": 300, "sip:1001@10.0.0.2": 200}
    response = await send(registrar, phone.request(contacts=["<sip:1001@10.0.0.2>"], expires=0), NOW + 101)
    assert contact_expires(response) == {"sip:1001@10.0.0.1": 299}
    assert [e.topic for e in seen] == ["registration.added", "registration.added", "registration.refreshed",
                                       "registration.removed"]
    assert seen[-1].data["contact"] == "sip:1001@10.0.0.2"


async def test_query_without_contact_lists_bindings_without_change(bindings: RegistrarBindings) -> None:
    registrar = make_registrar(bindings=bindings)
    phone = Phone()
    await register(registrar, phone, expires=300)
    response = await send(registrar, phone.request(contacts=[]), NOW + 10)
    assert response.status == 200
    assert contact_expires(response) == {"sip:1001@192.168.1.20:5060": 290}


async def test_star_unregisters_everything_only_with_expires_zero(bindings: RegistrarBindings) -> None:
    registrar = make_registrar(bindings=bindings)
    phone = Phone()
    await register(registrar, phone, contacts=["<sip:1001@10.0.0.1>", "<sip:1001@10.0.0.2>"])
    bad = await send(registrar, phone.request(contacts=["*"], expires=60))
    assert bad.status == 400
    bad = await send(registrar, phone.request(contacts=["*"]))
    assert bad.status == 400
    ok = await send(registrar, phone.request(contacts=["*"], expires=0))
    assert ok.status == 200
    assert ok.headers.get_all("Contact") == []
    assert await registrar.bindings.all() == []


async def test_contact_cap_is_503_and_leaves_bindings_unchanged(bindings: RegistrarBindings) -> None:
    registrar = make_registrar(bindings=bindings)
    phone = Phone()
    await register(registrar, phone, contacts=[f"<sip:1001@10.0.0.{i}>" for i in range(3)])
    response = await send(registrar, phone.request(contacts=["<sip:1001@10.0.0.9>"]))
    assert response.status == 503
    assert len(await registrar.bindings.all()) == 3
    # Replacing one within the cap is fine.
    response = await send(registrar, phone.request(contacts=["<sip:1001@10.0.0.0>;expires=0",
                                                             "<sip:1001@10.0.0.9>"]))
    assert response.status == 200
    assert len(contact_expires(response)) == 3


async def test_same_call_id_with_old_cseq_is_refused_and_new_call_id_replaces(
    bindings: RegistrarBindings,
) -> None:
    registrar = make_registrar(bindings=bindings)
    phone = Phone()
    await register(registrar, phone, expires=300)  # CSeq 2 stored
    old = await send(registrar, phone.request(expires=300, cseq=2))
    assert old.status == 500
    other_device = Phone(call_id="reboot@phone")
    other_device.challenge, other_device.nc = phone.challenge, phone.nc
    response = await send(registrar, other_device.request(expires=300, cseq=1))
    assert response.status == 200
    (binding,) = await registrar.bindings.lookup("sip:1001@cti.local")
    assert binding.call_id == "reboot@phone"


def test_contact_key_follows_uri_comparison_and_outbound_instance() -> None:
    a = contact_key(parse_uri("sip:1001@HOST.example"), {})[0]
    b = contact_key(parse_uri("sip:1001@host.example:5060"), {"expires": "60"})[0]
    c = contact_key(parse_uri("sip:1001@host.example;transport=tcp"), {})[0]
    assert a == b
    assert a != c
    key, instance, reg_id = contact_key(parse_uri("sip:1001@10.0.0.1"),
                                        {"+sip.instance": '"<urn:uuid:1>"', "reg-id": "1"})
    assert (key, instance, reg_id) == ('"<urn:uuid:1>"|1', '"<urn:uuid:1>"', 1)


async def test_outbound_instance_rebinds_a_moved_phone(bindings: RegistrarBindings) -> None:
    registrar = make_registrar(bindings=bindings)
    phone = Phone()
    outbound = ';+sip.instance="<urn:uuid:00000000-0000-0000-0000-000000000001>";reg-id=1'
    await register(registrar, phone, contacts=["<sip:1001@10.0.0.1>" + outbound])
    response = await send(registrar, phone.request(contacts=["<sip:1001@10.0.0.77>" + outbound]))
    assert response.status == 200
    assert list(contact_expires(response)) == ["sip:1001@10.0.0.77"]
    assert "reg-id=1" in response.headers.get_all("Contact")[0]


# --- wiring: component handler and the API route ------------------------------------------------


class FakeIncoming:
    """The IncomingRequest surface the stack hands to handlers (see notes/contracts.md)."""

    def __init__(self, request: SipRequest) -> None:
        self.request = request
        self.source = SOURCE
        self.transport = "tcp"
        self.responses: list[SipResponse] = []

    def respond(self, response: SipResponse) -> None:
        self.responses.append(response)


async def test_component_handler_responds_and_route_lists_bindings(
    aiohttp_client: Any, sqlite_store: Store
) -> None:
    config: Config = make_config()
    registrar = Registrar.from_config(config.sip)
    component = RegistrarComponent(registrar)  # wall clock, as in the server
    phone = Phone()
    incoming = FakeIncoming(phone.request())
    await component.on_register(incoming)
    phone.learn(incoming.responses[0])
    incoming = FakeIncoming(phone.request(expires=120))
    await component.on_register(incoming)
    assert incoming.responses[0].status == 200

    client, tenants = await api_client_with_bindings(aiohttp_client, sqlite_store, registrar.bindings)
    admin = tenants.headers("admin")
    body = await (await client.get("/api/v1/sip/registrations", headers=admin)).json()
    assert body["count"] == 1
    assert body["registrations"][0]["transport"] == "tcp"


async def test_route_lists_current_bindings_by_user(
    bindings: RegistrarBindings, aiohttp_client: Any, sqlite_store: Store,
) -> None:
    import time

    registrar = make_registrar(bindings=bindings)
    now = time.time()
    await register(registrar, Phone(), now=now, expires=300)
    await register(registrar, Phone("1002", "secret1002", "c2"), now=now, expires=300)
    client, tenants = await api_client_with_bindings(aiohttp_client, sqlite_store, registrar.bindings)
    admin = tenants.headers("admin")
    body = await (await client.get("/api/v1/sip/registrations", headers=admin)).json()
    assert body["count"] == 2
    query = {"aor": "sip:1001@cti.local"}
    by_aor = await (await client.get("/api/v1/sip/registrations", params=query, headers=admin)).json()
    assert [b["aor"] for b in by_aor["registrations"]] == ["sip:1001@cti.local"]
    by_user = {"user": "1002"}
    body = await (await client.get("/api/v1/sip/registrations", params=by_user, headers=admin)).json()
    (item,) = body["registrations"]
    assert item["aor"] == "sip:1002@cti.local"
    assert item["source"] == list(SOURCE)
    assert 0 < item["expires_in"] <= 300


async def test_route_without_registrar_is_503(aiohttp_client: Any, sqlite_store: Store) -> None:
    client, tenants = await api_client_with_bindings(aiohttp_client, sqlite_store, None)
    assert (await client.get("/api/v1/sip/registrations", headers=tenants.headers("admin"))).status == 503


async def test_supervisor_sees_only_own_call_centers_phones(aiohttp_client: Any, sqlite_store: Store) -> None:
    import time

    registrar = make_registrar()
    now = time.time()
    await register(registrar, Phone(), now=now, expires=300)
    await register(registrar, Phone("1002", "secret1002", "c2"), now=now, expires=300)
    client, tenants = await api_client_with_bindings(aiohttp_client, sqlite_store, registrar.bindings)
    async with sqlite_store.session() as db:  # Alpha's agent owns desk phone 1001, Beta's owns 1002
        (await db.get_one(User, tenants.alpha.user_ids["agent"])).sip_username = "1001"
        (await db.get_one(User, tenants.beta.user_ids["agent"])).sip_username = "1002"
        await db.commit()
    url = "/api/v1/sip/registrations"
    assert (await client.get(url)).status == 401
    assert (await client.get(url, headers=tenants.headers("agent"))).status == 403
    alpha = await (await client.get(url, headers=tenants.headers("supervisor", "alpha"))).json()
    beta = await (await client.get(url, headers=tenants.headers("supervisor", "beta"))).json()
    assert [b["aor"] for b in alpha["registrations"]] == ["sip:1001@cti.local"]
    assert [b["aor"] for b in beta["registrations"]] == ["sip:1002@cti.local"]


@pytest.mark.parametrize("algorithms", [("MD5",), ("SHA-256",)])
async def test_single_algorithm_configs(algorithms: tuple[str, ...]) -> None:
    registrar = make_registrar(digest_algorithms=algorithms)
    phone = Phone()
    first = await send(registrar, phone.request())
    assert len(first.headers.get_all("WWW-Authenticate")) == 1
    phone.learn(first)
    assert (await send(registrar, phone.request())).status == 200


async def test_component_sweeps_expired_bindings_in_the_background(bindings: RegistrarBindings) -> None:
    import asyncio

    bus = EventBus()
    expired = asyncio.Event()
    bus.subscribe("registration.expired", lambda _event: expired.set())
    registrar = make_registrar(bus, bindings)
    clock = [NOW]
    component = RegistrarComponent(registrar, sweep_interval=0.01, clock=lambda: clock[0])
    await register(registrar, Phone(), expires=60)
    await component.start()
    try:
        clock[0] = NOW + 61
        await asyncio.wait_for(expired.wait(), 5)
    finally:
        await component.stop()
    assert await registrar.bindings.all() == []
