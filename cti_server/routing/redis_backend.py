"""Redis routing backend: state shared by several server processes, atomic steps in one Lua library.

``routing.lua`` is loaded as a Redis function library (Redis 7+, ``FUNCTION LOAD``, so no per-call
script set-up); every change of state is one ``FCALL cti_routing_v2`` (dispatched on its first
argument), which Redis runs atomically: two nodes offering at the same moment are serialised, so an
item is never offered to two agents and an agent never fills beyond capacity. The steps callers make
in one event-loop turn go as one ``FCALL cti_routing_v2 0 batch <n> <step args>...`` (each step still
atomic on its own, with its own reply or error; :class:`~cti_server.routing.resp.StepBatcher`). All
state lives in Redis under ``prefix``, so a restarted server process carries on where it was (timers
included).

Keys (after the prefix): ``cver`` (version of statuses, queues and configurations, which the Lua
library keeps decoded between calls while it holds), ``cfg``, ``queue``, ``status``, ``skill``,
``agent``, ``item``, ``done``, ``data`` (hashes of JSON), ``w:<queue>`` (waiting items by order
score), ``wc:<queue>`` (by created time), ``o:<queue>`` (offered items), ``c:<queue>`` (candidate
agents by routing-model score), ``p:<queue>`` (members whose status allows a channel), ``timers``,
``hist`` (history records by time), ``done:order``, ``seq``, ``retention``, ``keep``. Stored items
leave out fields without a value (since 2026-11-26; items stored with ``null`` fields before read the
same, so no migration is needed).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from importlib import resources
from typing import Any

import redis.asyncio as redis
from redis.exceptions import ResponseError

from cti_server.routing.backend import Offer, QueueSnapshot, TimerOutcome
from cti_server.routing.model import (
    DEFAULT_STATUSES,
    Agent,
    ItemState,
    NotFound,
    OfferRecord,
    PresenceStatus,
    Queue,
    RoutingConfig,
    RoutingConflict,
    RoutingInputError,
    Skill,
    WorkItem,
)
from cti_server.routing.resp import PipelinedConnection, StepBatcher, deliver

_LUA = resources.files("cti_server.routing").joinpath("routing.lua").read_text(encoding="utf-8")
# The Lua library's function; its name changes with the calls and replies (see routing.lua).
FUNCTION = "cti_routing_v2"
_STATES = {state.value: state for state in ItemState}


class RedisRoutingBackend:
    """Routing state in Redis under ``prefix``; use :meth:`connect` to build one."""

    def __init__(self, client: redis.Redis, prefix: str, scan_depth: int,
                 share_with: RedisRoutingBackend | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.scan_depth = scan_depth
        self._owner = share_with is None
        self._fast: PipelinedConnection | None = None
        self._steps: StepBatcher | None = None
        self._batch: _FcallBatcher | None = None
        if share_with is not None:
            self._fast, self._steps, self._batch = share_with._fast, share_with._steps, share_with._batch
            return
        pool = client.connection_pool
        if pool.connection_class in (redis.Connection, redis.UnixDomainSocketConnection):
            self._fast = PipelinedConnection.from_kwargs(pool.connection_kwargs)
            self._steps = StepBatcher(self._fast, FUNCTION)
        else:  # TLS and other transports: redis-py's own pipeline
            self._batch = _FcallBatcher(client)

    @classmethod
    async def connect(cls, url: str, prefix: str = "cti:routing:", scan_depth: int = 1000,
                      history_retention_s: float = 86400.0, finished_items_kept: int = 10_000,
                      share_with: RedisRoutingBackend | None = None) -> RedisRoutingBackend:
        """Connect, store the retention settings and create the default presence statuses if absent.

        ``share_with``: another backend of this process whose connections this one uses (another
        prefix on the same Redis; closing this one leaves them open).
        """
        if share_with is not None:
            client = share_with.client
        else:
            client = redis.from_url(url, decode_responses=True)
            await client.function_load(_LUA, replace=True)
        backend = cls(client, prefix, scan_depth, share_with)
        await client.set(prefix + "retention", repr(float(history_retention_s)))
        await client.set(prefix + "keep", str(finished_items_kept))
        for status in DEFAULT_STATUSES:
            await client.hsetnx(prefix + "status", status.name, json.dumps(status.to_dict()))
        # A new value of the configuration version: the Lua library's kept statuses, queues and
        # routing configurations of this prefix are read afresh (see routing.lua, open_cache).
        await client.set(prefix + "cver", "connect." + uuid.uuid4().hex)
        return backend

    async def _call(self, op: str, *args: Any) -> Any:
        try:
            if self._steps is not None:
                return await self._steps.call(op, self.prefix, *args)
            assert self._batch is not None
            return await self._batch.call(op, self.prefix, *args)
        except ResponseError as exc:
            raise _translate(exc) from None

    # --- configuration ---------------------------------------------------------------------------
    async def put_routing_config(self, config: RoutingConfig) -> None:
        await self._call("put_cfg", json.dumps(config.to_dict()))

    async def get_routing_config(self, config_id: str) -> RoutingConfig:
        return RoutingConfig.from_dict(await self._hget("cfg", config_id, "routing configuration"))

    async def list_routing_configs(self) -> list[RoutingConfig]:
        return [RoutingConfig.from_dict(d) for d in await self._hvals("cfg")]

    async def delete_routing_config(self, config_id: str) -> None:
        await self._call("del_cfg", config_id)

    async def put_queue(self, queue: Queue) -> None:
        await self._call("put_queue", json.dumps(queue.to_dict()))

    async def get_queue(self, queue_id: str) -> Queue:
        return Queue.from_dict(_queue_shape(await self._hget("queue", queue_id, "queue")))

    async def list_queues(self) -> list[Queue]:
        return [Queue.from_dict(_queue_shape(d)) for d in await self._hvals("queue")]

    async def delete_queue(self, queue_id: str) -> None:
        await self._call("del_queue", queue_id)

    async def put_status(self, status: PresenceStatus) -> None:
        await self._call("put_status", json.dumps(status.to_dict()))

    async def list_statuses(self) -> list[PresenceStatus]:
        return [PresenceStatus(d["name"], list(d["channels"] or [])) for d in await self._hvals("status")]

    async def delete_status(self, name: str) -> None:
        await self._call("del_status", name)

    async def put_skill(self, skill: Skill) -> None:
        await self.client.hset(self.prefix + "skill", skill.name, json.dumps(skill.to_dict()))

    async def list_skills(self) -> list[Skill]:
        return [Skill(**d) for d in await self._hvals("skill")]

    async def delete_skill(self, name: str) -> None:
        if not await self.client.hdel(self.prefix + "skill", name):
            raise NotFound(f"no skill {name}")

    # --- agents ----------------------------------------------------------------------------------
    async def put_agent(self, agent: Agent, now: float) -> Agent:
        return _agent(await self._call("put_agent", json.dumps(agent.to_dict()), repr(now)))

    async def get_agent(self, agent_id: str) -> Agent:
        return _agent_from(await self._hget("agent", agent_id, "agent"))

    async def list_agents(self) -> list[Agent]:
        return [_agent_from(d) for d in await self._hvals("agent")]

    async def delete_agent(self, agent_id: str) -> None:
        await self._call("del_agent", agent_id)

    async def set_agent_status(self, agent_id: str, status: str, now: float) -> tuple[Agent, list[Offer]]:
        result = json.loads(await self._call("set_status", agent_id, status, repr(now), self.scan_depth))
        agent = _agent_from(result["agent"])
        return agent, _offers(result, agent)

    # --- items -----------------------------------------------------------------------------------
    async def add_item(self, item: WorkItem, now: float) -> tuple[WorkItem, Offer | None]:
        body = item.to_dict()
        data = body.pop("data")
        # Fields without a value stay out of the stored JSON (the Lua library leaves them out too).
        body = {name: value for name, value in body.items() if value is not None}
        raw = await self._call("add_item", json.dumps(body), json.dumps(data), repr(now), self.scan_depth)
        result = json.loads(raw)
        offer = result.get("offer")
        return _item(result["item"], data), _offer(offer) if offer else None

    async def get_item(self, item_id: str) -> WorkItem:
        raw, data = await self._pipeline_get(item_id)
        if raw is None:
            raise NotFound(f"no work item {item_id}")
        return _item(json.loads(raw), json.loads(data) if data else {})

    async def _pipeline_get(self, item_id: str) -> tuple[str | None, str | None]:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hget(self.prefix + "item", item_id)
            pipe.hget(self.prefix + "done", item_id)
            pipe.hget(self.prefix + "data", item_id)
            open_raw, done_raw, data = await pipe.execute()
        return open_raw or done_raw, data

    async def get_open_items(self, item_ids: list[str]) -> dict[str, WorkItem]:
        if not item_ids:
            return {}
        raws = await self.client.hmget(self.prefix + "item", item_ids)
        return {item_id: _item(json.loads(raw), {})
                for item_id, raw in zip(item_ids, raws, strict=True) if raw is not None}

    async def list_items(self, queue_id: str | None = None) -> list[WorkItem]:
        items = [_item(d) for d in await self._hvals("item")]
        return [i for i in items if queue_id is None or i.queue == queue_id]

    async def movable_items(self, queue_id: str, limit: int) -> list[WorkItem]:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hexists(self.prefix + "queue", queue_id)
            pipe.zrange(self.prefix + "w:" + queue_id, 0, limit - 1)
            pipe.smembers(self.prefix + "o:" + queue_id)
            known, waiting, offered = await pipe.execute()
        if not known:
            raise NotFound(f"no queue {queue_id}")
        ids = [str(i) for i in waiting] + sorted(str(i) for i in offered)
        if not ids:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hmget(self.prefix + "item", ids)
            pipe.hmget(self.prefix + "data", ids)
            raws, datas = await pipe.execute()
        # An item served or closed between the two reads is left out.
        return [_item(json.loads(raw), json.loads(data) if data else {})
                for raw, data in zip(raws, datas, strict=True) if raw is not None]

    async def offer_item(self, item_id: str, now: float) -> Offer | None:
        raw = await self._call("offer_item", item_id, repr(now), self.scan_depth)
        return _offer(json.loads(raw)) if raw else None

    async def offer_to_agent(self, agent_id: str, now: float) -> list[Offer]:
        raw = await self._call("offer_agent", agent_id, repr(now), self.scan_depth)
        return _offer_list(json.loads(raw) or [], {})

    async def offer_to(self, item_id: str, agent_id: str, now: float) -> Offer:
        return _offer(json.loads(await self._call("offer_to", item_id, agent_id, repr(now))))

    async def accept(self, item_id: str, agent_id: str, now: float) -> WorkItem:
        return _item(json.loads(await self._call("accept", item_id, agent_id, repr(now))))

    async def decline(self, item_id: str, agent_id: str, now: float,
                      reason: str) -> tuple[WorkItem, list[Offer]]:
        raw = await self._call("decline", item_id, agent_id, repr(now), reason, self.scan_depth)
        result = json.loads(raw)
        return _item(result["item"]), _offers(result)

    async def set_hold(self, item_id: str, held: bool, now: float) -> WorkItem:
        return _item(json.loads(await self._call("hold", item_id, "1" if held else "0", repr(now))))

    async def end_conversation(self, item_id: str, now: float) -> tuple[WorkItem, list[Offer]]:
        result = json.loads(await self._call("end_conversation", item_id, repr(now), self.scan_depth))
        return _item(result["item"]), _offers(result)

    async def close(self, item_id: str, now: float, reason: str) -> tuple[WorkItem, list[Offer]]:
        result = json.loads(await self._call("close", item_id, repr(now), reason, self.scan_depth))
        return _item(result["item"]), _offers(result)

    async def withdraw(self, item_id: str, now: float,
                       reason: str) -> tuple[WorkItem, str | None, list[Offer]]:
        result = json.loads(await self._call("withdraw", item_id, repr(now), reason, self.scan_depth))
        return _item(result["item"]), result.get("agent"), _offers(result)

    async def move_to_queue(self, item_id: str, queue_id: str, now: float) -> tuple[WorkItem, str | None]:
        result = json.loads(await self._call("move", item_id, queue_id, repr(now)))
        return _item(result["item"]), result.get("agent")

    # --- timers and figures ----------------------------------------------------------------------
    async def fire_due_timers(self, now: float, limit: int) -> list[TimerOutcome]:
        raw = await self._call("fire", repr(now), limit)
        return [TimerOutcome(o["kind"], _item(o["item"]), o.get("agent"), o.get("from_queue"))
                for o in json.loads(raw) or []]

    async def next_timer_due(self) -> float | None:
        if self._fast is not None:
            raw = await self._fast.call("ZRANGE", self.prefix + "timers", 0, 0, "WITHSCORES")
            return float(raw[1]) if raw else None
        first = await self.client.zrange(self.prefix + "timers", 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    async def queue_snapshot(self, queue_id: str) -> QueueSnapshot:
        await self._hget("queue", queue_id, "queue")
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zcard(self.prefix + "w:" + queue_id)
            pipe.scard(self.prefix + "o:" + queue_id)
            pipe.zrange(self.prefix + "wc:" + queue_id, 0, 0, withscores=True)
            waiting, offered, oldest = await pipe.execute()
        return QueueSnapshot(queue_id, int(waiting), int(offered), float(oldest[0][1]) if oldest else None)

    async def history(self, start: float, end: float) -> list[dict[str, Any]]:
        raw = await self.client.zrangebyscore(self.prefix + "hist", repr(start), f"({end!r}")
        return [json.loads(str(r)) for r in raw]

    async def aclose(self) -> None:
        if not self._owner:
            return
        if self._fast is not None:
            await self._fast.aclose()
        await self.client.aclose()

    async def drop_all(self) -> int:
        """Delete every key under this backend's prefix (tests and benchmarks); returns how many."""
        keys = [k async for k in self.client.scan_iter(match=f"{self.prefix}*", count=1000)]
        for start in range(0, len(keys), 1000):
            await self.client.delete(*keys[start:start + 1000])
        return len(keys)

    # --- helpers ---------------------------------------------------------------------------------
    async def _hget(self, hash_name: str, key: str, what: str) -> dict[str, Any]:
        raw = await self.client.hget(self.prefix + hash_name, key)
        if raw is None:
            raise NotFound(f"no {what} {key}")
        value: dict[str, Any] = json.loads(raw)
        return value

    async def _hvals(self, hash_name: str) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in await self.client.hvals(self.prefix + hash_name)]


