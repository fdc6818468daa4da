"""A real Redis Cluster for the tests marked ``cluster``: 3 masters, 3 replicas, loopback.

Started once per session from the redis-server the embedded default uses
(``infra.cluster.LocalCluster``, about two seconds), flushed before each test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from infra.cluster import LocalCluster
from infra.redis_client import redis_client


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[LocalCluster]:
    cluster = LocalCluster(masters=3, replicas=1, node_timeout_ms=1000)
    with cluster:
        yield cluster


@pytest.fixture(scope="session")
def cluster_url(local_cluster: LocalCluster) -> str:
    return local_cluster.url


@pytest.fixture
async def cluster_redis(cluster_url: str) -> AsyncIterator[Redis]:
    """A cluster client on an empty cluster (every master flushed)."""
    client = redis_client(cluster_url)
    await client.flushall()
    try:
        yield client
    finally:
        await client.aclose()
