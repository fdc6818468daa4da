"""The platform on a real 3-master, 3-replica Redis Cluster: ingest, bids, notices, report."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from adx_mock.population import generate_population
from adx_mock.runner import RunConfig, run
from dmp.ingest import ingest_records
from dmp.taxonomy import Taxonomy
from dsp.app import LIVE, METRICS
from dsp.campaigns.store import save_campaigns
from dsp.demo_campaigns import demo_campaigns
from dsp.reporting.report import build_report
from dsp.serve import Worker, start_worker
from infra import keys
from infra.embedded_redis import free_port
from infra.settings import Settings

pytestmark = pytest.mark.cluster


@pytest.fixture
async def bidder(cluster_redis: Redis, cluster_url: str) -> AsyncIterator[Worker]:
    """``dsp serve``'s worker (bid front and all) on the cluster."""
    # The load generator shares this event loop: its own work must not count as the lag
    # the bid front sheds load at (the default 5 ms), or the exact counts below would vary.
    settings = Settings(
        redis_url=cluster_url, port=free_port(), signing_key=b"test-key", campaign_refresh_s=0.05,
        shed_lag_ms=30,
    )  # fmt: skip
    worker = await start_worker(settings)
    try:
        yield worker
    finally:
        await worker.stop()


async def test_simulated_auctions_on_a_cluster_are_counted_and_charged_exactly(
    bidder: Worker, cluster_redis: Redis
) -> None:
    redis = cluster_redis
    taxonomy = Taxonomy.default()
    population = list(generate_population(2000, 3, taxonomy))
    loaded = await ingest_records(redis, population, taxonomy=taxonomy, mode="merge")
    assert loaded == len(population)
    await save_campaigns(redis, demo_campaigns())
    await bidder.app[LIVE].refresh(redis)
    url = f"http://127.0.0.1:{bidder.settings.port}/openrtb2/bid"
    config = RunConfig(
        dsp_urls=[url], population=population, qps=300, duration_s=None, max_requests=400,
        tmax_ms=500, click_rate=0.2, seed=3,
    )  # fmt: skip
    summary = await run(config, progress=False)
    assert summary.errors == 0
    assert summary.wins > 100 and summary.clicks > 0
    total = (await build_report(redis, ()))[0]
    assert (total.wins, total.impressions, total.clicks) == (
        summary.wins,
        summary.impressions,
        summary.clicks,
    )
    spent = [int(await redis.get(keys.campaign_spent(c["id"])) or 0) for c in demo_campaigns()]
    assert sum(spent) == total.spend_micros > 0
    counters = bidder.app[METRICS].counters
    assert counters["cluster_lookups"] > 0
