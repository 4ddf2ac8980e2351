"""The routing backend's pipelined Redis connection: RESP replies, errors, pipelining, reconnection."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from cti_server.routing.resp import PipelinedConnection, _Incomplete, _parse, pack
from tests.routing.conftest import REDIS_URL


def test_pack_and_parse_round_trip_nested_replies() -> None:
    assert pack(("SET", "k", 1.5, b"\xff")) == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\n1.5\r\n$1\r\n\xff\r\n"
    buf = bytearray(b"*4\r\n$3\r\nh\xc3\xa9\r\n:42\r\n$-1\r\n*1\r\n+OK\r\n-CONFLICT item x\r\n")
    value, pos = _parse(buf, 0)
    assert value == ["h\u00e9", 42, None, ["OK"]]
    error, end = _parse(buf, pos)
    assert isinstance(error, ResponseError) and str(error) == "CONFLICT item x" and end == len(buf)
    for cut in range(1, pos):  # a reply split anywhere is incomplete, never misread
        with pytest.raises(_Incomplete):
            _parse(buf[:cut], 0)


@pytest.mark.redis
async def test_many_calls_in_flight_get_their_own_replies_and_errors() -> None:
    conn = PipelinedConnection()
    try:
        key = "test:resp:counter"
        await conn.call("DEL", key)
        replies = await asyncio.gather(*(conn.call("INCR", key) for _ in range(500)),
                                       conn.call("NOSUCHCOMMAND"), return_exceptions=True)
        assert replies[:500] == list(range(1, 501))
        assert isinstance(replies[500], ResponseError)
        assert await conn.call("GET", key) == "500"
        await conn.call("DEL", key)
    finally:
        await conn.aclose()


@pytest.mark.redis
async def test_a_lost_connection_fails_the_calls_in_flight_and_the_next_call_reconnects() -> None:
    conn = PipelinedConnection()
    admin = redis.from_url(REDIS_URL)
    try:
        client_id = await conn.call("CLIENT", "ID")
        # Whether the BLPOP reaches Redis before the kill or not, it never gets a reply: it must fail.
        blocked = asyncio.ensure_future(conn.call("BLPOP", "test:resp:never", 0))
        await admin.client_kill_filter(_id=client_id)
        with pytest.raises(RedisConnectionError):
            await blocked
        assert await conn.call("PING") == "PONG"
        assert await conn.call("CLIENT", "ID") != client_id
    finally:
        await conn.aclose()
        await admin.aclose()


def test_pack_gives_the_same_bytes_for_text_and_for_other_arguments() -> None:
    assert pack(("FCALL", "f", 0, "batch", 2.5, "h\u00e9")) == (
        b"*6\r\n$5\r\nFCALL\r\n$1\r\nf\r\n$1\r\n0\r\n$5\r\nbatch\r\n$3\r\n2.5\r\n$3\r\nh\xc3\xa9\r\n")
    assert pack(("SET", "k", "v")) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
