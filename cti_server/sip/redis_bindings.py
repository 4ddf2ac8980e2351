"""Registrar bindings in Redis (RFC 3261 section 10.3), shared by every server process on that Redis.

A phone registered with one process can then be rung by a call that arrives at another. Keys, under
``prefix``: ``aor:<aor>`` is a hash per address-of-record (field = binding key, value = the binding as
JSON); ``expiry`` is a sorted set of ``<aor>\\n<key>`` scored by ``expires_at`` (wall-clock seconds,
``time.time()``: every process compares the same clock). A newline separates the two because neither an
AOR nor a binding key can hold one (they come from SIP header values).

Every change is one Lua script, which Redis runs atomically: ``add`` and ``remove`` return the binding
they replaced or removed, and ``expire`` removes each due binding from both keys in one step, so when
several processes sweep at once each expired binding goes to exactly one of them (and its
``registration.expired`` event is published once).

``locked(aor)`` serialises the registrar's read-check-write of one REGISTER (Call-ID/CSeq order,
``sip.max_contacts_per_user``, ``Contact: *``) across every process on the prefix: tasks of one process
queue in the process first (``AorLocks``), then the process takes ``lock:<aor>`` with ``SET NX PX`` (a random
token, a lease of ``lock_lease`` seconds so a crashed holder blocks the AOR no longer than that) and
reads the AOR's bindings in the same Lua step, retrying with jittered backoff for up to ``lock_wait``
seconds (then ``BindingsBusy``: 503 with Retry-After). The holder's writes are fenced: the scripts
check the lock still holds its token before they change anything, so a holder stalled past its lease (a
Redis or host pause) fails with ``BindingsBusy`` instead of overwriting what the next holder wrote.
Unlocking deletes the key only if it still holds the token (compare-and-delete in Lua).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import redis.asyncio as redis
import structlog
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from cti_server.routing.resp import PipelinedConnection
from cti_server.sip.bindings import AorLocks, Binding, BindingsBusy, BindingsUnavailable

log = structlog.get_logger(__name__)

_SEPARATOR = "\n"
EXPIRE_BATCH = 500
"""Bindings one ``expire`` script call removes at most; the sweep loops until fewer come back, so one
call never blocks Redis for long."""

LOCK_LEASE = 5.0
"""Seconds an AOR's Redis lock lives unless released: a crashed holder blocks that AOR this long at most
(a REGISTER's critical section takes a few round trips, milliseconds)."""
LOCK_WAIT = 2.0
"""Seconds a REGISTER waits for its AOR's Redis lock before it is answered 503 with Retry-After."""

# Prepended to each writing script: with a third key (the AOR's lock) its last ARGV must be the token the
# lock still holds, or nothing is written (the lease ran out and another process may hold the lock).
_FENCE = """
if #KEYS == 3 and redis.call('GET', KEYS[3]) ~= ARGV[#ARGV] then
  return redis.error_reply('LOCKLOST the AOR lock lease ran out')
end
"""

# KEYS: hash, expiry[, lock]; ARGV: field, json, expires_at, member[, token]. Returns the replaced JSON
# or nil.
_ADD = _FENCE + """
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return old
"""

# KEYS: hash, expiry[, lock]; ARGV: field, member[, token]. Returns the removed JSON or nil.
_REMOVE = _FENCE + """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
end
return old
"""

# KEYS: hash, expiry[, lock]; ARGV: aor[, token]. Returns the removed JSON values.
_REMOVE_ALL = _FENCE + """
local flat = redis.call('HGETALL', KEYS[1])
local values = {}
for i = 1, #flat, 2 do
  redis.call('ZREM', KEYS[2], ARGV[1] .. '\\n' .. flat[i])
  values[#values + 1] = flat[i + 1]
end
redis.call('DEL', KEYS[1])
return values
"""

# KEYS: lock, hash; ARGV: token, lease in ms. Takes the lock and returns the AOR's bindings (JSON), or
# nil when another holder has it.
_LOCK = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('HVALS', KEYS[2])
end
return false
"""

# KEYS: lock; ARGV: token. Deletes the lock only if it still holds the token; returns 1 if it did.
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: expiry; ARGV: now, hash key prefix, batch. Removes and returns the JSON of due bindings.
_EXPIRE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local values = {}
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  local cut = string.find(member, '\\n', 1, true)
  if cut then
    local hash = ARGV[2] .. string.sub(member, 1, cut - 1)
    local field = string.sub(member, cut + 1)
    local value = redis.call('HGET', hash, field)
    if value then
      redis.call('HDEL', hash, field)
      values[#values + 1] = value
    end
  end
end
return values
"""


def binding_to_record(binding: Binding) -> str:
    """The JSON a binding is stored as (every field, ``expires_at`` exact)."""
    return json.dumps({
        "aor": binding.aor, "key": binding.key, "contact": binding.contact, "expires_at": binding.expires_at,
        "call_id": binding.call_id, "cseq": binding.cseq, "source": list(binding.source),
        "transport": binding.transport, "q": binding.q, "instance_id": binding.instance_id,
        "reg_id": binding.reg_id, "user_agent": binding.user_agent, "registered_at": binding.registered_at,
        "path": list(binding.path),
    }, separators=(",", ":"))


def binding_from_record(record: str) -> Binding:
    """The binding stored as ``record`` by :func:`binding_to_record`."""
    data: dict[str, Any] = json.loads(record)
    host, port = data.pop("source")
    path = data.pop("path")
    return Binding(source=(str(host), int(port)), path=tuple(path), **data)


@contextlib.contextmanager
def _reachable() -> Iterator[None]:
    """Redis unreachable (refused, lost, timed out, loading) -> BindingsUnavailable: the registrar's 503."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise BindingsUnavailable(f"Redis: {exc}") from exc


class RedisBindings:
    """``RegistrarBindings`` in Redis under ``prefix``; build it with :meth:`from_url`.

    The hot path (the scripts and ``lookup``) goes over the routing backend's lean pipelined connection
    (``cti_server.routing.resp``: a fraction of redis-py's client CPU per command, the commands of one
    event-loop turn in one write); TLS connections and the listing use redis-py. It is also a server
    component: ``start`` checks the connection (a wrong ``redis_url`` fails the start with the reason)
    and ``stop`` closes both connections.
    """

    def __init__(self, client: redis.Redis, prefix: str, *, lock_lease: float = LOCK_LEASE,
                 lock_wait: float = LOCK_WAIT) -> None:
        self.client = client
        self.prefix = prefix
        self.lock_lease = lock_lease
        self.lock_wait = lock_wait
        self._expiry = f"{prefix}expiry"
        self._add = client.register_script(_ADD)
        self._remove = client.register_script(_REMOVE)
        self._remove_all = client.register_script(_REMOVE_ALL)
        self._expire = client.register_script(_EXPIRE)
        self._lock_script = client.register_script(_LOCK)
        self._unlock = client.register_script(_UNLOCK)
        self._local = AorLocks()
        # aor -> token of the Redis lock this store holds (one holder per AOR here: ``_local``).
        self._held: dict[str, str] = {}
        self._owner = secrets.token_hex(8)
        self._tokens = itertools.count()
        pool = client.connection_pool
        self._fast: PipelinedConnection | None = None
        if pool.connection_class in (redis.Connection, redis.UnixDomainSocketConnection):
            self._fast = PipelinedConnection.from_kwargs(pool.connection_kwargs)

    @classmethod
    def from_url(cls, url: str, prefix: str = "cti:sip:bindings:", *, lock_lease: float = LOCK_LEASE,
                 lock_wait: float = LOCK_WAIT) -> RedisBindings:
        """Bindings at the Redis of ``url`` (``redis://``, ``rediss://``, ``unix://``); connects lazily."""
        return cls(redis.from_url(url, decode_responses=True), prefix, lock_lease=lock_lease,
                   lock_wait=lock_wait)

    def _hash(self, aor: str) -> str:
        return f"{self.prefix}aor:{aor}"

    def _lock_key(self, aor: str) -> str:
        return f"{self.prefix}lock:{aor}"

    async def _run(self, script: AsyncScript, keys: list[str], args: list[str | int]) -> Any:
        with _reachable():
            try:
                if self._fast is None:
                    return await script(keys=keys, args=args)
                try:
                    return await self._fast.call("EVALSHA", script.sha, len(keys), *keys, *args)
                except ResponseError as exc:
                    if not str(exc).startswith("NOSCRIPT"):
                        raise
                # Redis restarted or its script cache was flushed: load the script again, once.
                await self.client.script_load(script.script)
                return await self._fast.call("EVALSHA", script.sha, len(keys), *keys, *args)
            except ResponseError as exc:
                if str(exc).startswith("LOCKLOST"):
                    raise BindingsBusy(f"Redis: lock of {keys[0]!r} lost: {exc}") from exc
                raise

    async def _write(self, script: AsyncScript, aor: str, keys: list[str], args: list[str | int]) -> Any:
        """Run a writing script, fenced by the AOR's lock when this store holds it."""
        token = self._held.get(aor)
        if token is not None:
            keys.append(self._lock_key(aor))
            args.append(token)
        return await self._run(script, keys, args)

    def locked(self, aor: str) -> contextlib.AbstractAsyncContextManager[list[Binding]]:
        return self._locked(aor)

    @contextlib.asynccontextmanager
    async def _locked(self, aor: str) -> AsyncIterator[list[Binding]]:
        await self._local.acquire(aor)
        try:
            token, values = await self._lock(aor)
            self._held[aor] = token
            try:
                yield [binding_from_record(v) for v in values]
            finally:
                del self._held[aor]
                await self._release(aor, token)
        finally:
            self._local.release(aor)

    async def _lock(self, aor: str) -> tuple[str, list[str]]:
        """Take ``aor``'s Redis lock (``SET NX PX``) and read its bindings, retrying with jittered
        backoff up to ``lock_wait``; returns the token and the bindings' JSON."""
        keys = [self._lock_key(aor), self._hash(aor)]
        token = f"{self._owner}:{next(self._tokens)}"
        args: list[str | int] = [token, max(1, round(self.lock_lease * 1000))]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.lock_wait
        delay = 0.002
        while True:
            values = await self._run(self._lock_script, keys, args)
            if values is not None:
                return token, values
            left = deadline - loop.time()
            if left <= 0:
                raise BindingsBusy(f"Redis: {aor} locked by another process for over {self.lock_wait:g} s")
            await asyncio.sleep(min(left, delay * random.uniform(0.5, 1.5)))
            delay = min(delay * 2, 0.064)

    async def _release(self, aor: str, token: str) -> None:
        try:
            released = await self._run(self._unlock, [self._lock_key(aor)], [token])
        except BindingsUnavailable as exc:
            # What was written stays written; the lease frees the AOR.
            log.warning("registrar_unlock_failed", aor=aor, reason=str(exc), lease=self.lock_lease)
            return
        if not released:
            log.warning("registrar_lock_lease_ran_out", aor=aor, lease=self.lock_lease)

    async def add(self, binding: Binding) -> Binding | None:
        member = f"{binding.aor}{_SEPARATOR}{binding.key}"
        record = binding_to_record(binding)
        old = await self._write(self._add, binding.aor, [self._hash(binding.aor), self._expiry],
                                [binding.key, record, repr(binding.expires_at), member])
        return binding_from_record(old) if old is not None else None

    async def remove(self, aor: str, key: str) -> Binding | None:
        old = await self._write(self._remove, aor, [self._hash(aor), self._expiry],
                                [key, f"{aor}{_SEPARATOR}{key}"])
        return binding_from_record(old) if old is not None else None

    async def remove_all(self, aor: str) -> list[Binding]:
        values = await self._write(self._remove_all, aor, [self._hash(aor), self._expiry], [aor])
        return [binding_from_record(v) for v in values]

    async def lookup(self, aor: str) -> list[Binding]:
        with _reachable():
            if self._fast is not None:
                values: list[str] = await self._fast.call("HVALS", self._hash(aor))
            else:
                values = cast(list[str], await self.client.hvals(self._hash(aor)))  # decode_responses: str
        return [binding_from_record(v) for v in values]

    async def expire(self, now: float) -> list[Binding]:
        expired: list[Binding] = []
        while True:
            args: list[str | int] = [repr(now), f"{self.prefix}aor:", EXPIRE_BATCH]
            values = await self._run(self._expire, [self._expiry], args)
            expired += [binding_from_record(v) for v in values]
            if len(values) < EXPIRE_BATCH:
                return expired

    async def all(self) -> list[Binding]:
        with _reachable():
            members = cast(list[str], await self.client.zrange(self._expiry, 0, -1))
            aors = list(dict.fromkeys(m.partition(_SEPARATOR)[0] for m in members))
            async with self.client.pipeline(transaction=False) as pipe:
                for aor in aors:
                    pipe.hvals(self._hash(aor))
                results = await pipe.execute()
        return [binding_from_record(v) for values in results for v in values]

    async def start(self) -> None:
        try:
            await self.client.ping()
        except RedisError as exc:
            # An OSError: the CLI reports it as an operator's problem ("cannot start: ..."), no traceback.
            kwargs = self.client.connection_pool.connection_kwargs
            where = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"
            raise ConnectionError(f"sip.registrar bindings: Redis at {where} unreachable ({exc})") from exc

    async def stop(self) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        if self._fast is not None:
            await self._fast.aclose()
        await self.client.aclose()