class _FcallBatcher:
    """Over TLS and other redis-py transports: the ``FCALL``s of one event-loop turn as one pipeline.

    Each call stays its own atomic Lua step (a non-transactional pipeline only shares the round trip
    and the client's per-command overhead); calls made while a pipeline is in flight go in the next
    one. Errors come back to the caller of the call that failed.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._pending: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def call(self, *args: Any) -> Any:
        """Run ``FCALL cti_routing_v2 0 *args`` and return its reply (a ResponseError is raised)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((args, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    async with self.client.pipeline(transaction=False) as pipe:
                        for args, _future in batch:
                            pipe.fcall(FUNCTION, 0, *args)
                        replies = await pipe.execute(raise_on_error=False)
                except BaseException as exc:  # connection lost, cancelled: every caller learns it
                    for _args, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                deliver([future for _args, future in batch], replies)
        finally:
            self._flusher = None
            if self._pending:  # left by a cancelled flush: start again for them
                self._flusher = asyncio.create_task(self._flush())


def _translate(exc: ResponseError) -> Exception:
    """Map the script's ``KIND message`` error replies to the routing exceptions."""
    kind, _sep, message = str(exc).partition(" ")
    if kind == "CONFLICT":
        return RoutingConflict(message)
    if kind == "NOTFOUND":
        return NotFound(message)
    if kind == "INPUT":
        field_name, _sep, detail = message.partition(" ")
        return RoutingInputError(field_name, detail)
    return exc


def _item(data: dict[str, Any], extra: dict[str, Any] | None = None) -> WorkItem:
    """WorkItem.from_dict on the decoded reply in place (on the hot path: every step returns items)."""
    # Lua's cjson writes an empty list as {}: give lists and objects back their shape.
    offers = data.get("offers")
    data["offers"] = [OfferRecord(**o) for o in offers] if offers else []
    data["declined_by"] = data.get("declined_by") or []
    data["skills"] = data.get("skills") or {}
    data["data"] = extra if extra is not None else data.get("data") or {}
    data["state"] = _STATES[data.get("state", "queued")]
    return WorkItem(**data)


def _agent_from(data: dict[str, Any]) -> Agent:
    for name in ("queues", "items"):
        data[name] = data.get(name) or []
    for name in ("channel_caps", "skills", "used_by_channel"):
        data[name] = data.get(name) or {}
    return Agent.from_dict(data)


def _agent(raw: str) -> Agent:
    return _agent_from(json.loads(raw))


def _queue_shape(data: dict[str, Any]) -> dict[str, Any]:
    data["skill_relaxation"] = data.get("skill_relaxation") or {}
    return data


def _offers(result: dict[str, Any], agent: Agent | None = None) -> list[Offer]:
    return _offer_list(result.get("offers") or [], {} if agent is None else {agent.id: agent})


def _offer_list(offers: list[dict[str, Any]], agents: dict[str, Agent]) -> list[Offer]:
    """Offers of one reply: an agent already given in it comes again as its id alone (routing.lua)."""
    out = []
    for data in offers:
        raw = data["agent"]
        if isinstance(raw, str):
            agent = agents[raw]
        else:
            agent = agents[raw["id"]] = _agent_from(raw)
        out.append(Offer(_item(data["item"]), agent, data.get("deadline")))
    return out


def _offer(data: dict[str, Any]) -> Offer:
    return Offer(_item(data["item"]), _agent_from(data["agent"]), data.get("deadline"))
