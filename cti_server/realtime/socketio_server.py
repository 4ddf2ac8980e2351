"""The socket.io server on the aiohttp app: authenticated namespaces fed only by the event bus.

Namespaces per audience:

- ``/agent`` (agents and supervisors): each connection joins ``agent:<user id>``; it receives the
  ``work_item.*`` and ``agent.*`` events that name that agent (offers, timeouts, moves, status), and
  the ``call.*`` events of a voice item offered to or answered by that agent (its phone ringing, the
  call answered, held, ended; the screen pop as ``call.screenpop``).
- ``/supervisor`` (supervisors and admins): joins ``cc:<call center id>`` (admins: ``cc:*``) and
  receives every ``work_item.*``, ``agent.*`` and ``queue.*`` event of the call center, including the
  periodic ``queue.figures``.

A client authenticates at connect with ``auth={"token": <session token or API key>}`` (or the session
cookie / ``Authorization: Bearer`` header of the handshake); anything else is refused. The socket.io
event name is the bus topic; its payload is ``{"topic", "data", "call_center", "timestamp"}``. No
module emits to browsers itself: this forwarder subscribes to the bus. With ``[routing] backend =
"redis"`` a Redis client manager carries emits to clients connected to other server processes.
"""

from __future__ import annotations

from typing import Any

import socketio
import structlog
from aiohttp import web

from cti_server.api.auth import SESSION_COOKIE, Principal, principal_from_token
from cti_server.api.keys import BUS_KEY, CONFIG_KEY
from cti_server.calls.model import call_id_of_item
from cti_server.events import Event, Subscription

log = structlog.get_logger(__name__)

AGENT_NAMESPACE = "/agent"
SUPERVISOR_NAMESPACE = "/supervisor"
SOCKETIO_KEY = web.AppKey("socketio", socketio.AsyncServer)
FORWARDED_TOPICS = ("work_item.*", "agent.*", "queue.*")
_ALL_CALL_CENTERS = "cc:*"
_VOICE_OFFER_OVER = ("work_item.declined", "work_item.timed_out", "work_item.moved", "work_item.withdrawn")


def _token(environ: dict[str, Any], auth: Any) -> str:
    if isinstance(auth, dict) and isinstance(auth.get("token"), str):
        return str(auth["token"])
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    for part in str(environ.get("HTTP_COOKIE", "")).split(";"):
        name, _, value = part.strip().partition("=")
        if name == SESSION_COOKIE:
            return value
    return ""


class _AuthenticatedNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    """Refuses connections without a principal of one of ``roles``; keeps the principal in the session."""

    roles: frozenset[str] = frozenset()

    def __init__(self, namespace: str, app: web.Application) -> None:
        super().__init__(namespace)
        self.app = app

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        principal = await principal_from_token(self.app, _token(environ, auth))
        if principal is None:
            raise socketio.exceptions.ConnectionRefusedError("authentication required")
        if principal.role not in self.roles:
            refusal = f"role {principal.role} may not join {self.namespace}"
            raise socketio.exceptions.ConnectionRefusedError(refusal)
        await self.save_session(sid, {"principal": principal.as_json()})
        for room in self.rooms_of(principal):
            await self.enter_room(sid, room)
        log.info("socketio_connected", namespace=self.namespace, user=principal.id, role=principal.role)

    def rooms_of(self, principal: Principal) -> list[str]:
        raise NotImplementedError


class AgentNamespace(_AuthenticatedNamespace):
    """``/agent``: the agent's own offers and status."""

    roles = frozenset({"agent", "supervisor"})

    def rooms_of(self, principal: Principal) -> list[str]:
        return [f"agent:{principal.id}"]


class SupervisorNamespace(_AuthenticatedNamespace):
    """``/supervisor``: everything routing reports about the supervisor's call center."""

    roles = frozenset({"supervisor", "admin"})

    def rooms_of(self, principal: Principal) -> list[str]:
        if principal.is_admin:
            return [_ALL_CALL_CENTERS]
        return [f"cc:{principal.call_center_id}"]


