"""The single-server tests of the DMP API, run again on the cluster: devices, erasure,
behaviour events, audiences (expressions, ID lists, algebra, reverse analysis, owners).
(The payload validation tests touch no Redis: not repeated.)"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import Application, Request
from redis.asyncio import Redis

from dmp.app import create_app
from dmp.audience_build import bump_version
from dmp.ingest import ingest_records
from dmp.scene_rules import SceneLibrary
from dmp.scene_writer import SceneWriter
from dmp.taxonomy import Taxonomy
from infra.embedded_redis import free_port
from infra.settings import Settings
from tests.dmp import test_api, test_audience_api, test_scene_writer

pytestmark = pytest.mark.cluster
Client = TestClient[Request, Application]
Test = Callable[[Client, Redis], Awaitable[None]]
DEVICES: list[Test] = [
    test_api.test_api_needs_a_known_token_with_the_right_scope,
    test_api.test_a_device_written_through_the_api_reads_back,
    test_api.test_behaviour_events_become_scene_tags_on_the_device,
]
AUDIENCES: list[Test] = [
    test_audience_api.test_audiences_from_expressions_ids_and_algebra,
    test_audience_api.test_reverse_analysis_as_json_table_and_png,
    test_audience_api.test_another_owner_gets_404_and_cannot_change_anything,
    test_audience_api.test_created_audiences_are_published_for_the_bidder,
]


async def _client(url: str) -> Client:
    client = TestClient(TestServer(create_app(Settings(redis_url=url)), port=free_port()))
    await client.start_server()
    return client


@pytest.fixture
async def dmp_api(cluster_redis: Redis, cluster_url: str) -> AsyncIterator[Client]:
    client = await _client(cluster_url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def audience_api(cluster_redis: Redis, cluster_url: str) -> AsyncIterator[Client]:
    population = test_audience_api.population()
    await ingest_records(cluster_redis, population, taxonomy=Taxonomy.default(), mode="replace")
    await bump_version(cluster_redis)
    client = await _client(cluster_url)
    try:
        yield client
    finally:
        await client.close()


@pytest.mark.parametrize("test", DEVICES, ids=lambda test: test.__name__)
async def test_devices_on_a_cluster(test: Test, dmp_api: Client, cluster_redis: Redis) -> None:
    await test(dmp_api, cluster_redis)


@pytest.mark.parametrize("test", AUDIENCES, ids=lambda test: test.__name__)
async def test_audiences_on_a_cluster(
    test: Test, audience_api: Client, cluster_redis: Redis
) -> None:
    await test(audience_api, cluster_redis)


@pytest.mark.parametrize("erase_by", ["raw", "md5"])
async def test_erasure_on_a_cluster(dmp_api: Client, cluster_redis: Redis, erase_by: str) -> None:
    await test_api.test_erasure_leaves_nothing_of_the_device(dmp_api, cluster_redis, erase_by)


@pytest.mark.parametrize(
    "test",
    [
        test_scene_writer.test_an_alias_resolves_to_the_primary_digest,
        test_scene_writer.test_concurrent_events_for_one_device_lose_nothing,
        test_scene_writer.test_a_batch_of_events_for_many_devices,
    ],
    ids=lambda test: test.__name__,
)
async def test_scene_writer_on_a_cluster(
    test: Callable[[Redis, SceneWriter], Awaitable[None]], cluster_redis: Redis
) -> None:
    writer = SceneWriter(cluster_redis, SceneLibrary.default(), Taxonomy.default())
    await test(cluster_redis, writer)
