"""Reading a bulk load's ``HSET`` replies by counting them (``RespConnection.integers``)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from dmp.resp import RespConnection, command


def hsets(count: int, start: int = 0) -> bytes:
    return b"".join(
        command(b"HSET", b"h%d" % (n % 7), b"f%d" % n, b"v") for n in range(start, start + count)
    )


async def test_integer_replies_are_counted_across_reads_and_batches(redis: Redis) -> None:
    async with RespConnection(redis) as conn:
        conn.send(hsets(30_000))
        conn.send(hsets(20_000, 30_000))
        await conn.integers(30_000)
        await conn.integers(20_000)
        # Replies taken by count leave the connection in step for parsed ones.
        assert await conn.execute(command(b"HLEN", b"h0"), 1) == [50_000 // 7 + 1]
    assert await redis.hget(b"h%d" % (49_998 % 7), b"f49998") == b"v"


async def test_an_error_among_integer_replies_is_raised(redis: Redis) -> None:
    await redis.set(b"text", b"x")
    async with RespConnection(redis) as conn:
        conn.send(hsets(5000) + command(b"HSET", b"text", b"f", b"v") + hsets(10))
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await conn.integers(5011)
        assert await conn.execute(command(b"PING"), 1) == [b"PONG"]