class BusForwarder:
    """Subscribes to the bus and emits each routing event to the rooms it concerns.

    ``call.*`` events name no agent: the forwarder keeps which agent each voice item's call
    (``call_id_of_item``) is offered to or held by, from the ``work_item.*`` events, and sends the
    call's events to that agent (after the answer the call's ``target.agent`` says it too). The entry
    goes with ``call.ended``.
    """

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self.sio = sio
        self._subscriptions: list[Subscription] = []
        self.voice_agents: dict[str, str] = {}
        """call id -> the agent its voice item is offered to or assigned to (on this node's bus)."""

    def attach(self, app: web.Application) -> None:
        bus = app[BUS_KEY]
        self._subscriptions = [bus.subscribe(pattern, self.forward) for pattern in FORWARDED_TOPICS]
        self._subscriptions.append(bus.subscribe("call.*", self.forward_call))

    def detach(self, app: web.Application) -> None:
        for sub in self._subscriptions:
            app[BUS_KEY].unsubscribe(sub)
        self._subscriptions = []

    async def forward(self, event: Event) -> None:
        payload = {"topic": event.topic, "data": event.data, "call_center": event.call_center,
                   "timestamp": event.timestamp}
        rooms = [_ALL_CALL_CENTERS]
        if event.call_center is not None:
            rooms.append(f"cc:{event.call_center}")
        await self.sio.emit(event.topic, payload, room=rooms, namespace=SUPERVISOR_NAMESPACE)
        agent = event.data.get("agent")
        if isinstance(agent, str) and not event.topic.startswith("queue."):
            await self.sio.emit(event.topic, payload, room=f"agent:{agent}", namespace=AGENT_NAMESPACE)
        if event.topic.startswith("work_item."):
            self._follow_voice(event.topic, event.data)

    def _follow_voice(self, topic: str, data: dict[str, Any]) -> None:
        item = data.get("item")
        if not isinstance(item, dict) or item.get("channel") != "voice":
            return
        if not isinstance(item.get("id"), str):
            return
        call_id = call_id_of_item(item["id"])  # a requeued call's item is <call id>.<n>
        agent = data.get("agent")
        if topic in ("work_item.offered", "work_item.accepted") and isinstance(agent, str):
            self.voice_agents[call_id] = agent
        elif topic in _VOICE_OFFER_OVER and self.voice_agents.get(call_id) == agent:
            del self.voice_agents[call_id]

    async def forward_call(self, event: Event) -> None:
        """A ``call.*`` event to the agent its voice item is with (nobody when it is with nobody)."""
        call_id = event.data.get("call_id")
        if not isinstance(call_id, str):
            return
        target = event.data.get("target")
        agent = target.get("agent") if isinstance(target, dict) else None
        if not isinstance(agent, str):
            agent = self.voice_agents.get(call_id)
        if event.topic == "call.ended":
            self.voice_agents.pop(call_id, None)
        if agent is None:
            return
        payload = {"topic": event.topic, "data": event.data, "call_center": event.call_center,
                   "timestamp": event.timestamp}
        await self.sio.emit(event.topic, payload, room=f"agent:{agent}", namespace=AGENT_NAMESPACE)


def setup(app: web.Application) -> None:
    """Attach the socket.io server (path ``/socket.io``) and the bus forwarder to ``app``."""
    routing = app[CONFIG_KEY].routing
    manager = None
    if routing.backend == "redis":
        manager = socketio.AsyncRedisManager(routing.redis_url, channel=routing.redis_prefix + "socketio")
    # cors_allowed_origins left at its default: same-origin browsers only (the served pages).
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager)
    sio.attach(app)
    sio.register_namespace(AgentNamespace(AGENT_NAMESPACE, app))
    sio.register_namespace(SupervisorNamespace(SUPERVISOR_NAMESPACE, app))
    app[SOCKETIO_KEY] = sio
    forwarder = BusForwarder(sio)

    async def start(app: web.Application) -> None:
        forwarder.attach(app)

    async def stop(app: web.Application) -> None:
        forwarder.detach(app)

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
