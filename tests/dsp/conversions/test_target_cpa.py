"""issue 12, item 4: target-CPA campaigns, their price and their pCVR model.

The price is target CPA x pCTR x pCVR x 1000, capped at the campaign's max CPM; the pCVR
comes from an in-process model file loaded like the CTR model; without one, a target-CPA
line does not bid. The API accepts and shows the strategy, and refuses bad values with 422.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import Application, Request
from redis.asyncio import Redis

from dmp.profile import Profile
from dsp.app import LIVE, create_app
from dsp.bidder.decide import Moment, decide
from dsp.bidder.openrtb import parse_bid_request
from dsp.campaigns.index import PRIOR_CTR, CampaignIndex, bid_price_micros
from dsp.campaigns.live import LiveCampaigns
from dsp.campaigns.model import BidStrategy, Campaign
from dsp.campaigns.store import load_campaigns, save_campaigns
from dsp.campaigns.validation import campaign_from_dict
from dsp.ctr.features import Row
from dsp.ctr.model import Design, train
from dsp.ctr.predictor import CtrPredictor
from dsp.errors import InvalidCampaign
from infra.embedded_redis import free_port
from infra.settings import Settings
from tests.dsp.api.conftest import Api, Client, campaign_body, start, tenant
from tests.dsp.ctr.test_ctr import SEDAN, SUV, TAXONOMY, request, trained_model
from tests.dsp.factories import banner_creative, bid_request, campaign, store_profile

USD = {"USD": Decimal(1)}
TARGET_CPA = 2_000_000  # $2 a conversion
CAP = 6_000_000  # $6 CPM


def cpa_payload(campaign_id: str = "cpa", **bid: Any) -> dict[str, Any]:
    payload = campaign(campaign_id, tags="interest.automotive", creatives=[banner_creative("cr1")])
    payload["bid"] = {
        "strategy": "target_cpa",
        "target_cpa_micros": TARGET_CPA,
        "max_cpm_micros": CAP,
        **bid,
    }
    return payload


def cpa_campaign(**bid: Any) -> Campaign:
    return campaign_from_dict(cpa_payload(**bid))


def cvr_model(path: Path, suv_cvr: float, sedan_cvr: float = 0.01) -> None:
    """A pCVR model file (label "conversion") where SUV clicks convert at ``suv_cvr``."""
    rows, labels = [], []
    rng = random.Random(9)
    for _ in range(20_000):
        suv = rng.random() < 0.5
        rows.append(Row("cr1", (SUV,) if suv else (SEDAN,), ("IAB2",), "ios", 300, 250))
        labels.append(int(rng.random() < (suv_cvr if suv else sedan_cvr)))
    model = train(Design.build(rows, labels, 14))
    model.meta["label"] = "conversion"
    model.save(path)


def loaded(path: Path, name: str) -> CtrPredictor:
    predictor = CtrPredictor(path, TAXONOMY, name=name)
    assert predictor.maybe_reload() is True
    return predictor


# -- the campaign model -----------------------------------------------------------------


def test_a_target_cpa_campaign_is_validated_and_stored_with_its_target() -> None:
    found = cpa_campaign()
    assert found.strategy is BidStrategy.TARGET_CPA
    assert (found.target_cpa_micros, found.cpm_micros, found.target_cpc_micros) == (
        TARGET_CPA, CAP, 0,
    )  # fmt: skip
    for missing, field in (("target_cpa_micros", "bid.target_cpa_micros"),
                           ("max_cpm_micros", "bid.max_cpm_micros")):  # fmt: skip
        payload = cpa_payload()
        del payload["bid"][missing]
        with pytest.raises(InvalidCampaign) as caught:
            campaign_from_dict(payload)
        assert caught.value.field == field
    with pytest.raises(InvalidCampaign) as caught:
        cpa_campaign(target_cpa_micros=0)
    assert caught.value.field == "bid.target_cpa_micros"


# -- the price --------------------------------------------------------------------------


def test_the_price_is_target_cpa_times_pctr_times_pcvr_capped_and_no_pcvr_is_no_bid() -> None:
    found = cpa_campaign()
    # $2 x 1 % x 20 % = $0.004 an impression = $4 CPM
    assert bid_price_micros(found, 0.01, 0.2) == 4_000_000
    assert bid_price_micros(found, 0.01, 0.5) == CAP  # $10 CPM, capped at $6
    assert bid_price_micros(found, 0.0, 0.5) == 0
    assert bid_price_micros(found, 0.01, None) == 0  # no pCVR model: no price, no bid
    assert bid_price_micros(found) == 0
    # The other strategies keep their prices.
    cpc = campaign_from_dict(
        {
            **cpa_payload(),
            "bid": {"strategy": "target_cpc", "target_cpc_micros": 100_000, "max_cpm_micros": CAP},
        }  # fmt: skip
    )
    assert bid_price_micros(cpc, 0.01) == 1_000_000
    assert bid_price_micros(cpc, 0.01, 0.5) == 1_000_000  # pCVR is no business of target CPC


def test_without_a_pcvr_model_a_target_cpa_line_does_not_bid(tmp_path: Path) -> None:
    index = CampaignIndex.build([cpa_campaign()], TAXONOMY)
    assert index.lines[0].price_micros == 0
    profile = Profile(tags={SUV: 100})
    assert decide(request(), profile, index, Moment(), {}) == []
    trained_model(tmp_path / "ctr.npz", suv_clicks=0.02)
    index.ctr = loaded(tmp_path / "ctr.npz", "ctr")  # a CTR model alone is not enough
    assert decide(request(), profile, index, Moment(), {}) == []
    # A pCVR file that cannot be read leaves no model: still no bid.
    (tmp_path / "cvr.npz").write_bytes(b"not a model")
    broken = CtrPredictor(tmp_path / "cvr.npz", TAXONOMY, name="cvr")
    assert broken.maybe_reload() is False
    index.cvr = broken
    assert decide(request(), profile, index, Moment(), {}) == []


def test_a_target_cpa_bid_prices_each_impression_with_pctr_and_pcvr(tmp_path: Path) -> None:
    trained_model(tmp_path / "ctr.npz", suv_clicks=0.02)
    cvr_model(tmp_path / "cvr.npz", suv_cvr=0.08)
    ctr, cvr = loaded(tmp_path / "ctr.npz", "ctr"), loaded(tmp_path / "cvr.npz", "cvr")
    index = CampaignIndex.build([cpa_campaign()], TAXONOMY)
    index.cvr = cvr
    bid = request(floor=0.01)
    line = index.lines[0]
    # Without a CTR model the pCTR is the prior, as for target CPC.
    p_cvr = cvr.predict(line, {SUV: 100}, bid, bid.imps[0])
    assert p_cvr is not None and 0.06 < p_cvr < 0.1
    (chosen,) = decide(bid, Profile(tags={SUV: 100}), index, Moment(), {})
    assert chosen.line.price_micros == int(TARGET_CPA * PRIOR_CTR * p_cvr * 1000)

    index.ctr = ctr
    prices = {}
    for tag in (SUV, SEDAN):
        p_ctr = ctr.predict(line, {tag: 100}, bid, bid.imps[0])
        p_cvr = cvr.predict(line, {tag: 100}, bid, bid.imps[0])
        assert p_ctr is not None and p_cvr is not None
        (chosen,) = decide(bid, Profile(tags={tag: 100}), index, Moment(), {})
        expected = min(CAP, int(TARGET_CPA * p_ctr * p_cvr * 1000))
        assert chosen.line.price_micros == expected
        prices[tag] = expected
    # SUV devices click 4x and convert 8x as often: worth far more per impression.
    assert prices[SUV] > 10 * prices[SEDAN]
    # The cap holds: a $1,000 CPA would pay far more than $6 CPM.
    rich = CampaignIndex.build([cpa_campaign(target_cpa_micros=1_000_000_000)], TAXONOMY)
    rich.ctr, rich.cvr = ctr, cvr
    (chosen,) = decide(bid, Profile(tags={SUV: 100}), rich, Moment(), {})
    assert chosen.line.price_micros == CAP


def test_a_click_model_file_is_not_taken_for_a_pcvr_model(tmp_path: Path) -> None:
    trained_model(tmp_path / "ctr.npz", suv_clicks=0.02)  # no label: a click model
    assert CtrPredictor(tmp_path / "ctr.npz", TAXONOMY, name="cvr").maybe_reload() is False
    cvr_model(tmp_path / "cvr.npz", suv_cvr=0.08)
    assert CtrPredictor(tmp_path / "cvr.npz", TAXONOMY, name="ctr").maybe_reload() is False


async def test_live_campaigns_load_and_reload_the_pcvr_model(redis: Redis, tmp_path: Path) -> None:
    await save_campaigns(redis, [cpa_payload()])
    path = tmp_path / "cvr.npz"
    live = LiveCampaigns(TAXONOMY)
    live.cvr = CtrPredictor(path, TAXONOMY, name="cvr")
    await live.refresh(redis)  # no file yet: the campaign is compiled, it just cannot bid
    assert live.index.cvr is live.cvr and len(live.index.lines) == 1
    bid, profile = request(), Profile(tags={SUV: 100})
    assert decide(bid, profile, live.index, live.moment, {}) == []

    cvr_model(path, suv_cvr=0.02)
    await live.refresh(redis)  # the file appeared: bidding within one refresh
    before = decide(bid, profile, live.index, live.moment, {})[0].line.price_micros
    assert before > 0

    cvr_model(path, suv_cvr=0.08)  # retrained while the bidder runs
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    await live.refresh(redis)
    after = decide(bid, profile, live.index, live.moment, {})[0].line.price_micros
    assert after > 2 * before


# -- the advertiser API -----------------------------------------------------------------


@pytest.fixture
async def api(redis: Redis, redis_url: str) -> AsyncIterator[Api]:
    client: Client = await start(Settings(redis_url=redis_url, port=free_port(), signing_key=b"k"))
    try:
        yield Api(client, await tenant(redis, "Carol Leads"))
    finally:
        await client.close()


CPA_BID = {"strategy": "target_cpa", "target_cpa_micros": TARGET_CPA, "max_cpm_micros": CAP}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"bid": {"strategy": "target_cpa", "max_cpm_micros": CAP}}, "bid.target_cpa_micros"),
        ({"bid": {"strategy": "target_cpa", "target_cpa_micros": 1}}, "bid.max_cpm_micros"),
        ({"bid": {**CPA_BID, "target_cpa_micros": 0}}, "bid.target_cpa_micros"),
        ({"bid": {**CPA_BID, "target_cpa_micros": 1.5}}, "bid.target_cpa_micros"),
        ({"bid": {**CPA_BID, "target_cpc_micros": 1}}, "bid.target_cpc_micros"),
        ({"bid": CPA_BID, "click_window_days": 0}, "click_window_days"),
        ({"bid": CPA_BID, "click_window_days": 31}, "click_window_days"),
        ({"bid": CPA_BID, "click_window_days": "7"}, "click_window_days"),
    ],
)
async def test_the_api_refuses_bad_target_cpa_campaigns_with_422(
    api: Api, changes: dict[str, Any], field: str
) -> None:
    creative = await api.creative()
    answer = await api.call("POST", "/campaigns", campaign_body([creative["id"]], **changes))
    assert answer.status == 422, answer.body
    assert answer.body["field"] == field, answer.body
    listed = await api.call("GET", "/campaigns")
    assert listed.body["items"] == []


async def test_the_api_stores_and_shows_a_target_cpa_campaign(api: Api, redis: Redis) -> None:
    creative = await api.creative()
    created = await api.campaign([creative["id"]], bid=CPA_BID, click_window_days=14)
    assert created["bid"] == CPA_BID and created["click_window_days"] == 14
    listed = await api.call("GET", "/campaigns")
    (shown,) = listed.body["items"]
    assert shown["bid"] == CPA_BID and shown["click_window_days"] == 14
    # What bidders compile: the stored payload carries both.
    _, campaigns = await load_campaigns(redis)
    (stored,) = [c for c in campaigns if c.id == created["id"]]
    assert stored.strategy is BidStrategy.TARGET_CPA
    assert (stored.target_cpa_micros, stored.cpm_micros, stored.click_window_days) == (
        TARGET_CPA, CAP, 14,
    )  # fmt: skip
    # A patch to target CPC drops the CPA target (a merge patch: null removes the field).
    patch = {"bid": {"strategy": "target_cpc", "target_cpc_micros": 200_000,
                     "target_cpa_micros": None}}  # fmt: skip
    answer = await api.call("PATCH", f"/campaigns/{created['id']}", patch, If_Match=created["etag"])
    assert answer.status == 200, answer.body
    _, campaigns = await load_campaigns(redis)
    (stored,) = [c for c in campaigns if c.id == created["id"]]
    assert stored.strategy is BidStrategy.TARGET_CPC and stored.target_cpa_micros == 0


# -- the bidder over HTTP -----------------------------------------------------------------


async def test_the_bidder_prices_a_target_cpa_bid_over_http(
    dsp_client: TestClient[Request, Application], redis: Redis, tmp_path: Path
) -> None:
    """A real bid request on a real socket: no bid without a pCVR model; with one, target
    CPA x pCTR x pCVR; the model is the bidder's in-process one (``LiveCampaigns.cvr``)."""
    await store_profile(redis, tags=("interest.automotive.suv",))
    await save_campaigns(redis, [cpa_payload()])
    live = dsp_client.app[LIVE]
    await live.refresh(redis)
    payload = bid_request(floor=0.01)

    async def bid_price() -> float | None:
        response = await dsp_client.post("/openrtb2/bid", data=orjson.dumps(payload))
        if response.status == 204:
            return None
        body = await response.json()
        (bid,) = body["seatbid"][0]["bid"]
        assert bid["cid"] == "cpa"
        return float(bid["price"])

    assert await bid_price() is None  # no pCVR model: a target-CPA campaign does not bid

    trained_model(tmp_path / "ctr.npz", suv_clicks=0.02)
    cvr_model(tmp_path / "cvr.npz", suv_cvr=0.08)
    live.ctr = CtrPredictor(tmp_path / "ctr.npz", TAXONOMY)
    live.cvr = CtrPredictor(tmp_path / "cvr.npz", TAXONOMY, name="cvr")
    await live.refresh(redis)  # what the refresher task does every DSP_CAMPAIGN_REFRESH_S
    price = await bid_price()
    parsed = parse_bid_request(payload, default_tmax_ms=100, max_tmax_ms=1000, fx_per_usd=USD)
    line = live.index.lines[0]
    p_ctr = live.ctr.predict(line, {SUV: 0}, parsed, parsed.imps[0])
    p_cvr = live.cvr.predict(line, {SUV: 0}, parsed, parsed.imps[0])
    assert p_ctr is not None and p_cvr is not None
    assert price is not None and 0 < price < CAP / 1e6
    assert price == pytest.approx(bid_price_micros(line.campaign, p_ctr, p_cvr) / 1e6)


