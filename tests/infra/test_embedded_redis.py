from __future__ import annotations

import os

import pytest
from redis import Redis

from infra.embedded_redis import EmbeddedRedis, redis_url_or_embedded


def test_starts_on_a_free_port_and_stops() -> None:
    server = EmbeddedRedis()
    url = server.start()
    pid = server.pid
    assert pid is not None
    try:
        with Redis.from_url(url) as client:
            assert client.ping()
    finally:
        server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    server.stop()  # a second stop is harmless


def test_two_servers_do_not_share_a_port() -> None:
    with EmbeddedRedis() as first, EmbeddedRedis() as second:
        assert first != second


def test_given_url_starts_nothing() -> None:
    with redis_url_or_embedded("redis://127.0.0.1:1/0") as url:
        assert url == "redis://127.0.0.1:1/0"


def test_stops_when_the_block_raises() -> None:
    server = EmbeddedRedis()
    with pytest.raises(KeyboardInterrupt), server:
        assert server.pid is not None
        pid = server.pid
        os.kill(pid, 0)
        raise KeyboardInterrupt
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
