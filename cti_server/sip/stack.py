"""The SIP stack component: transports, the transaction layer and request dispatch (RFC 3261 8.2, 17, 18).

``SipComponent`` is what ``CtiServer`` starts. It owns the listeners (``transport``), keeps the client
and server transactions (``transaction``) in two dicts keyed per 17.1.3 / 17.2.3 (``matching``),
arms one ``loop.call_at`` per transaction for its next deadline, and hands new requests to the
handler registered for their method. What it answers by itself (RFC 3261 8.2):

- ``OPTIONS`` without a handler: 200 with Allow, Accept, Accept-Language, Supported (11.2);
- a method it knows but nobody handles: 405 with Allow (8.2.1); an unknown method: 501;
- ``Max-Forwards: 0`` on anything but OPTIONS: 483 (16.3 step 3, OPTIONS per 11);
- a ``CANCEL`` that matches no INVITE: 481; one that does: 200, then 487 to the INVITE unless the
  transaction user already answered it (9.2);
- a message that does not parse: the 400 (or 505/513) the parser's error names, where one can be
  built; otherwise the bytes are dropped and counted. A handler that raises: 500.

Every message is handled under a guard: nothing a peer sends can stop the component.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import ipaddress
import re
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from cti_server.config import Config
from cti_server.events import EventBus
from cti_server.shutdown import DEFAULT_GRACE, settle
from cti_server.sip.errors import SipParseError
from cti_server.sip.matching import (
    MAGIC_COOKIE,
    ClientKey,
    ServerKey,
    client_key,
    is_rfc2543_key,
    server_key,
    server_key_from_bytes,
    to_tag_matches,
)
from cti_server.sip.message import SipRequest, SipResponse, make_response, new_branch, new_tag
from cti_server.sip.parser import parse_message, response_for_unparseable
from cti_server.sip.stats import SipStats
from cti_server.sip.timer_slots import TimerSlots
from cti_server.sip.timers import TimerValues
from cti_server.sip.transaction import (
    ACCEPTED,
    COMPLETED,
    CONFIRMED,
    PROCEEDING,
    ClientTransaction,
    DeliverAck,
    DeliverResponse,
    InviteClientTransaction,
    InviteServerTransaction,
    InviteSuccessRetransmission,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Output,
    ServerTransaction,
    Terminated,
    TimedOut,
    Transmit,
    TransportFailed,
)
from cti_server.sip.transport import Address, Flow, SipTransports, server_tls_context
from cti_server.sip.uri import format_host
from cti_server.sip.via import parse_via

log = structlog.get_logger(__name__)

KNOWN_METHODS = frozenset({
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER",  # RFC 3261
    "PRACK", "SUBSCRIBE", "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",  # extensions
})  # fmt: skip
"""Methods answered 405 (not 501) when no handler is registered (RFC 3261 8.2.1)."""

ACCEPT = "application/sdp"
SUPPORTED = "path, outbound"
CONNECT_TIMEOUT = 5.0

Handler = Callable[["IncomingRequest"], Awaitable[None] | None]
CancelCallback = Callable[["IncomingRequest"], None]
AckTimeoutCallback = Callable[[], None]
ResponseCallback = Callable[[SipResponse], None]


@dataclass(slots=True, eq=False)
class IncomingRequest:
    """A new request for the transaction user, and the server transaction it answers through.

    ``source`` is where the answer goes (after received/rport, RFC 3261 18.2.1, RFC 3581);
    ``local`` the listener address it arrived on. ``respond`` hands a response to the server
    transaction, which retransmits it as 17.2 says. ACKs for 2xx come with ``respond`` a no-op.
    """

    request: SipRequest
    transport: str
    source: Address
    local: Address
    _stack: SipComponent = field(repr=False)
    _entry: _ServerEntry | None = field(default=None, repr=False)

    def respond(self, response: SipResponse) -> None:
        """Send ``response`` through the server transaction (provisional, then one final)."""
        if self._entry is not None:
            self._stack._respond(self._entry, response)

    @property
    def answered(self) -> bool:
        """True once a final response went out."""
        return self._entry is not None and self._entry.final_sent

    def on_cancel(self, callback: CancelCallback) -> None:
        """Call ``callback`` when a CANCEL for this INVITE arrives before the final response (9.2)."""
        if self._entry is not None:
            if self._entry.cancel_callbacks is None:
                self._entry.cancel_callbacks = []
            self._entry.cancel_callbacks.append(callback)

    def on_ack_timeout(self, callback: AckTimeoutCallback) -> None:
        """Call ``callback`` when a 2xx sent to this INVITE got no ACK in 64*T1 (RFC 3261 13.3.1.4: the
        TU should then end the session with BYE). Register before sending the 2xx."""
        if self._entry is not None:
            self._entry.ack_timeout = callback


@dataclass(slots=True, eq=False)
class _ServerEntry:
    """What the stack keeps per server transaction. ``incoming`` (and with it the request) is let go
    once the final response is out: at 2,000 OPTIONS/s, timer J keeps 64,000 of these alive."""

    tx: ServerTransaction
    flow: Flow
    call_id: str
    incoming: IncomingRequest | None = None
    request_to_tag: str | None = None  # RFC 2543 matching only
    reply_port: int = 0  # TCP/TLS: the Via sent-by port, to reconnect to (18.2.2)
    final_sent: bool = False
    cancel_callbacks: list[CancelCallback] | None = None
    ack_timeout: AckTimeoutCallback | None = None
    handle: object | None = None  # the TimerSlots entry of the armed timer
    deadline: float | None = None


@dataclass(slots=True, eq=False)
class _ClientEntry:
    """What the stack keeps per client transaction. Once the final response is handed over, the request,
    the future (holding that response) and the provisional callback are let go: an INVITE waits out
    timer M (32 s) and a BYE timer K after it, and whatever they still hold outlives the call that
    long (and costs the garbage collector a scan of it, twice)."""

    tx: ClientTransaction
    request: SipRequest | None
    flow: Flow
    future: asyncio.Future[SipResponse] | None
    on_provisional: ResponseCallback | None
    on_retransmitted_2xx: ResponseCallback | None
    handle: object | None = None  # the TimerSlots entry of the armed timer
    deadline: float | None = None


@dataclass(slots=True, eq=False)
class _OkEntry:
    tx: InviteSuccessRetransmission
    flow: Flow
    call_id: str
    on_timeout: AckTimeoutCallback | None = None
    handle: object | None = None  # the TimerSlots entry of the armed timer
    deadline: float | None = None


_Timed = _ServerEntry | _ClientEntry | _OkEntry
_EMPTY_RPORT_RE = re.compile(r";[ \t]*rport(?=[ \t]*(?:;|$))", re.IGNORECASE)
_CR_LF = (13, 10)
_CALL_ID_RE = re.compile(rb"^(?:call-id|i)[ \t]*:[ \t]*([^\r\n]{1,200})", re.IGNORECASE | re.MULTILINE)


_LITERAL_CACHE_SIZE = 4096


def _ip_literal(host: str) -> str:
    """``host`` without IPv6 brackets when it is an IP address literal, else ""."""
    bare = host.strip("[]")
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        return ""
    return bare


def call_id_of(data: bytes) -> str | None:
    """The Call-ID of raw bytes, for logging a message that did not parse (or None)."""
    match = _CALL_ID_RE.search(data, 0, 8192)
    return match.group(1).strip().decode("utf-8", "replace") if match else None




BAD_INPUT_LOGS_PER_SECOND = 20
"""A flood of garbage is counted in full but logged at most this often (the log must not become the
victim of the flood)."""


class LogBudget:
    """At most ``per_second`` log lines per second; the rest are counted as suppressed."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self._window = -1.0
        self._used = 0
        self._suppressed = 0

    def allow(self, now: float) -> bool:
        """True when a line may be logged at ``now`` (seconds)."""
        if now - self._window >= 1.0:
            self._window = now
            self._used = 0
        if self._used < self.per_second:
            self._used += 1
            return True
        self._suppressed += 1
        return False

    def take_suppressed(self) -> int:
        """How many lines were suppressed since the last call."""
        count, self._suppressed = self._suppressed, 0
        return count


