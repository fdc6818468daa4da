from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request
from redis.asyncio import Redis

from dsp.app import LIVE
from dsp.campaigns.store import save_campaigns
from tests.dsp.factories import IDFA, banner_creative, bid_request, campaign, store_profile

# ../shared/corpus beside the repository, as in CI; CORPUS_DIR points elsewhere.
CORPUS = (
    Path(os.environ.get("CORPUS_DIR") or Path(__file__).resolve().parents[3] / "shared" / "corpus")
    / "openrtb"
)
VALID = sorted((CORPUS / "valid").glob("*.json"))
INVALID = sorted((CORPUS / "invalid").glob("*.json"))
Client = TestClient[Request, Application]


async def seed(client: Client, redis: Redis, *campaigns: dict[str, Any]) -> None:
    await save_campaigns(redis, campaigns)
    await client.app[LIVE].refresh(redis)


async def post(client: Client, payload: object) -> tuple[int, dict[str, Any]]:
    response = await client.post("/openrtb2/bid", data=orjson.dumps(payload))
    body = await response.read()
    return response.status, orjson.loads(body) if body else {}


def catch_all_campaigns() -> list[dict[str, Any]]:
    sizes = [(300, 250), (728, 90), (320, 50), (300, 600), (160, 600), (300, 50)]
    video = {
        "id": "v1",
        "format": "video",
        "media_url": "https://cdn.example.com/v1.mp4",
        "landing_url": "https://brand.example.com/v",
        "adomain": ["brand.example.com"],
    }
    native = {
        "id": "n1",
        "format": "native",
        "title": "A title",
        "image_url": "https://cdn.example.com/n1.png",
        "landing_url": "https://brand.example.com/n",
        "adomain": ["brand.example.com"],
    }
    creatives = [banner_creative(f"b{w}x{h}", w, h) for w, h in sizes] + [video, native]
    return [campaign("any", cpm_micros=30_000_000, creatives=creatives)]


def test_the_corpus_is_there() -> None:
    assert len(VALID) >= 18 and len(INVALID) >= 8, f"corpus not found under {CORPUS}"


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
async def test_every_valid_corpus_request_gets_a_bid_or_no_bid_in_time(
    dsp_client: Client, redis: Redis, path: Path
) -> None:
    await seed(dsp_client, redis, *catch_all_campaigns())
    payload = orjson.loads(path.read_bytes())
    started = time.monotonic()
    status, body = await post(dsp_client, payload)
    elapsed_ms = (time.monotonic() - started) * 1000
    assert status in (200, 204)
    assert elapsed_ms < (payload.get("tmax") or 100)
    if status == 200:
        imp_ids = {imp["id"] for imp in payload["imp"]}
        for bid in body["seatbid"][0]["bid"]:
            assert bid["impid"] in imp_ids
            assert "${AUCTION_PRICE}" in bid["nurl"]


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
async def test_every_invalid_corpus_request_is_refused_without_a_bid(
    dsp_client: Client, redis: Redis, path: Path
) -> None:
    await seed(dsp_client, redis, *catch_all_campaigns())
    response = await dsp_client.post("/openrtb2/bid", data=path.read_bytes())
    assert response.status in (400, 204)
    if response.status == 400:
        error = await response.json()
        assert error["field"] and error["reason"]


async def test_a_profile_matching_the_tag_expression_gets_a_full_bid(
    dsp_client: Client, redis: Redis
) -> None:
    await seed(
        dsp_client,
        redis,
        campaign("auto", cpm_micros=3_000_000, tags="interest.automotive AND base.gender.male"),
        campaign("travel", cpm_micros=9_000_000, tags="interest.travel"),
    )
    await store_profile(redis, tags=("interest.automotive.suv", "base.gender.male"))
    status, body = await post(dsp_client, bid_request(floor=1.5))
    assert status == 200
    (bid,) = body["seatbid"][0]["bid"]
    assert (bid["cid"], bid["crid"], bid["impid"]) == ("auto", "cr1", "1")
    assert bid["price"] == 3.0
    assert (bid["w"], bid["h"]) == (300, 250)
    assert bid["adomain"] == ["brand.example.com"]
    assert "/imp?" in bid["adm"] and "/click?" in bid["adm"]
    assert bid["nurl"].endswith("p=${AUCTION_PRICE}")
    assert bid["burl"].startswith(bid["nurl"])


