"""From auction to conversion: the ADX simulator against the real bidder on a real socket.

The simulator plays the browser up to the click and does not follow the redirect, so its
tracking calls go through a small recording proxy (the bidder's public URL) that keeps the
click redirects' landing URLs; the test then plays the advertiser's landing page, posting
back the click id each landing URL carries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import Application, Request
from redis.asyncio import Redis

from adx_mock.population import generate_population
from adx_mock.runner import RunConfig, run
from dmp.ingest import ingest_records
from dmp.taxonomy import Taxonomy
from dsp.app import LIVE, create_app
from dsp.campaigns.store import save_campaigns
from dsp.demo_campaigns import demo_campaigns
from dsp.reporting.report import build_report
from infra.embedded_redis import free_port
from infra.settings import Settings

Client = TestClient[Request, Application]
LANDINGS = web.AppKey("landings", list[str])
TARGET = web.AppKey("target", str)
SESSION = web.AppKey("session", aiohttp.ClientSession)


async def _forward(request: web.Request) -> web.Response:
    url = request.app[TARGET] + str(request.rel_url)
    async with request.app[SESSION].get(url, allow_redirects=False) as answer:
        body = await answer.read()
        headers = {k: v for k, v in answer.headers.items() if k in ("Location", "Content-Type")}
    if request.path == "/click" and "Location" in headers:
        request.app[LANDINGS].append(headers["Location"])
    return web.Response(status=answer.status, body=body, headers=headers)


@pytest.fixture
async def proxied(redis: Redis, redis_url: str) -> AsyncIterator[tuple[Client, list[str]]]:
    """The bidder, whose tracking links point at a recording proxy in front of it."""
    proxy_port, dsp_port = free_port(), free_port()
    settings = Settings(
        redis_url=redis_url, port=dsp_port, signing_key=b"e2e-key", campaign_refresh_s=0.05,
        public_url=f"http://127.0.0.1:{proxy_port}",
    )  # fmt: skip
    dsp = TestClient(TestServer(create_app(settings), host="127.0.0.1", port=dsp_port))
    await dsp.start_server()
    proxy = web.Application()
    proxy[LANDINGS], proxy[TARGET] = [], f"http://127.0.0.1:{dsp_port}"
    proxy.router.add_get("/{tail:.*}", _forward)
    # Bounded both ways, so a stuck call fails this test instead of hanging its teardown.
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        proxy[SESSION] = session
        runner = web.AppRunner(proxy, shutdown_timeout=5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", proxy_port).start()
        try:
            yield dsp, proxy[LANDINGS]
        finally:
            await runner.cleanup()
            await dsp.close()


async def test_auction_to_click_to_conversion_shows_in_the_report(
    proxied: tuple[Client, list[str]], redis: Redis
) -> None:
    dsp, landings = proxied
    taxonomy = Taxonomy.default()
    population = list(generate_population(1500, 5, taxonomy))
    await ingest_records(redis, population, taxonomy=taxonomy, mode="merge", now=None)
    await save_campaigns(redis, demo_campaigns())
    await dsp.app[LIVE].refresh(redis)
    config = RunConfig(
        dsp_urls=[str(dsp.make_url("/openrtb2/bid"))], population=population, qps=300,
        duration_s=None, max_requests=300, tmax_ms=500, click_rate=0.3, seed=5,
    )  # fmt: skip
    summary = await run(config, progress=False)
    assert summary.errors == 0 and summary.clicks >= 3
    assert len(landings) == summary.clicks
    click_ids = [dict(parse_qsl(urlsplit(url).query))["dsp_click"] for url in landings]
    # the advertiser's landing page reports three orders, one of them twice
    values = [12_000_000, 8_000_000, 5_000_000]
    for n, value in enumerate(values):
        response = await dsp.get(f"/conv?click={click_ids[n]}&order=order-{n}&value={value}")
        assert response.status == 200 and (await response.json())["attributed"]
    repeat = await dsp.get(f"/conv?click={click_ids[0]}&order=order-0&value={values[0]}")
    assert (await repeat.json())["duplicate"]
    total = (await build_report(redis, ()))[0]
    assert (total.clicks, total.click_conversions) == (summary.clicks, 3)
    assert total.conversion_value_micros == sum(values)
    assert total.cpa == pytest.approx(total.spend_micros / 3 / 1_000_000)
    assert total.roas == pytest.approx(sum(values) / total.spend_micros)
    by_campaign = await build_report(redis, ("campaign", "creative", "day"))
    assert sum(row.conversions for row in by_campaign) == 3
