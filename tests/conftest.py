"""Shared fixtures: one real redis-server per test session on a free port, flushed per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import Application, Request
from redis.asyncio import Redis

from dsp.app import create_app
from infra import compiled
from infra.embedded_redis import EmbeddedRedis, free_port
from infra.settings import Settings


def pytest_configure(config: pytest.Config) -> None:
    # A compiled module older than its source would be tested in place of the source.
    if stale := compiled.stale():
        raise pytest.UsageError(
            f"compiled modules older than their source: {', '.join(stale)}; "
            "`make compile` (or `python -m infra.compiled build`) compiles them again, "
            "`python -m infra.compiled clean` runs the tests interpreted"
        )


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with EmbeddedRedis() as url:
        yield url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def dsp_client(
    redis: Redis, redis_url: str
) -> AsyncIterator[TestClient[Request, Application]]:
    """The bidder app on a real loopback socket, against the session's Redis."""
    port = free_port()  # known before start, so the tracking links in bids point back here
    settings = Settings(
        redis_url=redis_url, port=port, signing_key=b"test-key", campaign_refresh_s=0.05
    )
    server = TestServer(create_app(settings), host="127.0.0.1", port=port)
    client = TestClient(server)
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
