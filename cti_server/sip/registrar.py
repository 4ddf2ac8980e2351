"""The registrar (RFC 3261 section 10.3) with digest authentication (RFC 8760).

``Registrar.handle_register`` turns one REGISTER into its final response; the caller passes where it
came from and ``now`` (no sockets, no clock inside, so unit tests drive it directly). The steps follow
RFC 3261 section 10.3:

2. ``Require`` with an extension we do not support -> 420 with ``Unsupported``.
3. credentials checked (missing or wrong -> 401 with one challenge per algorithm, stale nonce ->
   ``stale=true``, malformed -> 400); 4. the To user must be the authenticated user (403).
5. the AOR is ``sip:<user>@<realm>``: this registrar is authoritative for one domain, so the host part
   of the To URI (often the server's IP address on phones) does not split one user into several AORs.
6. ``Contact: *`` only alone and with ``Expires: 0`` (else 400); expiry per contact from its
   ``expires`` param, else the Expires header, else ``sip.default_expires``; below ``sip.min_expires``
   -> 423 with Min-Expires; above ``sip.max_expires`` -> capped.
7. per contact: an existing binding with the same Call-ID and a CSeq not higher -> 500 (out of
   order), else it is added, refreshed or removed; more than ``sip.max_contacts_per_user`` -> 503.
8. 200 listing every current contact with its ``expires`` and a ``Date`` header.

Path (RFC 3327) is stored with each binding and reflected when the phone supports it; a Contact with
``+sip.instance`` and ``reg-id`` (RFC 5626 outbound) is bound per flow and answered with
``Require: outbound`` (439 when the first Path hop lacks ``;ob``). Accounts are ``sip.users`` and,
through ``credentials``, the store's SIP users. ``RegistrarComponent`` attaches the registrar to the
SIP stack and sweeps expired bindings (``registration.expired`` on the bus).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from cti_server.config import SipConfig
from cti_server.events import Event, EventBus
from cti_server.sip.address import NameAddr, parse_name_addr
from cti_server.sip.bindings import Binding, BindingsUnavailable, InMemoryBindings, RegistrarBindings
from cti_server.sip.digest import (
    AuthOutcome,
    DigestAuthenticator,
    DigestUser,
    UserLookup,
    users_from_config,
)
from cti_server.sip.errors import SipParseError
from cti_server.sip.message import SipRequest, SipResponse, make_response, new_tag
from cti_server.sip.uri import SipUri

log = structlog.get_logger(__name__)

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset({"path", "outbound"})
"""Option tags a REGISTER may ``Require`` of us (RFC 3261 section 10.3 step 2): Path (RFC 3327) and
outbound (RFC 5626), the ones the stack's OPTIONS answer lists as Supported."""

_DEFAULT_PORTS = {"sip": 5060, "sips": 5061}
STORE_RETRY_AFTER = 5
"""Seconds a phone is asked to wait (Retry-After of the 503) while the bindings store is unreachable."""


class RegisterRejected(Exception):
    """A REGISTER that fails with ``status``; ``headers`` go into the response (Min-Expires...)."""

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.headers = headers or []


@dataclass(frozen=True)
class ContactRequest:
    """One Contact of a REGISTER, with the expiry it asks for already resolved (step 6)."""

    uri: SipUri
    key: str
    expires: int
    q: float | None
    instance_id: str | None
    reg_id: int | None


@functools.lru_cache(maxsize=4)
def _http_date_of_second(second: int) -> str:
    return email.utils.formatdate(second, usegmt=True)


def http_date(now: float) -> str:
    """The ``Date`` header value (RFC 3261 section 20.17, RFC 1123 format), formatted once a second."""
    return _http_date_of_second(int(now))


HA1Lookup = Callable[[str], Awaitable[tuple[str, str] | None]]
"""``await lookup(username)`` -> ``(ha1_md5, ha1_sha256)`` (either may be "") or None: the shape of
``cti_server.store.credentials.sip_credentials_lookup``."""


def _user_lookup(credentials: HA1Lookup) -> UserLookup:
    async def lookup(username: str) -> DigestUser | None:
        pair = await credentials(username)
        if pair is None:
            return None
        ha1 = {name: value.lower() for name, value in zip(("MD5", "SHA-256"), pair, strict=True) if value}
        return DigestUser(username, ha1)

    return lookup


def _has_option(request: SipRequest, header: str, tag: str) -> bool:
    return any(value.strip().lower() == tag for value in request.headers.get_all(header))


def aor_for(username: str, realm: str) -> str:
    """The address-of-record of a local user: ``sip:<username>@<realm>``."""
    return f"sip:{username}@{realm}"


