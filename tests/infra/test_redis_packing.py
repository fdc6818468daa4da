"""Commands hiredis packs are the bytes redis-py packs, and a command sent that way works."""

from __future__ import annotations

import pytest
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import Connection

from infra.redis_client import HiredisPackedConnection, packed_by_hiredis

COMMANDS: list[tuple[bytes | str | int | float, ...]] = [
    (b"MGET", "dsp:{c:1}:spent", b"dsp:{c:1}:spent:20261122"),
    ("EVALSHA", "f" * 40, 2, "k1", b"k2", 0, -7, 10**18),
    ("HSET", "key", "fi\u00e9ld", "val\x00ue"),
    ("CONFIG GET", "maxmemory"),  # split in two by redis-py: left to it
    ("SET", "x", 1.5),  # a float: left to redis-py
    ("PING",),
]


@pytest.mark.parametrize("args", COMMANDS)
def test_hiredis_packs_the_bytes_redis_py_packs(
    args: tuple[bytes | str | int | float, ...],
) -> None:
    ours = b"".join(HiredisPackedConnection().pack_command(*args))
    theirs = b"".join(Connection().pack_command(*args))
    assert ours == theirs


def test_only_plain_redis_urls_get_the_packed_connection() -> None:
    assert packed_by_hiredis("redis://127.0.0.1:6379/0") == {
        "connection_class": HiredisPackedConnection
    }
    assert packed_by_hiredis("rediss://example.invalid:6380") == {}


async def test_a_pool_of_packed_connections_talks_to_a_real_redis(redis_url: str) -> None:
    pool = BlockingConnectionPool.from_url(redis_url, **packed_by_hiredis(redis_url))
    client = Redis(connection_pool=pool)
    try:
        await client.hset("packing", mapping={"f\u00e9": "v", "n": 3})
        assert await client.hgetall("packing") == {"f\u00e9".encode(): b"v", b"n": b"3"}
        assert await client.mget(["packing-absent", "packing-absent-2"]) == [None, None]
        await client.delete("packing")
    finally:
        await client.aclose()
        await pool.disconnect()
