"""The conversion tests, run again on the cluster: ``redis`` and ``redis_url`` name the
session's 3-master, 3-replica cluster here (``dsp_client`` and the rest follow them)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis


@pytest.fixture
def redis_url(cluster_url: str) -> str:
    return cluster_url


@pytest.fixture
async def redis(cluster_redis: Redis) -> AsyncIterator[Redis]:
    yield cluster_redis