def contact_key(uri: SipUri, params: dict[str, str | None]) -> tuple[str, str | None, int | None]:
    """How bindings of one AOR are told apart: ``+sip.instance`` with ``reg-id`` (RFC 5626 section 6),
    else the contact URI compared as RFC 3261 section 19.1.4 says (case-insensitive scheme and host,
    default port, transport/maddr/user params). Returns (key, instance_id, reg_id)."""
    instance = params.get("+sip.instance")
    reg_id_text = params.get("reg-id")
    reg_id: int | None = None
    if reg_id_text is not None:
        if not reg_id_text.isdigit():
            raise RegisterRejected(400, "Bad reg-id Contact Parameter")
        reg_id = int(reg_id_text)
    if instance is not None and reg_id is not None:
        return f"{instance}|{reg_id}", instance, reg_id
    scheme = uri.scheme.lower()
    port = uri.port or _DEFAULT_PORTS.get(scheme, 0)
    user = f"{uri.user}@" if uri.user is not None else ""
    parts = [f"{scheme}:{user}{uri.host.lower()}:{port}"]
    for name in ("transport", "maddr", "user"):
        value = uri.params.get(name)
        if value is not None:
            parts.append(f"{name}={value.lower()}")
    return ";".join(parts), instance, reg_id


class Registrar:
    """REGISTER processing for one realm over a ``RegistrarBindings`` store (RFC 3261 section 10.3)."""

    def __init__(
        self,
        config: SipConfig,
        bindings: RegistrarBindings,
        authenticator: DigestAuthenticator,
        bus: EventBus | None = None,
    ) -> None:
        self.config = config
        self.bindings = bindings
        self.authenticator = authenticator
        self.bus = bus

    @classmethod
    def from_config(
        cls,
        config: SipConfig,
        bus: EventBus | None = None,
        bindings: RegistrarBindings | None = None,
        credentials: HA1Lookup | None = None,
    ) -> Registrar:
        """A registrar for ``config.realm`` and ``config.users`` (in-memory bindings unless given);
        ``credentials`` finds the HA1 pair of accounts kept elsewhere (the store's SIP users)."""
        authenticator = DigestAuthenticator(
            config.realm,
            users_from_config(config.users, config.realm),
            algorithms=config.digest_algorithms,
            nonce_lifetime=config.nonce_lifetime,
            lookup=_user_lookup(credentials) if credentials is not None else None,
        )
        return cls(config, bindings if bindings is not None else InMemoryBindings(), authenticator, bus)

    async def handle_register(
        self, request: SipRequest, *, source: tuple[str, int], transport: str, now: float
    ) -> SipResponse:
        """The final response to ``request`` (a REGISTER), after updating the bindings."""
        call_id = request.call_id
        try:
            return await self._register(request, source, transport, now)
        except RegisterRejected as exc:
            log.info("register_rejected", call_id=call_id, status=exc.status, reason=exc.reason,
                     source=f"{source[0]}:{source[1]}")
            return self._reply(request, exc.status, exc.reason, exc.headers)
        except SipParseError as exc:
            log.info("register_bad_request", call_id=call_id, reason=exc.reason)
            return self._reply(request, 400, exc.reason)
        except BindingsUnavailable as exc:
            log.warning("register_store_unavailable", call_id=call_id, reason=str(exc))
            return self._reply(request, 503, "Service Unavailable", [("Retry-After", str(STORE_RETRY_AFTER))])

    async def _register(
        self, request: SipRequest, source: tuple[str, int], transport: str, now: float
    ) -> SipResponse:
        self._check_require(request)
        credentials = request.headers.get_all("Authorization")
        result = await self.authenticator.authenticate("REGISTER", credentials, now)
        if result.outcome is AuthOutcome.MALFORMED:
            raise RegisterRejected(400, f"Bad Authorization: {result.reason}")
        if not result.ok:
            # The first REGISTER of every phone comes without credentials: only failures are news.
            if result.outcome is not AuthOutcome.MISSING:
                log.info("register_challenge", call_id=request.call_id, outcome=result.outcome.value,
                         user=result.username, reason=result.reason)
            stale = result.outcome is AuthOutcome.STALE
            challenges = [("WWW-Authenticate", v) for v in self.authenticator.challenges(now, stale=stale)]
            return self._reply(request, 401, "Unauthorized", challenges)
        username = result.username or ""
        to_uri = request.to_addr.uri
        if to_uri.user != username:
            raise RegisterRejected(403, "To Does Not Match Authenticated User")
        aor = aor_for(username, self.config.realm)
        path = tuple(request.headers.get_all("Path"))
        outbound = self._check_outbound(request, path)
        # One REGISTER per AOR at a time among every process sharing the bindings: the read-check-write
        # of step 7 must not interleave, or a stale REGISTER could overwrite a newer one.
        async with self.bindings.locked(aor) as bound:
            current = await self._apply(request, aor, bound, source, transport, now, path)
        log.info("register_accepted", call_id=request.call_id, aor=aor, algorithm=result.algorithm,
                 qop=result.qop, bound=[b.contact for b in current], source=f"{source[0]}:{source[1]}",
                 transport=transport)
        response = self._reply(request, 200, "OK")
        for binding in current:
            response.headers.add("Contact", self._contact_value(binding, now))
        response.headers.add("Date", http_date(now))
        if path and _has_option(request, "Supported", "path"):
            for value in path:  # RFC 3327 section 5.3: reflect the Path the binding stored
                response.headers.add("Path", value)
        if outbound:
            response.headers.add("Require", "outbound")  # RFC 5626 section 6: flow-based binding used
        return response

    @staticmethod
    def _check_outbound(request: SipRequest, path: tuple[str, ...]) -> bool:
        """True when a Contact asks for an RFC 5626 flow (``+sip.instance`` with ``reg-id``); 439 when
        the edge proxy in front of us (first Path) does not do outbound (RFC 5626 section 6)."""
        contacts = request.contacts
        if contacts == "*":
            return False
        wants_flow = any("reg-id" in c.params and "+sip.instance" in c.params for c in contacts)
        if wants_flow and path and "ob" not in parse_name_addr(path[0], "Path").uri.params:
            raise RegisterRejected(439, "First Hop Lacks Outbound Support")
        return wants_flow

    def _check_require(self, request: SipRequest) -> None:
        required = request.headers.get_all("Require")
        unsupported = [tag for tag in required if tag.strip().lower() not in SUPPORTED_EXTENSIONS]
        if unsupported:
            raise RegisterRejected(420, "Bad Extension", [("Unsupported", ", ".join(unsupported))])

    async def _apply(
        self,
        request: SipRequest,
        aor: str,
        bound: list[Binding],
        source: tuple[str, int],
        transport: str,
        now: float,
        path: tuple[str, ...] = (),
    ) -> list[Binding]:
        contacts = request.contacts
        header_expires = request.expires
        cseq = request.cseq.number
        call_id = request.call_id
        if contacts == "*":
            if header_expires != 0 or len(request.headers.get_all("Contact")) != 1:
                raise RegisterRejected(400, "Contact * Needs Expires 0 And No Other Contact")
            for binding in bound:
                if binding.call_id == call_id and cseq <= binding.cseq:
                    raise RegisterRejected(500, "Out Of Order CSeq")
            for binding in await self.bindings.remove_all(aor):
                self._publish("registration.removed", binding, now)
            return []
        wanted = [self._contact_request(c, header_expires) for c in contacts]
        existing = {b.key: b for b in bound}
        for contact in wanted:
            old = existing.get(contact.key)
            if old is not None and old.call_id == call_id and cseq <= old.cseq:
                raise RegisterRejected(500, "Out Of Order CSeq")
        remaining = {k for k, b in existing.items() if b.expires_at > now}
        for contact in wanted:
            if contact.expires == 0:
                remaining.discard(contact.key)
            else:
                remaining.add(contact.key)
        if len(remaining) > self.config.max_contacts_per_user:
            raise RegisterRejected(503, "Too Many Registered Contacts")
        user_agent = request.headers.get("User-Agent")
        for contact in wanted:
            if contact.expires == 0:
                removed = await self.bindings.remove(aor, contact.key)
                existing.pop(contact.key, None)
                if removed is not None:
                    self._publish("registration.removed", removed, now)
                continue
            binding = Binding(
                aor=aor,
                key=contact.key,
                contact=str(contact.uri),
                expires_at=now + contact.expires,
                call_id=call_id,
                cseq=cseq,
                source=source,
                transport=transport,
                q=contact.q,
                instance_id=contact.instance_id,
                reg_id=contact.reg_id,
                user_agent=user_agent,
                registered_at=now,
                path=path,
            )
            previous = await self.bindings.add(binding)
            existing[contact.key] = binding
            fresh = previous is None or previous.expires_at <= now
            self._publish("registration.added" if fresh else "registration.refreshed", binding, now)
        # What the store now holds for this AOR, without reading it again (one round trip less on Redis):
        # the bindings read when the lock was taken plus these changes (REGISTERs of one AOR are serialised).
        return [b for b in existing.values() if b.expires_at > now]

    def _contact_request(self, contact: NameAddr, header_expires: int | None) -> ContactRequest:
        param = contact.params.get("expires")
        if param is not None:
            if not param.strip().isdigit():
                raise RegisterRejected(400, "Bad Contact expires Parameter")
            expires = int(param)
        elif header_expires is not None:
            expires = header_expires
        else:
            expires = self.config.default_expires
        if expires < 0:
            raise RegisterRejected(400, "Bad Expires")
        if 0 < expires < self.config.min_expires:
            raise RegisterRejected(423, "Interval Too Brief", [("Min-Expires", str(self.config.min_expires))])
        expires = min(expires, self.config.max_expires)
        q: float | None = None
        q_text = contact.params.get("q")
        if q_text is not None:
            try:
                q = float(q_text)
            except ValueError:
                q = -1.0
            if not 0.0 <= q <= 1.0:
                raise RegisterRejected(400, "Bad Contact q Parameter")
        key, instance_id, reg_id = contact_key(contact.uri, contact.params)
        return ContactRequest(contact.uri, key, expires, q, instance_id, reg_id)

    @staticmethod
    def _contact_value(binding: Binding, now: float) -> str:
        value = f"<{binding.contact}>;expires={binding.expires_in(now)}"
        if binding.q is not None:
            value += f";q={binding.q:g}"
        if binding.instance_id is not None:
            value += f";+sip.instance={binding.instance_id}"
        if binding.reg_id is not None:
            value += f";reg-id={binding.reg_id}"
        return value

    def _reply(
        self, request: SipRequest, status: int, reason: str, headers: list[tuple[str, str]] | None = None
    ) -> SipResponse:
        response = make_response(request, status, reason, to_tag=new_tag())
        response.headers.add("Server", self.config.user_agent)
        for name, value in headers or []:
            response.headers.add(name, value)
        return response

    def _publish(self, topic: str, binding: Binding, now: float) -> None:
        if self.bus is None:
            return
        self.bus.publish(
            Event(
                topic,
                {
                    "aor": binding.aor,
                    "contact": binding.contact,
                    "expires_in": binding.expires_in(now) if topic != "registration.removed" else 0,
                    "source": f"{binding.source[0]}:{binding.source[1]}",
                    "transport": binding.transport,
                    "user_agent": binding.user_agent,
                },
            )
        )

    async def sweep(self, now: float) -> list[Binding]:
        """Remove bindings whose time is up and publish ``registration.expired`` for each."""
        expired = await self.bindings.expire(now)
        for binding in expired:
            log.info("registration_expired", aor=binding.aor, contact=binding.contact)
            self._publish("registration.expired", binding, now)
        return expired


