"""Replay mode: OpenRTB JSON Lines files and the recorded RTBkit auctions of the corpus."""

from __future__ import annotations

import itertools
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request
from redis.asyncio import Redis

from adx_mock.replay import ReplayStats, read_requests, rtbkit_to_openrtb
from adx_mock.runner import RunConfig, run
from dsp.app import LIVE
from dsp.bidder.openrtb import parse_bid_request
from dsp.campaigns.store import save_campaigns
from tests.dsp.factories import banner_creative, campaign

from .fake_dsp import FakeDsp, serve

# ../shared/corpus beside the repository, as in CI; CORPUS_DIR points elsewhere.
CORPUS = Path(
    os.environ.get("CORPUS_DIR") or Path(__file__).resolve().parents[3] / "shared" / "corpus"
)
RTBKIT_LOG = CORPUS / "logs" / "rtbkit-rtbkit__20000-datacratic-auctions.xz"
FX = {"USD": Decimal(1)}


def corpus_requests(n: int) -> list[dict[str, object]]:
    return list(itertools.islice(read_requests(RTBKIT_LOG, "auto", tmax_ms=150), n))


def test_recorded_rtbkit_auctions_convert_to_valid_openrtb() -> None:
    requests = corpus_requests(3000)
    assert len(requests) == 3000
    sizes: set[tuple[int, int]] = set()
    for request in requests:
        parsed = parse_bid_request(request, default_tmax_ms=100, max_tmax_ms=1000, fx_per_usd=FX)
        assert parsed.imps and parsed.tmax_ms == 150
        sizes.update(size for imp in parsed.imps for size in imp.banner_sizes)
    assert {(300, 250), (728, 90), (160, 600)} <= sizes
    first = requests[0]
    assert first["id"] == "22451750-35b6-4001-15e8-a82bbc185161"
    assert first["site"] == {"page": "http://www.theeestory.com/home", "domain": "theeestory.com"}
    device: Any = first["device"]
    assert device["geo"]["country"] == "USA" and device["geo"]["city"] == "Somerset"
    assert device["geo"]["metro"] == "613"
    assert first["imp"] == [
        {"id": "1", "banner": {"format": [{"w": 728, "h": 90}], "w": 728, "h": 90},
         "bidfloor": 0.0, "bidfloorcur": "USD"}
    ]  # fmt: skip
    assert first["ext"]["rtbkit"]["exchange"] == "dblclk_adx"  # type: ignore[index]
    blocked = [r for r in requests if r.get("badv")]
    assert blocked and all(isinstance(d, str) for r in blocked for d in r["badv"])  # type: ignore[attr-defined]


def test_openrtb_json_lines_are_read_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    good = {"id": "r1", "imp": [{"id": "1", "banner": {"w": 300, "h": 250}}], "tmax": 80}
    path.write_bytes(
        orjson.dumps(good) + b"\nnot json\n[1, 2]\n\n" + orjson.dumps(good | {"id": "r2"}) + b"\n"
    )
    stats = ReplayStats()
    requests = list(read_requests(path, stats=stats))
    assert [r["id"] for r in requests] == ["r1", "r2"]
    assert requests[0]["tmax"] == 80  # the file's own tmax is kept
    assert (stats.read, stats.skipped) == (2, 2)


def test_conversion_keeps_floors_and_several_formats() -> None:
    record = {
        "id": "x", "spots": [{"id": "7", "formats": ["300x250", "336x280"], "reservePrice": 1.5}],
        "url": "https://www.news.example/a", "location": {"countryCode": "ZZ"},
    }  # fmt: skip
    converted = rtbkit_to_openrtb(record)
    imp: Any = converted["imp"]
    assert imp[0]["bidfloor"] == 1.5
    assert imp[0]["banner"]["format"] == [{"w": 300, "h": 250}, {"w": 336, "h": 280}]
    assert "country" not in converted["device"]["geo"]  # type: ignore[index]  # no guessing


async def test_replay_runs_recorded_auctions_against_dsps() -> None:
    requests = corpus_requests(60)
    async with serve(FakeDsp("a", price=2.0)) as a, serve(FakeDsp("b", price=1.0)) as b:
        config = RunConfig(
            dsp_urls=[a.bid_url, b.bid_url], population=(), qps=400.0, duration_s=None,
            max_requests=1000, tmax_ms=300, seed=1, click_rate=0.0, render_rate=1.0,
            replay=requests,
        )  # fmt: skip
        summary = await run(config, progress=False)
    assert summary.requests == 60  # the file's length bounds the run
    assert sorted(str(r["id"]) for r in a.requests) == sorted(str(r["id"]) for r in requests)
    imps = sum(len(r["imp"]) for r in requests if isinstance(r["imp"], list))
    assert summary.per_dsp[a.bid_url]["wins"] == imps
    assert summary.per_dsp[b.bid_url]["wins"] == 0


async def test_replay_against_the_real_bidder(
    dsp_client: TestClient[Request, Application], redis: Redis
) -> None:
    sizes = [(300, 250), (728, 90), (160, 600)]
    payload = campaign(
        "us", creatives=[banner_creative(f"cr{w}x{h}", w, h) for w, h in sizes], countries=["USA"]
    )
    await save_campaigns(redis, [payload])
    await dsp_client.app[LIVE].refresh(redis)
    url = str(dsp_client.make_url("/openrtb2/bid"))
    config = RunConfig(
        dsp_urls=[url], population=(), qps=300.0, duration_s=None, max_requests=150,
        tmax_ms=500, seed=1, click_rate=0.0, render_rate=1.0, replay=corpus_requests(150),
    )  # fmt: skip
    summary = await run(config, progress=False)
    assert summary.requests == 150
    assert summary.errors == 0 and summary.status["bid"].get("400", 0) == 0
    assert summary.wins > 100  # US traffic, our sizes, no floors: nearly every one is ours
    assert summary.status["win"].get("200", 0) == summary.wins
