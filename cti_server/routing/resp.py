"""A lean pipelined Redis connection for the routing backend's hot path (``FCALL`` and a few reads).

redis-py spends most of the client's time per routing step on its per-command machinery (packing in
pure Python, a timeout context and a parser round per reply, connection-pool checkout). The routing
steps are one command each, so this connection keeps one socket, writes every command made in one
event-loop turn in one ``write`` and matches replies to callers in order (RESP2), while many are in
flight. Each ``FCALL`` is still its own atomic step in Redis. The redis-py client stays in use for
everything else (admin reads, ``FUNCTION LOAD``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

_CRLF = b"\r\n"


def pack(args: tuple[Any, ...]) -> bytes:
    """One command in RESP: an array of bulk strings (``str`` as UTF-8, numbers by ``str``)."""
    # Most commands are ASCII text: built as one str and encoded once (a batch has ~100 arguments).
    text = [f"*{len(args)}\r\n"]
    for arg in args:
        if arg.__class__ is not str:
            if isinstance(arg, bytes):
                return _pack_bytes(args)
            arg = str(arg)
        if not arg.isascii():  # a character is not a byte: count bytes
            return _pack_bytes(args)
        text.append(f"${len(arg)}\r\n{arg}\r\n")
    return "".join(text).encode()


def _pack_bytes(args: tuple[Any, ...]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _Incomplete(Exception):
    """The buffer ends inside a reply."""


def _parse(buf: bytearray, pos: int) -> tuple[Any, int]:
    """One reply at ``pos``: (value, position after it); raises _Incomplete. Errors come back as values."""
    end = buf.find(_CRLF, pos)
    if end < 0:
        raise _Incomplete
    kind = buf[pos]
    if kind == 36:  # '$' bulk string
        size = int(buf[pos + 1:end])
        if size < 0:
            return None, end + 2
        stop = end + 2 + size
        if stop + 2 > len(buf):
            raise _Incomplete
        return buf[end + 2:stop].decode(), stop + 2
    line = buf[pos + 1:end].decode()
    if kind == 43:  # '+' simple string
        return line, end + 2
    if kind == 45:  # '-' error
        return ResponseError(line), end + 2
    if kind == 58:  # ':' integer
        return int(line), end + 2
    if kind == 42:  # '*' array
        count = int(line)
        if count < 0:
            return None, end + 2
        items: list[Any] = []
        pos = end + 2
        for _ in range(count):
            value, pos = _parse(buf, pos)
            items.append(value)
        return items, pos
    raise RedisConnectionError(f"unexpected RESP reply type {chr(kind)!r}")


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.buffer = bytearray()
        self.out: list[bytes] = []
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        pos = 0
        waiting = self.waiting
        futures: list[asyncio.Future[Any]] = []
        replies: list[Any] = []
        try:
            while waiting and pos < len(buf):
                value, pos = _parse(buf, pos)
                futures.append(waiting.popleft())
                replies.append(value)
        except _Incomplete:
            pass
        except RedisConnectionError as exc:
            self._fail(exc)
            if self.transport is not None:
                self.transport.close()
        del buf[:pos]
        deliver(futures, replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(RedisConnectionError(f"connection to Redis lost: {exc or 'closed'}"))
        if not self.lost.done():
            self.lost.set_result(None)

    def _fail(self, exc: Exception) -> None:
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(exc)


def _flush(protocol: _Protocol) -> None:
    data = b"".join(protocol.out)
    protocol.out.clear()
    if protocol.transport is not None:  # else connection_lost has failed the callers already
        protocol.transport.write(data)


class PipelinedConnection:
    """One connection to Redis; :meth:`call` sends a command and awaits its reply.

    Commands from one event-loop turn leave in one write; replies are parsed as they arrive. A lost
    connection fails the calls in flight (ConnectionError) and the next call connects again.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 6379, db: int = 0, password: str | None = None,
                 username: str | None = None, path: str | None = None) -> None:
        self.host, self.port, self.db, self.path = host, port, db, path
        self.password, self.username = password, username
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> PipelinedConnection:
        """From a redis-py connection pool's ``connection_kwargs``."""
        return cls(host=kwargs.get("host", "127.0.0.1"), port=int(kwargs.get("port", 6379)),
                   db=int(kwargs.get("db", 0) or 0), password=kwargs.get("password"),
                   username=kwargs.get("username"), path=kwargs.get("path"))

    async def call(self, *args: Any) -> Any:
        """Run one command; a Redis error reply is raised as ResponseError."""
        protocol = self._protocol
        if protocol is None or protocol.transport is None:
            protocol = await self._connect()
        return await self._send(protocol, args)

    def submit(self, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Send one command now (connecting first if need be) and return the future of its reply."""
        protocol = self._protocol
        if protocol is None or protocol.transport is None:
            return asyncio.ensure_future(self.call(*args))
        return self._send(protocol, args)

    @staticmethod
    def _send(protocol: _Protocol, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        protocol.waiting.append(future)
        if not protocol.out:
            loop.call_soon(_flush, protocol)
        protocol.out.append(pack(args))
        return future

    async def _connect(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._protocol is not None and self._protocol.transport is not None:
                return self._protocol
            loop = asyncio.get_running_loop()
            protocol = _Protocol()
            if self.path:
                await loop.create_unix_connection(lambda: protocol, self.path)
            else:
                await loop.create_connection(lambda: protocol, self.host, self.port)
            setup = []
            if self.password is not None:
                auth = ("AUTH", self.username, self.password) if self.username else ("AUTH", self.password)
                setup.append(self._send(protocol, auth))
            if self.db:
                setup.append(self._send(protocol, ("SELECT", self.db)))
            try:
                for reply in setup:
                    await reply
            except BaseException:
                if protocol.transport is not None:
                    protocol.transport.close()
                raise
            self._protocol = protocol
            return protocol

    async def aclose(self) -> None:
        """Close the connection (calls in flight fail)."""
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
            await protocol.lost


class StepBatcher:
    """The ``FCALL`` steps of one event-loop turn as one ``FCALL <function> 0 batch ...`` command.

    The function runs each step atomically on its own, in order, and replies with the array of their
    replies (an error reply in place of a step that failed), which go back to the callers one by one.
    One command instead of many saves Redis its per-command work (parsing, the call into Lua) and the
    client a frame per step. A turn with one step sends it as a plain ``FCALL``.
    """

    def __init__(self, connection: PipelinedConnection, function: str, max_steps: int = 64) -> None:
        self.connection = connection
        self.function = function
        self.max_steps = max_steps
        self._pending: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []

    def call(self, *args: Any) -> asyncio.Future[Any]:
        """Queue one step (``FCALL <function> 0 *args``); the future gets its reply or ResponseError."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((args, future))
        return future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), self.max_steps):
            self._send(pending[start:start + self.max_steps])

    def _send(self, steps: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        if len(steps) == 1:
            args, future = steps[0]
            reply = self.connection.submit(("FCALL", self.function, 0, *args))
            reply.add_done_callback(lambda done: _settle(future, done))
            return
        command: list[Any] = ["FCALL", self.function, 0, "batch"]
        for args, _future in steps:
            command.append(len(args))
            command.extend(args)
        reply = self.connection.submit(tuple(command))
        reply.add_done_callback(lambda done: _settle_all(steps, done))


def _settle(future: asyncio.Future[Any], done: asyncio.Future[Any]) -> None:
    if future.done():  # its caller was cancelled
        return
    if done.cancelled():
        future.cancel()
    elif (exc := done.exception()) is not None:
        future.set_exception(exc)
    else:
        future.set_result(done.result())


def _settle_all(steps: list[tuple[tuple[Any, ...], asyncio.Future[Any]]], done: asyncio.Future[Any]) -> None:
    if done.cancelled() or done.exception() is not None:
        for _args, future in steps:
            _settle(future, done)
        return
    replies = done.result()
    if not isinstance(replies, list) or len(replies) != len(steps):
        error = RedisConnectionError(f"a batch of {len(steps)} steps got the reply {replies!r:.200}")
        for _args, future in steps:
            if not future.done():
                future.set_exception(error)
        return
    deliver([future for _args, future in steps], replies)


def deliver(futures: list[asyncio.Future[Any]], replies: list[Any]) -> None:
    """Give each waiting future its reply, in order; an exception (an error reply) is raised to its caller."""
    for future, reply in zip(futures, replies, strict=True):
        if future.done():  # its caller was cancelled
            continue
        if isinstance(reply, Exception):
            future.set_exception(reply)
        else:
            future.set_result(reply)
