from __future__ import annotations

import pytest

from adx_mock.errors import ConfigError
from adx_mock.population import generate_population
from adx_mock.runner import RunConfig, run
from dmp.taxonomy import Taxonomy

from .fake_dsp import FakeDsp, serve

REQUESTS = 50


@pytest.fixture(scope="module")
def population() -> list[dict[str, object]]:
    return list(generate_population(200, 11, Taxonomy.default()))


def _floors(dsp: FakeDsp) -> dict[tuple[str, str], float]:
    """(auction id, imp id) -> floor, from the requests the DSP saw."""
    floors: dict[tuple[str, str], float] = {}
    for request in dsp.requests:
        imps = request["imp"]
        assert isinstance(imps, list)
        for imp in imps:
            floors[(str(request["id"]), imp["id"])] = imp["bidfloor"]
    return floors


def _config(urls: list[str], population: list[dict[str, object]], **kw: object) -> RunConfig:
    settings: dict[str, object] = {
        "qps": 500.0,
        "duration_s": None,
        "max_requests": REQUESTS,
        "tmax_ms": 300,
        "auction": "second",
        "seed": 5,
        "click_rate": 1.0,
        "render_rate": 1.0,
    }
    settings.update(kw)
    return RunConfig(dsp_urls=urls, population=population, **settings)  # type: ignore[arg-type]


async def test_higher_bidder_wins_at_second_price(population: list[dict[str, object]]) -> None:
    async with (
        serve(FakeDsp("high", price=5.0)) as high,
        serve(FakeDsp("low", price=3.0, no_bid_every=3)) as low,
    ):
        summary = await run(_config([high.bid_url, low.bid_url], population), progress=False)

    floors = _floors(high)
    imps = len(floors)
    low_bid = set(low.bid_request_ids)
    assert summary.requests == REQUESTS == len(high.requests) == len(low.requests)
    assert summary.wins == imps
    assert summary.per_dsp[high.bid_url]["wins"] == imps
    assert summary.per_dsp[low.bid_url]["wins"] == 0
    assert summary.per_dsp[high.bid_url]["bids"] == REQUESTS
    assert summary.per_dsp[low.bid_url]["no_bids"] == REQUESTS // 3
    assert summary.per_dsp[low.bid_url]["bids"] == REQUESTS - REQUESTS // 3
    assert summary.no_bids == REQUESTS // 3
    assert summary.timeouts == summary.errors == 0

    wins = high.hits("win")
    assert len(wins) == imps
    expected_spend = 0.0
    for win in wins:
        runner_up = 3.0 if win["a"] in low_bid else floors[(win["a"], win["i"])]
        expected = runner_up + 0.01
        assert win["p"] == f"{expected:.4f}"
        expected_spend += expected / 1000
    assert summary.spend == pytest.approx(expected_spend, abs=1e-6)

    assert len(high.hits("imp")) == len(high.hits("bill")) == imps == summary.impressions
    assert len(high.hits("click")) == imps == summary.clicks
    assert {hit["a"] for hit in high.hits("click")} == {hit["a"] for hit in wins}
    losses = low.hits("loss")
    assert len(losses) == sum(1 for (auction_id, _) in floors if auction_id in low_bid)
    assert all(loss["r"] == "102" for loss in losses)
    assert not high.hits("loss") and not low.hits("win") and not low.hits("imp")
    assert summary.status["click"] == {"302": imps}
    assert summary.latency_ms["p50"] is not None and summary.latency_ms["max"] is not None
    assert summary.latency_ms["p50"] <= summary.latency_ms["max"]

    assert high.headers[0]["x-openrtb-version"] == "2.6"
    assert high.headers[0]["Content-Type"] == "application/json"


async def test_first_price_clears_at_the_bid(population: list[dict[str, object]]) -> None:
    async with serve(FakeDsp("high", price=5.0)) as high, serve(FakeDsp("low", price=3.0)) as low:
        config = _config([high.bid_url, low.bid_url], population, auction="first")
        summary = await run(config, progress=False)
    assert {win["p"] for win in high.hits("win")} == {"5.0000"}
    assert all(request["at"] == 1 for request in high.requests)
    assert summary.spend == pytest.approx(summary.impressions * 5.0 / 1000)


async def test_late_answers_are_timeouts(population: list[dict[str, object]]) -> None:
    requests = 10
    async with (
        serve(FakeDsp("slow", price=9.0, delay_s=0.5)) as slow,
        serve(FakeDsp("fast", price=1.0)) as fast,
    ):
        config = _config(
            [slow.bid_url, fast.bid_url], population, tmax_ms=80, max_requests=requests
        )
        summary = await run(config, progress=False)
    assert summary.per_dsp[slow.bid_url]["timeouts"] == requests
    assert summary.per_dsp[slow.bid_url]["wins"] == 0
    assert summary.timeouts == requests
    assert summary.status["bid"]["timeout"] == requests
    assert not slow.hits("win")
    # Only the fast bid counted: it clears one cent above the floor, or at its own price.
    floors = _floors(fast)
    for win in fast.hits("win"):
        expected = min(max(floors[(win["a"], win["i"])], 0.0) + 0.01, 1.0)
        assert win["p"] == f"{expected:.4f}"
    assert summary.wins == len(fast.hits("win"))


async def test_errors_and_render_rate(population: list[dict[str, object]]) -> None:
    async with (
        serve(FakeDsp("broken", status=200, body=b"{not json")) as broken,
        serve(FakeDsp("failing", status=500)) as failing,
    ):
        config = _config([broken.bid_url, failing.bid_url], population, max_requests=8)
        summary = await run(config, progress=False)
    assert summary.per_dsp[broken.bid_url]["errors"] == 8
    assert summary.per_dsp[failing.bid_url]["errors"] == 8
    assert summary.errors == 16 and summary.bids == summary.wins == 0
    assert summary.status["bid"] == {"200": 8, "500": 8}


async def test_no_render_means_no_impressions(population: list[dict[str, object]]) -> None:
    async with serve(FakeDsp("only", price=4.0)) as only:
        config = _config([only.bid_url], population, render_rate=0.0, max_requests=10)
        summary = await run(config, progress=False)
    assert summary.wins == len(only.hits("win")) > 0
    assert summary.impressions == summary.clicks == 0
    assert not only.hits("imp") and not only.hits("click") and not only.hits("bill")
    assert summary.spend == 0.0


async def test_unreachable_dsp_counts_errors(population: list[dict[str, object]]) -> None:
    async with serve(FakeDsp("gone")) as gone:
        url = gone.bid_url
    summary = await run(_config([url], population, max_requests=3), progress=False)
    assert summary.errors == 3
    assert summary.to_dict()["per_dsp"] == {url: summary.per_dsp[url]}


def test_config_is_checked(population: list[dict[str, object]]) -> None:
    with pytest.raises(ConfigError, match="qps"):
        RunConfig(dsp_urls=["http://127.0.0.1:1/bid"], population=population, qps=0)
    with pytest.raises(ConfigError, match="auction"):
        RunConfig(dsp_urls=["http://127.0.0.1:1/bid"], population=population, auction="third")
    with pytest.raises(ConfigError, match="dsp_urls"):
        RunConfig(dsp_urls=[], population=population)
    config = RunConfig(
        dsp_urls=["http://127.0.0.1:1/bid"], population=population, qps=100, duration_s=2.5
    )
    assert config.total_requests == 250