async def test_the_served_app_loads_both_models_named_in_its_settings(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    """``DSP_CTR_MODEL`` and ``DSP_CVR_MODEL`` reach the app: its target-CPA line bids
    without any test reaching into ``LiveCampaigns``."""
    await store_profile(redis, tags=("interest.automotive.suv",))
    await save_campaigns(redis, [cpa_payload()])
    trained_model(tmp_path / "ctr.npz", suv_clicks=0.02)
    cvr_model(tmp_path / "cvr.npz", suv_cvr=0.08)
    port = free_port()
    settings = Settings(
        redis_url=redis_url,
        port=port,
        signing_key=b"test-key",
        campaign_refresh_s=0.05,
        ctr_model=str(tmp_path / "ctr.npz"),
        cvr_model=str(tmp_path / "cvr.npz"),
    )
    client = TestClient(TestServer(create_app(settings), host="127.0.0.1", port=port))
    await client.start_server()
    try:
        live = client.app[LIVE]
        assert live.cvr is not None and live.ctr is not None
        await live.refresh(redis)
        response = await client.post("/openrtb2/bid", data=orjson.dumps(bid_request(floor=0.01)))
        assert response.status == 200
        (bid,) = (await response.json())["seatbid"][0]["bid"]
        assert bid["cid"] == "cpa" and 0 < float(bid["price"]) < CAP / 1e6
    finally:
        await client.close()
