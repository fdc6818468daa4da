"""The bid path's pipelined Redis connection: its URLs, and a Redis on the same host through
its Unix socket (a real redis-server listening on both a free port and a socket)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from infra.embedded_redis import EmbeddedRedis
from infra.redis_pipe import Address, RedisPipe, Reply, command


def test_tcp_and_unix_urls_are_read_as_redis_py_reads_them() -> None:
    assert Address.from_url("redis://:s3cret@10.0.0.5:6380/2") == Address(
        "10.0.0.5", 6380, 2, None, "s3cret"
    )
    assert Address.from_url("redis://127.0.0.1") == Address("127.0.0.1", 6379, 0, None, None)
    unix = Address.from_url("unix://bidder:pw%40rd@/run/redis/redis.sock?db=3")
    assert unix == Address("", 0, 3, "bidder", "pw@rd", "/run/redis/redis.sock")
    assert unix.setup() == [
        command(b"AUTH", b"bidder", b"pw@rd"),
        command(b"SELECT", b"3"),
    ]
    assert Address.from_url("unix:///tmp/r.sock").db == 0


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("unix://", "names the socket's path"),
        ("unix:///tmp/r.sock?db=two", "db must be a number"),
        ("https://127.0.0.1:6379", "redis:// or unix://"),
    ],
)
def test_a_url_it_cannot_use_is_refused_with_why(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        Address.from_url(url)


@pytest.fixture(scope="module")
def socket_redis() -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(unix_socket=True)
    with server:
        yield server


def test_an_embedded_redis_without_a_socket_has_no_unix_url() -> None:
    with pytest.raises(RuntimeError, match="no Unix socket"):
        _ = EmbeddedRedis().unix_url


async def test_commands_through_the_unix_socket_are_answered_in_order(
    socket_redis: EmbeddedRedis,
) -> None:
    assert socket_redis.unix_url.startswith("unix:///") and socket_redis.unix_url.endswith("?db=0")
    pipe = RedisPipe(socket_redis.unix_url, name="pipe-test")
    await pipe.connect()
    replies: list[Reply] = []
    done = asyncio.get_running_loop().create_future()

    def keep(reply: Reply) -> None:
        replies.append(reply)
        if len(replies) == 4:
            done.set_result(None)

    try:
        pipe.call(command(b"SET", b"pipe:k", b"v1"), keep)
        pipe.call(command(b"GET", b"pipe:k"), keep)
        pipe.call(command(b"CLIENT", b"INFO"), keep)
        pipe.call(command(b"DEL", b"pipe:k"), keep)
        await asyncio.wait_for(done, 5)
    finally:
        await pipe.close()
    assert replies[:2] == [b"OK", b"v1"] and replies[3] == 1
    info = replies[2]
    assert isinstance(info, bytes)
    # Redis lists a Unix socket client by the socket's path, and this one by its name.
    assert f"addr={socket_redis.socket_path}".encode() in info and b"name=pipe-test" in info
