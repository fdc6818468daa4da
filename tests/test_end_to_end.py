"""The whole loop: DMP ingest, campaigns, bidder, exchange simulator, tracking, report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request
from redis.asyncio import Redis

from adx_mock.population import generate_population
from adx_mock.runner import RunConfig, run
from dmp.ingest import ingest_records
from dmp.taxonomy import Taxonomy
from dsp.app import LIVE
from dsp.campaigns.store import save_campaigns
from dsp.demo_campaigns import demo_campaigns
from dsp.reporting.report import build_report
from infra import keys

Client = TestClient[Request, Application]


async def test_simulated_auctions_are_counted_and_charged_exactly(
    dsp_client: Client, redis: Redis
) -> None:
    taxonomy = Taxonomy.default()
    population = list(generate_population(2000, 3, taxonomy))
    await ingest_records(redis, population, taxonomy=taxonomy, mode="merge", now=None)
    await save_campaigns(redis, demo_campaigns())
    await dsp_client.app[LIVE].refresh(redis)
    config = RunConfig(
        dsp_urls=[str(dsp_client.make_url("/openrtb2/bid"))],
        population=population,
        qps=300,
        duration_s=None,
        max_requests=400,
        tmax_ms=500,
        click_rate=0.2,
        seed=3,
    )
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
    # Second price never charges above our bid: at most the highest CPM / 1000 per win.
    highest_cpm = max(c["bid"]["cpm_micros"] for c in demo_campaigns())
    assert total.spend_micros <= total.wins * highest_cpm // 1000


def test_demo_runs_end_to_end_and_stops_what_it_started(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dsp.cli", "demo", "--devices", "3000", "--auctions", "600",
         "--qps", "300", "--no-progress"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "CTR report by campaign" in result.stdout
    assert "TOTAL" in result.stdout
    pids = [int(pid) for pid in result.stdout.rsplit("pids", 1)[1].split()]
    assert len(pids) == 2  # the embedded redis-server and the bidder
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
