"""Where a new INVITE goes: who may call (trunk allow-list or digest auth), and the B-leg targets.

- From a trunk's allowed address: the called number must be a DID (else 404); its users' registered
  contacts are rung in parallel (none registered: 480).
- Otherwise the caller must be one of our users with digest credentials (RFC 3261 section 22.3, 407
  challenge); anyone else gets 403, so nobody makes toll calls through us without credentials. An
  authenticated user reaches another user, a DID, or any other number out through the trunks in
  failover order (RFC 3263-style: the next trunk on 503 or timeout).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import structlog

from cti_server.calls.caller_id import CallerId, caller_id_of
from cti_server.calls.did_plan import DidPlan
from cti_server.calls.model import Direction
from cti_server.calls.trunks import TrunkDirectory, trunk_destination
from cti_server.config import Config, TrunkConfig
from cti_server.sip.bindings import Binding, BindingsUnavailable, RegistrarBindings
from cti_server.sip.digest import AuthOutcome, DigestAuthenticator
from cti_server.sip.errors import SipParseError
from cti_server.sip.message import SipRequest
from cti_server.sip.registrar import aor_for
from cti_server.sip.uri import SipUri, parse_uri

log = structlog.get_logger(__name__)


class Forking(StrEnum):
    """Parallel: ring every target at once, first 2xx wins. Failover: one after the other."""

    PARALLEL = "parallel"
    FAILOVER = "failover"
    QUEUE = "queue"
    """Answered by us and put in a routing queue; ``queue_calls`` rings the agent the engine offers it to."""


@dataclass(frozen=True)
class Target:
    """One B-leg to try: where to send, the Request-URI and To, and a label (user or trunk name)."""

    destination: tuple[str, str, int]
    request_uri: SipUri
    to: str
    label: str
    trunk: TrunkConfig | None = None


@dataclass(frozen=True)
class CallRoute:
    """The decision for a new call: its direction, call center, caller, targets and how to try them."""

    direction: Direction
    caller: CallerId
    called_number: str
    call_center: str | None
    targets: list[Target]
    forking: Forking
    description: dict[str, object] = field(default_factory=dict)
    caller_user: str | None = None


@dataclass(frozen=True)
class Rejection:
    """No route: the final response to send (and headers such as Proxy-Authenticate)."""

    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)


class CallRouter:
    """Decides ``CallRoute`` or ``Rejection`` for a new INVITE (sans-IO except the bindings lookup)."""

    def __init__(
        self,
        config: Config,
        bindings: RegistrarBindings,
        authenticator: DigestAuthenticator,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.bindings = bindings
        self.authenticator = authenticator
        self.clock = clock
        self.trunks = TrunkDirectory(config.calls.trunks)
        self.dids = DidPlan(config.calls.dids)
        self.users = {u.username for u in config.sip.users}

    async def route(self, request: SipRequest, source: tuple[str, int]) -> CallRoute | Rejection:
        """Route a new INVITE that arrived from ``source``."""
        called = called_number_of(request)
        trunk = self.trunks.trunk_for_source(source[0])
        if trunk is not None:
            return await self._from_trunk(request, trunk, called)
        auth = self._authenticate(request)
        if isinstance(auth, Rejection):
            return auth
        return await self._from_user(request, auth, called)

    async def _from_trunk(
        self, request: SipRequest, trunk: TrunkConfig, called: str
    ) -> CallRoute | Rejection:
        did = self.dids.lookup(called)
        if did is None:
            log.info("call_no_did", call_id=request.call_id, called=called, trunk=trunk.name)
            return Rejection(404, "Not Found")
        if did.queue:
            return CallRoute(Direction.INBOUND, caller_id_of(request), called, did.call_center, [],
                             Forking.QUEUE, {"trunk": trunk.name, "did": did.number, "queue": did.queue})
        targets = await self.user_targets(did.users)
        if not targets:
            return Rejection(480, "Temporarily Unavailable")
        return CallRoute(Direction.INBOUND, caller_id_of(request), called, did.call_center, targets,
                         Forking.PARALLEL, {"trunk": trunk.name, "did": did.number, "users": list(did.users)})

    async def _from_user(self, request: SipRequest, user: str, called: str) -> CallRoute | Rejection:
        caller = CallerId(user, request.from_addr.display_name or None, "from")
        if called in self.users:
            targets = await self.user_targets([called])
            if not targets:
                return Rejection(480, "Temporarily Unavailable")
            return CallRoute(Direction.INTERNAL, caller, called, None, targets, Forking.PARALLEL,
                             {"users": [called]}, caller_user=user)
        did = self.dids.lookup(called)
        if did is not None and did.users:
            targets = await self.user_targets(did.users)
            if not targets:
                return Rejection(480, "Temporarily Unavailable")
            return CallRoute(Direction.INTERNAL, caller, called, did.call_center, targets, Forking.PARALLEL,
                             {"did": did.number, "users": list(did.users)}, caller_user=user)
        targets = self.trunk_targets(called)
        if not targets:
            return Rejection(404, "Not Found")
        return CallRoute(Direction.OUTBOUND, caller, called, None, targets, Forking.FAILOVER,
                         {"trunks": [t.label for t in targets]}, caller_user=user)

    def _authenticate(self, request: SipRequest) -> str | Rejection:
        """The authenticated username, or the 407 challenge / 403 / 400 to answer (RFC 3261 22.3)."""
        now = self.clock()
        result = self.authenticator.verify("INVITE", request.headers.get_all("Proxy-Authorization"), now)
        if result.ok and result.username is not None:
            return result.username
        if result.outcome is AuthOutcome.MALFORMED:
            return Rejection(400, f"Bad Proxy-Authorization: {result.reason}")
        if result.outcome is AuthOutcome.FAILED:
            log.info("call_auth_failed", call_id=request.call_id, user=result.username, reason=result.reason)
            return Rejection(403, "Forbidden")
        claimed = request.from_addr.uri.user
        if claimed not in self.users:
            log.info("call_forbidden", call_id=request.call_id, from_user=claimed)
            return Rejection(403, "Forbidden")
        stale = result.outcome is AuthOutcome.STALE
        challenges = [("Proxy-Authenticate", c) for c in self.authenticator.challenges(now, stale=stale)]
        return Rejection(407, "Proxy Authentication Required", challenges)

    async def user_targets(self, users: list[str] | tuple[str, ...]) -> list[Target]:
        """The registered contacts of ``users`` (RFC 3261 section 10.3 bindings), reached where they
        registered from. A store that cannot be reached (Redis down) counts as no phone registered: the
        call gets 480, a queued call goes to the next agent."""
        now = self.clock()
        realm = self.config.sip.realm
        targets: list[Target] = []
        for user in users:
            aor = aor_for(user, realm)
            try:
                bindings = await self.bindings.lookup(aor)
            except BindingsUnavailable as exc:
                log.warning("bindings_unavailable", aor=aor, reason=str(exc))
                continue
            for binding in bindings:
                if binding.expires_at <= now:
                    continue
                try:
                    uri = parse_uri(binding.contact)
                except SipParseError:
                    continue
                targets.append(Target(contact_destination(binding, uri), uri, f"<{aor}>", user))
        return targets

    def trunk_targets(self, number: str) -> list[Target]:
        """The dialled ``number`` at every outbound trunk, in failover order."""
        targets = []
        for trunk in self.trunks.outbound_order():
            uri = parse_uri(f"sip:{number}@{trunk.host}:{trunk.port}")
            if trunk.transport != "udp":
                uri.params["transport"] = trunk.transport
            targets.append(Target(trunk_destination(trunk), uri, f"<sip:{number}@{trunk.host}>", trunk.name,
                                  trunk))
        return targets

    def target_for_refer(self, uri: SipUri) -> str:
        """The number or user a REFER's Refer-To names (its user part)."""
        return uri.user or ""


def contact_destination(binding: Binding, uri: SipUri) -> tuple[str, str, int]:
    """Where to reach a registered contact: over UDP its Contact address when the REGISTER came from
    that very host (no NAT in between), else where the REGISTER came from (RFC 3581, RFC 5626)."""
    if binding.transport == "udp" and uri.host.strip("[]") == binding.source[0]:
        return ("udp", binding.source[0], uri.port or 5060)
    # Streams: reuse the phone's own connection (RFC 5626 section 5.3); NAT: the mapping it opened.
    return (binding.transport, binding.source[0], binding.source[1])


def called_number_of(request: SipRequest) -> str:
    """The dialled number: the Request-URI user part (RFC 3261 section 8.2.2.1), else the To user."""
    user = request.uri.user or request.to_addr.uri.user or ""
    return user.split(";", 1)[0]
