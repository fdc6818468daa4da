from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from redis import Redis

from infra.cluster import BUS_PORT_OFFSET, free_cluster_port
from infra.embedded_redis import EmbeddedRedis, redis_url_or_embedded
from infra.errors import RedisStartError


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


def test_a_server_that_cannot_start_says_why(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, extra_config={"no-such-directive": "1"})
    with pytest.raises(RedisStartError, match="no-such-directive"):
        server.start(attempts=2, timeout_s=5)
    assert server.pid is None


def test_a_cluster_node_port_leaves_its_bus_port_valid_and_free() -> None:
    for _ in range(50):  # ports above 55535 come up about one time in five
        port = free_cluster_port()
        assert port + BUS_PORT_OFFSET <= 65_535
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", port + BUS_PORT_OFFSET))