class IncomingRequestLike(Protocol):
    """The parts of the stack's ``IncomingRequest`` the registrar uses (see notes/contracts.md)."""

    @property
    def request(self) -> SipRequest: ...

    @property
    def source(self) -> tuple[str, int]: ...

    @property
    def transport(self) -> str: ...

    def respond(self, response: SipResponse) -> None: ...


class HandlerRegistry(Protocol):
    """The part of ``SipComponent`` that routes requests of one method to a handler."""

    def register_handler(self, method: str, handler: Callable[[Any], Awaitable[None] | None]) -> None: ...


class RegistrarComponent:
    """Serves REGISTER on the SIP stack and sweeps expired bindings every ``sweep_interval`` seconds."""

    @classmethod
    def attach(
        cls, sip: HandlerRegistry, config: SipConfig, bus: EventBus | None = None,
        bindings: RegistrarBindings | None = None, credentials: HA1Lookup | None = None,
    ) -> RegistrarComponent:
        """A registrar for ``config`` whose handler serves REGISTER on ``sip``; start it after ``sip``."""
        component = cls(Registrar.from_config(config, bus, bindings, credentials))
        sip.register_handler("REGISTER", component.on_register)
        return component

    def __init__(
        self,
        registrar: Registrar,
        sweep_interval: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registrar = registrar
        self.sweep_interval = sweep_interval
        self.clock = clock
        self._sweeper: asyncio.Task[None] | None = None

    async def on_register(self, incoming: IncomingRequestLike) -> None:
        """Handler for ``SipComponent.register_handler("REGISTER", ...)``."""
        response = await self.registrar.handle_register(
            incoming.request, source=incoming.source, transport=incoming.transport, now=self.clock()
        )
        incoming.respond(response)

    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="registrar-sweep")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                await self.registrar.sweep(self.clock())
            except Exception:
                log.exception("registrar_sweep_failed")