async def test_no_bid_when_tags_do_not_match_or_floor_is_too_high(
    dsp_client: Client, redis: Redis
) -> None:
    await seed(dsp_client, redis, campaign("auto", tags="interest.automotive"))
    await store_profile(redis, tags=("interest.travel.outbound",))
    assert (await post(dsp_client, bid_request()))[0] == 204
    await store_profile(redis, tags=("interest.automotive.suv",))
    assert (await post(dsp_client, bid_request(floor=2.01)))[0] == 204
    assert (await post(dsp_client, bid_request(floor=2.0)))[0] == 200


async def test_geo_os_and_size_targeting(dsp_client: Client, redis: Redis) -> None:
    await seed(dsp_client, redis, campaign("us", countries=["USA"], os=["android"]))
    await store_profile(redis)
    assert (await post(dsp_client, bid_request()))[0] == 204
    request = bid_request(device={"ifa": IDFA, "os": "Android", "geo": {"country": "USA"}})
    assert (await post(dsp_client, request))[0] == 200
    request["imp"][0]["banner"] = {"w": 728, "h": 90}
    assert (await post(dsp_client, request))[0] == 204


@pytest.mark.parametrize(
    "privacy",
    [
        {"device": {"ifa": IDFA, "os": "iOS", "lmt": 1}},
        {"device": {"ifa": IDFA, "os": "iOS", "dnt": 1}},
        {"regs": {"coppa": 1}},
        {"regs": {"gdpr": 1}},
    ],
    ids=["lmt", "dnt", "coppa", "gdpr-without-consent"],
)
async def test_privacy_signals_mean_no_dmp_tags(
    dsp_client: Client, redis: Redis, privacy: dict[str, Any]
) -> None:
    await seed(
        dsp_client,
        redis,
        campaign("tagged", cpm_micros=5_000_000, tags="interest.automotive"),
        campaign("open", cpm_micros=1_000_000),
    )
    await store_profile(redis, tags=("interest.automotive.suv",))
    status, body = await post(dsp_client, bid_request())
    assert body["seatbid"][0]["bid"][0]["cid"] == "tagged"
    request = bid_request()
    request.update({k: {**request.get(k, {}), **v} for k, v in privacy.items()})
    status, body = await post(dsp_client, request)
    assert status == 200
    assert body["seatbid"][0]["bid"][0]["cid"] == "open"


async def test_bids_in_the_currency_the_exchange_asks_for(dsp_client: Client, redis: Redis) -> None:
    await seed(dsp_client, redis, campaign("c1", cpm_micros=2_000_000))
    request = bid_request(cur=["EUR"])
    request["imp"][0].update({"bidfloor": 1.8, "bidfloorcur": "EUR"})
    status, body = await post(dsp_client, request)
    assert status == 200 and body["cur"] == "EUR"
    assert body["seatbid"][0]["bid"][0]["price"] == pytest.approx(1.84)
    request["imp"][0]["bidfloor"] = 1.85
    assert (await post(dsp_client, request))[0] == 204
    assert (await post(dsp_client, bid_request(cur=["XXX"])))[0] == 204


async def test_blocked_advertiser_domain_is_not_bid(dsp_client: Client, redis: Redis) -> None:
    await seed(dsp_client, redis, campaign("c1"))
    assert (await post(dsp_client, bid_request(badv=["brand.example.com"])))[0] == 204
    assert (await post(dsp_client, bid_request(bcat=["IAB2"])))[0] == 204


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "$"),
        (b"[]", "$"),
        (orjson.dumps({"imp": [{"id": "1"}]}), "id"),
        (orjson.dumps({"id": "x", "imp": []}), "imp"),
        (orjson.dumps({"id": "x", "imp": [{"id": "1"}], "tmax": -1}), "tmax"),
    ],
)
async def test_bad_requests_get_400_naming_the_field(
    dsp_client: Client, body: bytes, field: str
) -> None:
    response = await dsp_client.post("/openrtb2/bid", data=body)
    assert response.status == 400
    assert (await response.json())["field"] == field
