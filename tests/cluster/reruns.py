"""Fixtures for re-running a single-server suite on the cluster: its ``redis`` and
``redis_url`` name the session's 3-master, 3-replica cluster instead (a conftest imports
them; ``dsp_client`` and the rest of that suite's fixtures follow)."""

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
