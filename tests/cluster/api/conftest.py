"""The advertiser API's own tests, run again on the cluster: ``redis`` and ``redis_url``
name the session's 3-master, 3-replica cluster here, everything else is the same."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tests.dsp.api.conftest import alice, api_client, bob

__all__ = ["alice", "api_client", "bob"]  # the API suite's fixtures, over the cluster


@pytest.fixture
def redis_url(cluster_url: str) -> str:
    return cluster_url


@pytest.fixture
async def redis(cluster_redis: Redis) -> AsyncIterator[Redis]:
    yield cluster_redis