class SipComponent:
    """The SIP stack of the server (contract in notes/contracts.md): listeners, transactions, dispatch."""

    def __init__(self, config: Config, bus: EventBus) -> None:
        self.config = config
        self.bus = bus
        sip = config.sip
        self.stats = SipStats()
        self._handlers: dict[str, Handler] = {}
        self._allow: str | None = None
        self._server: dict[ServerKey, _ServerEntry] = {}
        self._client: dict[ClientKey, _ClientEntry] = {}
        self._ok: dict[tuple[str, int], _OkEntry] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers_udp = TimerValues.from_config(sip.timers, reliable=False)
        self._timers_reliable = TimerValues.from_config(sip.timers, reliable=True)
        self._max_size = sip.max_message_size
        self._server_header = sip.user_agent
        self._debug = config.log.level == "debug"
        self._loop: asyncio.AbstractEventLoop | None = None
        # Bound once: a timer per transaction should not also cost a bound method and a context copy.
        self._server_timer = self._on_server_timer
        self._client_timer = self._on_client_timer
        self._ok_timer = self._on_ok_timer
        self._timer_slots: TimerSlots | None = None
        self._bad_input_log = LogBudget(BAD_INPUT_LOGS_PER_SECOND)
        self._transports: SipTransports | None = None
        # host text -> the IP literal it is ("" when it is a name): every request sent asks, and
        # building an ipaddress object per message cost ~50 us.
        self._literal_hosts: dict[str, str] = {}
        self._sent_by: dict[tuple[str, str, int], str] = {}  # "SIP/2.0/UDP host:port" per listener

    # -- lifetime ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the UDP and TCP listeners (and TLS when a certificate is configured)."""
        sip = self.config.sip
        self._loop = asyncio.get_running_loop()
        tls_context = None
        if sip.tls_certificate:
            tls_context = server_tls_context(sip.tls_certificate, sip.tls_private_key)
        self._transports = SipTransports(
            sip.host, udp_port=sip.udp_port, tcp_port=sip.tcp_port,
            tls_port=sip.tls_port if tls_context else None, tls_context=tls_context,
            on_message=self._on_message, stats=self.stats, max_message_size=sip.max_message_size,
            idle_timeout=sip.tcp_idle_timeout,
        )  # fmt: skip
        await self._transports.start()
        log.info("sip_listening", udp=self.udp_address, tcp=self.tcp_address, tls=self.tls_address)

    async def stop(self) -> None:
        """Close the listeners, cancel every timer, fail pending client transactions with 503."""
        if self._transports is not None:
            await self._transports.stop()
        if self._timer_slots is not None:
            self._timer_slots.close()
            self._timer_slots = None
        for entry in list(self._client.values()):
            self._finish(entry, 503, "Service Unavailable")
        self._server.clear()
        self._ok.clear()
        self._client.clear()
        await settle(self._tasks, DEFAULT_GRACE, what="SIP handlers", wait_first=False)

    @property
    def udp_address(self) -> Address | None:
        """The bound UDP (host, port) after start."""
        return self._transports.udp_address if self._transports else None

    @property
    def tcp_address(self) -> Address | None:
        """The bound TCP (host, port) after start."""
        return self._transports.tcp_address if self._transports else None

    @property
    def tls_address(self) -> Address | None:
        """The bound TLS (host, port) after start, None without a certificate."""
        return self._transports.tls_address if self._transports else None

    @property
    def transactions(self) -> Mapping[str, int]:
        """How many server, client and 2xx-retransmitting transactions are alive right now."""
        return {"server": len(self._server), "client": len(self._client), "invite_2xx": len(self._ok)}

    # -- transaction user API ----------------------------------------------------------------------

    def register_handler(self, method: str, handler: Handler) -> None:
        """Send new requests of ``method`` to ``handler`` (ACK: the ACKs for 2xx responses).

        CANCEL is handled by the stack itself; see ``IncomingRequest.on_cancel``.
        """
        method = method.upper()
        if method == "CANCEL":
            raise ValueError("CANCEL is answered by the stack; use IncomingRequest.on_cancel")
        self._handlers[method] = handler
        self._allow = None

    def allowed_methods(self) -> list[str]:
        """The Allow header's methods: OPTIONS, CANCEL, ACK and every method with a handler."""
        return sorted({"OPTIONS", "ACK", "CANCEL", *self._handlers})

    def _allow_header(self) -> str:
        if self._allow is None:
            self._allow = ", ".join(self.allowed_methods())
        return self._allow

    async def send_request(
        self,
        request: SipRequest,
        destination: tuple[str, str, int],
        on_provisional: ResponseCallback | None = None,
        on_retransmitted_2xx: ResponseCallback | None = None,
    ) -> SipResponse:
        """Run a client transaction for ``request`` to ``(transport, host, port)`` (RFC 3261 17.1).

        The top Via gets this stack's transport and sent-by (18.1.1), a branch if it has none, and
        ``rport`` (RFC 3581). Returns the final response; 408 is synthesized when timer B or F fires
        and 503 when the transport fails (8.1.3.1). Provisional responses go to ``on_provisional``,
        further 2xx answers to an INVITE (forks, retransmits) to ``on_retransmitted_2xx``.
        """
        transport, host, port = destination
        transport = transport.lower()
        try:
            remote = await self._resolve(host, port)
            assert self._transports is not None
            flow = await self._transports.flow_to(transport, remote, CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ConnectionError) as exc:
            self.stats["transport_errors"] += 1
            log.warning("sip_send_failed", call_id=request.call_id, destination=destination, error=str(exc))
            return self._synthesize(request, 503, "Service Unavailable")
        return await self._start_client(request, flow, on_provisional, on_retransmitted_2xx)

    def send_request_now(
        self, request: SipRequest, destination: tuple[str, str, int]
    ) -> asyncio.Future[SipResponse] | None:
        """``send_request`` without a coroutine: over UDP to an IP address (no lookup, no connect) the
        client transaction starts at once and its future gets the final response; None for any other
        destination (use ``send_request``). A BYE per call no longer needs a Task of its own."""
        transport, host, port = destination
        transports = self._transports
        if transport.lower() != "udp" or transports is None or transports.udp is None:
            return None
        literal = self._literal_hosts.get(host)
        if literal is None:
            literal = _ip_literal(host)
        if not literal:
            return None
        return self._start_client(request, transports.udp_flow((literal, port)), None, None)

    def _start_client(
        self,
        request: SipRequest,
        flow: Flow,
        on_provisional: ResponseCallback | None,
        on_retransmitted_2xx: ResponseCallback | None,
    ) -> asyncio.Future[SipResponse]:
        loop = self._require_loop()
        self._prepare_via(request, flow)
        key = client_key(request)
        timers = self._timers_reliable if flow.reliable else self._timers_udp
        tx: ClientTransaction
        if request.method == "INVITE":
            tx = InviteClientTransaction(key, request, timers)
        else:
            tx = NonInviteClientTransaction(key, request, timers)
        future: asyncio.Future[SipResponse] = loop.create_future()
        entry = _ClientEntry(tx, request, flow, future, on_provisional, on_retransmitted_2xx)
        self._client[key] = entry
        self.stats["client_transactions_created"] += 1
        self.stats["requests_out"] += 1
        self._client_outputs(entry, tx.start(loop.time()))
        return future

    async def send_stateless(
        self, message: SipRequest | SipResponse, destination: tuple[str, str, int]
    ) -> None:
        """Send ``message`` once, outside any transaction (ACK for 2xx, 17.1.1.3 / 13.2.2.4)."""
        transport, host, port = destination
        remote = await self._resolve(host, port)
        assert self._transports is not None
        flow = await self._transports.flow_to(transport.lower(), remote, CONNECT_TIMEOUT)
        if isinstance(message, SipRequest):
            self._prepare_via(message, flow)
        flow.send(message.serialize())

    async def send_ack(self, ack: SipRequest, destination: tuple[str, str, int]) -> None:
        """Send the ACK for a 2xx to INVITE: its own transaction-less request (RFC 3261 13.2.2.4)."""
        await self.send_stateless(ack, destination)

    # -- receive path ------------------------------------------------------------------------------

    def _on_message(self, data: bytes, flow: Flow) -> None:
        """Entry point of every datagram / framed stream message: the guard that never lets go."""
        try:
            self._receive(data, flow)
        except Exception:
            self.stats["handler_errors"] += 1
            log.exception("sip_message_failed", call_id=call_id_of(data), transport=flow.transport,
                          remote=flow.remote, size=len(data))

    def _receive(self, data: bytes, flow: Flow) -> None:
        if (not data or data[0] in _CR_LF) and not data.strip(b"\r\n"):
            self.stats["keepalives_in"] += 1  # a UDP CRLF keep-alive carries nothing to answer
            return
        key = None  # the request's server_key, when read from the bytes: the parse need not build it again
        if self._server and not data.startswith(b"SIP/") and len(data) <= self._max_size:
            key = server_key_from_bytes(data)
            if key is not None and self._absorb_retransmission(data, key):
                return
        try:
            message = parse_message(data, max_size=self._max_size)
        except SipParseError as exc:
            self.stats["oversize_messages" if exc.status == 513 else "parse_errors"] += 1
            self._answer_unparseable(data, flow, exc)
            return
        if isinstance(message, SipResponse):
            self.stats["responses_in"] += 1
            self._receive_response(message)
        else:
            self.stats["requests_in"] += 1
            self._receive_request(message, flow, key)

    def _absorb_retransmission(self, data: bytes, key: ServerKey) -> bool:
        """17.2.3 before the parse: a retransmitted request (or the ACK of a non-2xx) whose transaction
        exists costs a regex, not a full parse. This is what keeps an overloaded server from collapsing
        under its peers' retransmissions. ``key``: ``server_key_from_bytes(data)``."""
        entry = self._server.get(key)
        if entry is None:
            return False
        tx = entry.tx
        now = self._require_loop().time()
        if data.startswith(b"ACK "):
            if not isinstance(tx, InviteServerTransaction) or tx.state not in (COMPLETED, CONFIRMED):
                return False
            outputs = tx.absorb_ack(now)
        else:
            outputs = tx.receive_retransmission(now)
        self.stats["requests_in"] += 1
        self.stats["retransmissions_absorbed"] += 1
        self._server_outputs(entry, outputs)
        return True

    def _answer_unparseable(self, data: bytes, flow: Flow, error: SipParseError) -> None:
        response = response_for_unparseable(data, error)
        if self._bad_input_log.allow(self._require_loop().time()):
            log.info("sip_unparseable", call_id=call_id_of(data), transport=flow.transport,
                     remote=flow.remote, reason=error.reason, status=error.status,
                     answered=response is not None, suppressed=self._bad_input_log.take_suppressed())
        else:
            self.stats["logs_suppressed"] += 1
        if response is None:
            self.stats["garbage_dropped"] += 1
            return
        counter = f"answered_{response.status}"
        if counter in self.stats:
            self.stats[counter] += 1
        self._send_on(flow, response.serialize())

    def _receive_request(self, request: SipRequest, flow: Flow, key: ServerKey | None = None) -> None:
        now = self._require_loop().time()
        if key is None:  # (server_key_from_bytes gives the same key when it gives one)
            key = server_key(request)  # before received/rport rewrite the top Via (same branch, sent-by)
        source = self._received_rport(request, flow)
        method = request.method
        if self._debug:
            log.debug("sip_request_in", method=method, call_id=request.call_id, remote=flow.remote,
                      transport=flow.transport)
        if method == "ACK":
            self._receive_ack(request, key, flow, source, now)
            return
        existing = self._server.get(key)
        if existing is not None and (not is_rfc2543_key(key) or self._rfc2543_match(request, existing)):
            self.stats["retransmissions_absorbed"] += 1
            self._server_outputs(existing, existing.tx.receive_request(request, now))
            return
        timers = self._timers_reliable if flow.reliable else self._timers_udp
        tx: ServerTransaction
        if method == "INVITE":
            tx = InviteServerTransaction(key, request, timers)
        else:
            tx = NonInviteServerTransaction(key, request, timers)
        entry = _ServerEntry(tx, self._response_flow_for_request(flow, source), request.call_id)
        if is_rfc2543_key(key):
            entry.request_to_tag = request.to_tag
        if flow.reliable:
            entry.reply_port = request.top_via.port or (5061 if flow.transport == "tls" else 5060)
        incoming = IncomingRequest(request, flow.transport, source, flow.local, self, entry)
        entry.incoming = incoming
        self._server[key] = entry
        self.stats["server_transactions_created"] += 1
        self._server_outputs(entry, tx.receive_request(request, now))
        self._dispatch(incoming)

    def _dispatch(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        method = request.method
        max_forwards = request.max_forwards
        if max_forwards is not None and max_forwards <= 0 and method != "OPTIONS":
            self._answer(incoming, 483, "Too Many Hops")
            return
        if method == "CANCEL":
            self._receive_cancel(incoming)
            return
        handler = self._handlers.get(method)
        if handler is None:
            if method == "OPTIONS":
                self._answer_options(incoming)
            elif request.to_tag is not None:
                # In-dialog, but with no handler for it there is no dialog it can belong to (12.2.2).
                self._answer(incoming, 481, "Call/Transaction Does Not Exist")
            elif method in KNOWN_METHODS:
                self._answer(incoming, 405, None, allow=True)
            else:
                self._answer(incoming, 501, None)
            return
        self._call_handler(handler, incoming)

    def _call_handler(self, handler: Handler, incoming: IncomingRequest) -> None:
        try:
            result = handler(incoming)
        except Exception:
            self._handler_failed(incoming)
            return
        if inspect.iscoroutine(result):
            self._run_eagerly(result, incoming)
        elif inspect.isawaitable(result):
            self._track_handler_task(asyncio.ensure_future(result), incoming)

    def _run_eagerly(self, coroutine: Coroutine[Any, Any, Any], incoming: IncomingRequest) -> None:
        """Run an async handler now, up to its first real suspension (in its own copy of the context,
        as a Task would). Most finish without one (a REGISTER with in-memory bindings): then no Task
        and no extra turn of the event loop is spent on them. One that suspends goes on in a Task."""
        context = contextvars.copy_context()
        try:
            yielded = context.run(coroutine.send, None)
        except StopIteration:
            return
        except asyncio.CancelledError:
            return
        except Exception as exc:
            self._handler_failed(incoming, exc)
            return
        task = self._require_loop().create_task(_resume(coroutine, yielded), context=context)
        self._track_handler_task(task, incoming)

    def _track_handler_task(self, task: asyncio.Future[Any], incoming: IncomingRequest) -> None:
        self._tasks.add(task)  # type: ignore[arg-type]
        task.add_done_callback(lambda t: self._handler_done(t, incoming))  # type: ignore[arg-type]

    def _handler_done(self, task: asyncio.Task[Any], incoming: IncomingRequest) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._handler_failed(incoming, task.exception())

    def _handler_failed(self, incoming: IncomingRequest, exc: BaseException | None = None) -> None:
        self.stats["handler_errors"] += 1
        log.error("sip_handler_failed", method=incoming.request.method, call_id=incoming.request.call_id,
                  exc_info=exc if exc is not None else True)
        if incoming._entry is not None and not incoming._entry.final_sent:
            self._answer(incoming, 500, "Server Internal Error")

    def _answer(
        self, incoming: IncomingRequest, status: int, reason: str | None, *, allow: bool = False
    ) -> None:
        counter = f"answered_{status}"
        if counter in self.stats:
            self.stats[counter] += 1
        response = self.build_response(incoming.request, status, reason)
        if allow:
            response.headers.add("Allow", self._allow_header())
        incoming.respond(response)

    def _answer_options(self, incoming: IncomingRequest) -> None:
        self.stats["options_answered"] += 1
        response = self.build_response(incoming.request, 200, None)
        headers = response.headers
        headers.add("Allow", self._allow_header())
        headers.add("Accept", ACCEPT)
        headers.add("Accept-Language", "en")
        headers.add("Supported", SUPPORTED)
        incoming.respond(response)

    def build_response(self, request: SipRequest, status: int, reason: str | None = None) -> SipResponse:
        """A response of the stack's own (8.2.6): a To tag when the request had none, and Server."""
        # The parser has parsed To already (cached), so asking for its tag costs a lookup.
        to_tag = new_tag() if status > 100 and request.to_tag is None else None
        response = make_response(request, status, reason, to_tag=to_tag)
        response.headers.add("Server", self._server_header)
        return response

    def _receive_cancel(self, incoming: IncomingRequest) -> None:
        """RFC 3261 9.2: 481 when no INVITE matches; else 200 and 487 to the unanswered INVITE."""
        cancel = incoming.request
        key = server_key(cancel, "INVITE")
        invite = self._server.get(key)
        if invite is None or not invite.tx.is_invite or (
            is_rfc2543_key(key) and not self._rfc2543_match(cancel, invite)
        ):
            self._answer(incoming, 481, "Call/Transaction Does Not Exist")
            return
        incoming.respond(self.build_response(cancel, 200))
        invite_incoming = invite.incoming
        if invite.final_sent or invite.tx.state != PROCEEDING or invite_incoming is None:
            return
        for callback in invite.cancel_callbacks or ():
            try:
                callback(invite_incoming)
            except Exception:
                self.stats["handler_errors"] += 1
                log.exception("sip_cancel_callback_failed", call_id=cancel.call_id)
        if not invite.final_sent:
            invite_incoming.respond(self.build_response(invite_incoming.request, 487, "Request Terminated"))

    def _receive_ack(self, ack: SipRequest, key: ServerKey, flow: Flow, source: Address, now: float) -> None:
        entry = self._server.get(key)
        if entry is not None and isinstance(entry.tx, InviteServerTransaction) and (
            not is_rfc2543_key(key) or self._rfc2543_match(ack, entry)
        ):
            if entry.tx.state == CONFIRMED:
                self.stats["retransmissions_absorbed"] += 1
            self._server_outputs(entry, entry.tx.receive_ack(ack, now))
            return
        ok = self._ok.pop((ack.call_id, ack.cseq.number), None)
        if ok is not None:
            self._cancel_timer(ok)
            ok.tx.receive_ack(ack, now)
        self._deliver_ack(IncomingRequest(ack, flow.transport, source, flow.local, self))

    def _deliver_ack(self, ack: IncomingRequest) -> None:
        handler = self._handlers.get("ACK")
        if handler is None:
            self.stats["acks_unmatched"] += 1
            return
        self._call_handler(handler, ack)

    def _rfc2543_match(self, request: SipRequest, entry: _ServerEntry) -> bool:
        return to_tag_matches(request, entry.request_to_tag, entry.tx.response_to_tag)

    def _receive_response(self, response: SipResponse) -> None:
        entry = self._client.get(client_key(response))
        if entry is None:
            self.stats["responses_unmatched"] += 1
            if self._debug:
                log.debug("sip_response_unmatched", call_id=response.call_id, status=response.status)
            return
        self._client_outputs(entry, entry.tx.receive_response(response, self._require_loop().time()))

    # -- server side sending -----------------------------------------------------------------------

    def _respond(self, entry: _ServerEntry, response: SipResponse) -> None:
        tx = entry.tx
        now = self._require_loop().time()
        status = response.status
        invite_success = tx.is_invite and 200 <= status < 300
        if status >= 200:
            if entry.final_sent and not invite_success:
                return
            entry.final_sent = True
        self.stats["responses_out"] += 1
        request = entry.incoming.request if entry.incoming is not None else None
        self._server_outputs(entry, tx.send_response(response, now))
        if status >= 200:
            entry.incoming = None  # let the request go (see _ServerEntry)
            entry.cancel_callbacks = None  # a CANCEL after the final response changes nothing (9.2)
        if invite_success and request is not None:
            # In Accepted the transaction just serialized this 2xx: its retransmissions reuse the bytes.
            sent = tx.last_response if tx.state == ACCEPTED else None
            self._start_ok_retransmission(entry, request, response, now, sent)
        if status >= 200:
            entry.ack_timeout = None  # handed to the 2xx retransmission, which alone waits for the ACK

    def _start_ok_retransmission(
        self, entry: _ServerEntry, invite: SipRequest, response: SipResponse, now: float,
        sent: bytes | None = None,
    ) -> None:
        key = (response.call_id, response.cseq.number)
        if key in self._ok:
            return
        timers = self._timers_reliable if entry.flow.reliable else self._timers_udp
        ok = _OkEntry(InviteSuccessRetransmission(key, invite, timers), entry.flow, entry.call_id,
                      entry.ack_timeout)
        ok.tx.last_response = sent
        self._ok[key] = ok
        self._ok_outputs(ok, ok.tx.start(response, now))

    def _server_outputs(self, entry: _ServerEntry, outputs: list[Output]) -> None:
        tx = entry.tx
        for output in outputs:
            if isinstance(output, Transmit):
                if entry.flow.is_closed and entry.reply_port:
                    self._spawn(self._reply_on_new_connection(entry, output.data))
                elif not self._send_on(entry.flow, output.data):
                    self._server_outputs(entry, tx.transport_error(self._require_loop().time()))
                    return
            elif isinstance(output, DeliverAck):
                flow = entry.flow
                self._deliver_ack(IncomingRequest(output.ack, flow.transport, flow.remote, flow.local, self))
            elif isinstance(output, TimedOut):
                self.stats["transactions_timed_out"] += 1
                log.info("sip_ack_not_received", call_id=entry.call_id, timer=output.timer)
            elif isinstance(output, Terminated):
                self.stats["transactions_terminated"] += 1
                if self._server.get(tx.key) is entry:  # type: ignore[call-overload]
                    del self._server[tx.key]  # type: ignore[arg-type]
        self._schedule(entry, tx.next_deadline(), self._server_timer)

    async def _reply_on_new_connection(self, entry: _ServerEntry, data: bytes) -> None:
        """RFC 3261 18.2.2: the request's connection is gone; open one to its source address and
        the Via's sent-by port, and answer there."""
        assert self._transports is not None
        remote = (entry.flow.remote[0], entry.reply_port)
        try:
            flow = await self._transports.flow_to(entry.flow.transport, remote, CONNECT_TIMEOUT)
            flow.send(data)
        except (OSError, TimeoutError, ConnectionError) as exc:
            self.stats["transport_errors"] += 1
            log.warning("sip_reply_failed", call_id=entry.call_id, remote=remote, error=str(exc))
            self._server_outputs(entry, entry.tx.transport_error(self._require_loop().time()))
            return
        entry.flow = flow

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_server_timer(self, entry: _ServerEntry) -> None:
        entry.handle = None
        entry.deadline = None
        outputs = entry.tx.fire_timers(self._require_loop().time())
        self.stats["retransmissions_sent"] += sum(1 for o in outputs if isinstance(o, Transmit))
        self._guarded(self._server_outputs, entry, outputs)

    def _ok_outputs(self, ok: _OkEntry, outputs: list[Output]) -> None:
        for output in outputs:
            if isinstance(output, Transmit):
                self.stats["retransmissions_sent"] += 1
                self._send_on(ok.flow, output.data)
            elif isinstance(output, TimedOut):
                self.stats["transactions_timed_out"] += 1
                log.warning("sip_2xx_ack_timeout", call_id=ok.call_id)
                if ok.on_timeout is not None:
                    try:
                        ok.on_timeout()
                    except Exception:
                        log.exception("sip_ack_timeout_callback_failed", call_id=ok.call_id)
            elif isinstance(output, Terminated):
                key = ok.tx.key
                if self._ok.get(key) is ok:  # type: ignore[call-overload]
                    del self._ok[key]  # type: ignore[arg-type]
        self._schedule(ok, ok.tx.next_deadline(), self._ok_timer)

    def _on_ok_timer(self, ok: _OkEntry) -> None:
        ok.handle = None
        ok.deadline = None
        self._guarded(self._ok_outputs, ok, ok.tx.fire_timers(self._require_loop().time()))

    # -- client side -------------------------------------------------------------------------------

    def _client_outputs(self, entry: _ClientEntry, outputs: list[Output]) -> None:
        tx = entry.tx
        for output in outputs:
            if isinstance(output, Transmit):
                if not self._send_on(entry.flow, output.data):
                    self._client_outputs(entry, tx.transport_error(self._require_loop().time()))
                    return
            elif isinstance(output, DeliverResponse):
                self._deliver_response(entry, output.response)
            elif isinstance(output, TimedOut):
                self.stats["transactions_timed_out"] += 1
                self._finish(entry, 408, "Request Timeout")
            elif isinstance(output, TransportFailed):
                self._finish(entry, 503, "Service Unavailable")
            elif isinstance(output, Terminated):
                self.stats["transactions_terminated"] += 1
                if self._client.get(tx.key) is entry:  # type: ignore[call-overload]
                    del self._client[tx.key]  # type: ignore[arg-type]
        self._schedule(entry, tx.next_deadline(), self._client_timer)

    def _deliver_response(self, entry: _ClientEntry, response: SipResponse) -> None:
        future = entry.future
        if response.status < 200:
            callback = entry.on_provisional
        elif future is not None:
            self._let_go(entry)
            if not future.done():
                future.set_result(response)
                return
            callback = entry.on_retransmitted_2xx
        else:
            callback = entry.on_retransmitted_2xx
        if callback is not None:
            try:
                callback(response)
            except Exception:
                self.stats["handler_errors"] += 1
                log.exception("sip_response_callback_failed", call_id=response.call_id)

    def _finish(self, entry: _ClientEntry, status: int, reason: str) -> None:
        """Give the transaction user ``status`` made up (8.1.3.1) unless it has its final response."""
        future, request = entry.future, entry.request
        if future is None or request is None:
            return
        self._let_go(entry)
        if not future.done():
            future.set_result(self._synthesize(request, status, reason))

    @staticmethod
    def _let_go(entry: _ClientEntry) -> None:
        """The final response is out: keep only what later 2xx retransmissions need (see _ClientEntry)."""
        entry.future = None
        entry.request = None
        entry.on_provisional = None
        if not entry.tx.is_invite:
            entry.on_retransmitted_2xx = None

    def _on_client_timer(self, entry: _ClientEntry) -> None:
        entry.handle = None
        entry.deadline = None
        outputs = entry.tx.fire_timers(self._require_loop().time())
        self.stats["retransmissions_sent"] += sum(1 for o in outputs if isinstance(o, Transmit))
        self._guarded(self._client_outputs, entry, outputs)

    # -- helpers -----------------------------------------------------------------------------------

    def _schedule(self, holder: _Timed, deadline: float | None, callback: Callable[[Any], None]) -> None:
        """Keep exactly one timer per transaction, at its next deadline (or a little after: TimerSlots)."""
        if deadline == holder.deadline:
            return
        holder.deadline = deadline
        if deadline is None:
            holder.handle = None  # the armed timer, if any, is let go
            return
        slots = self._timer_slots
        if slots is None:
            slots = self._timer_slots = TimerSlots(self._require_loop())
        holder.handle = slots.arm(holder, deadline, callback)

    @staticmethod
    def _cancel_timer(ok: _OkEntry) -> None:
        # Its slot holds the entry until the timer's time: let go of what the timeout would have called.
        ok.handle = None
        ok.deadline = None
        ok.on_timeout = None

    def _guarded(self, function: Callable[..., None], *args: Any) -> None:
        try:
            function(*args)
        except Exception:
            self.stats["handler_errors"] += 1
            log.exception("sip_timer_failed")

    def _send_on(self, flow: Flow, data: bytes) -> bool:
        try:
            flow.send(data)
        except (OSError, ConnectionError) as exc:
            self.stats["transport_errors"] += 1
            log.warning("sip_send_failed", transport=flow.transport, remote=flow.remote, error=str(exc))
            return False
        return True

    def _received_rport(self, request: SipRequest, flow: Flow) -> Address:
        """RFC 3261 18.2.1 / RFC 3581 4: note where the request came from in its top Via, and return
        where responses go (18.2.2): the source port with rport, else the sent-by port."""
        via = request.top_via
        src_host, src_port = flow.remote
        rport = via.rport
        if via.host == src_host and rport is None:
            return (src_host, via.port or 5060) if not flow.reliable else flow.remote
        lines = request.headers.get_lines("Via")
        top = lines[0]
        if len(lines) == 1 and not rport and "," not in top and "received" not in top.lower():
            # The common case (a UA talking to us directly): edit the one Via line as text instead of
            # re-serializing it; ~5 us instead of ~30 us.
            if rport == "":
                top = _EMPTY_RPORT_RE.sub(f";rport={src_port}", top, count=1)
            request.headers.set("Via", f"{top};received={src_host}")
        else:
            via.params["received"] = src_host
            if rport is not None:
                via.params["rport"] = str(src_port)
            request.headers.remove_first("Via")
            request.headers.prepend("Via", str(via))
        if rport is not None or flow.reliable:
            return flow.remote
        return (src_host, via.port or 5060)

    def _response_flow_for_request(self, flow: Flow, source: Address) -> Flow:
        """18.2.2: on a stream, the connection the request came on; on UDP, the received/rport address."""
        if flow.reliable or source == flow.remote:
            return flow
        assert self._transports is not None
        return self._transports.udp_flow(source)

    def _prepare_via(self, request: SipRequest, flow: Flow) -> None:
        """18.1.1: the transport fills the top Via's transport and sent-by; add a branch and rport."""
        assert self._transports is not None
        listener = self._transports.local_address(flow.transport) or flow.local
        host = self.config.sip.advertised_host or listener[0]
        headers = request.headers
        if "Via" not in headers:
            # In-dialog requests (ACK, BYE, re-INVITE) come without one: write it, no parse.
            sent_by = self._sent_by.get((flow.transport, host, listener[1]))
            if sent_by is None:
                sent_by = f"SIP/2.0/{flow.transport.upper()} {format_host(host)}:{listener[1]}"
                self._sent_by[(flow.transport, host, listener[1])] = sent_by
            headers.prepend("Via", f"{sent_by};branch={new_branch()};rport")
            return
        via = parse_via(headers.get_all("Via")[0])
        headers.remove_first("Via")
        via.transport = flow.transport.upper()
        via.host = host
        via.port = listener[1]
        if not (via.branch or "").startswith(MAGIC_COOKIE):
            via.params["branch"] = new_branch()
        via.params.setdefault("rport", None)
        request.headers.prepend("Via", str(via))

    async def _resolve(self, host: str, port: int) -> Address:
        literal = self._literal_hosts.get(host)
        if literal is None:
            literal = _ip_literal(host)
            if len(self._literal_hosts) >= _LITERAL_CACHE_SIZE:
                self._literal_hosts.clear()
            self._literal_hosts[host] = literal
        if literal:
            return (literal, port)
        infos = await self._require_loop().getaddrinfo(host, port, type=2)  # SOCK_DGRAM
        if not infos:
            raise OSError(f"cannot resolve {host}")
        address = infos[0][4]
        return (str(address[0]), int(address[1]))

    def _synthesize(self, request: SipRequest, status: int, reason: str) -> SipResponse:
        """A response the stack makes up for its own user (8.1.3.1: timeout 408, transport error 503)."""
        return make_response(request, status, reason)

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop


async def _resume(coroutine: Coroutine[Any, Any, Any], yielded: Any) -> Any:
    """Finish, inside a Task, a coroutine that was started outside one and suspended on ``yielded``."""
    return await _StartedCoroutine(coroutine, yielded)


class _StartedCoroutine:
    """Awaiting this resumes ``coroutine`` where it suspended: what it yielded (a future, or None for a
    bare yield) is handed to the Task, and what the Task sends or throws back goes to the coroutine."""

    def __init__(self, coroutine: Coroutine[Any, Any, Any], yielded: Any) -> None:
        self._coroutine = coroutine
        self._yielded = yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        coroutine = self._coroutine
        value = self._yielded
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as exc:  # CancelledError and the like, thrown in by the Task
                try:
                    value = coroutine.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coroutine.send(sent)
                except StopIteration as stop:
                    return stop.value
