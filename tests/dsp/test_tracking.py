from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request
from redis.asyncio import Redis

from dsp.app import LIVE
from dsp.campaigns.store import save_campaigns
from infra import keys
from tests.dsp.factories import bid_request, campaign, store_profile

Client = TestClient[Request, Application]


async def won_bid(client: Client, redis: Redis) -> dict[str, Any]:
    await save_campaigns(redis, [campaign("c1", cpm_micros=4_000_000)])
    await client.app[LIVE].refresh(redis)
    await store_profile(redis)
    response = await client.post("/openrtb2/bid", data=orjson.dumps(bid_request()))
    assert response.status == 200
    bid: dict[str, Any] = (await response.json())["seatbid"][0]["bid"][0]
    return bid


async def counters(redis: Redis, metric: str) -> list[int]:
    """The report counters of campaign c1 for one metric, one per hour and creative."""
    stats = await redis.hgetall(keys.campaign_stats("c1"))
    suffix = f"|{metric}"
    return [
        int(v)
        for k, v in stats.items()
        if (k.decode() if isinstance(k, bytes) else k).endswith(suffix)
    ]


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def link_in(adm: str, path: str) -> str:
    start = adm.index(f"{path}?")
    return adm[start : adm.index('"', start)].replace("&amp;", "&")


async def test_the_same_win_notice_charges_once(dsp_client: Client, redis: Redis) -> None:
    bid = await won_bid(dsp_client, redis)
    nurl = local(bid["nurl"]).replace("${AUCTION_PRICE}", "2.50")
    answers = [await (await dsp_client.get(nurl)).json() for _ in range(10)]
    first = {"charged_micros": 2500, "overdelivered_micros": 0, "duplicate": False, "late": False}
    again = {"charged_micros": 0, "overdelivered_micros": 0, "duplicate": True, "late": False}
    assert answers[0] == first
    assert all(answer == again for answer in answers[1:])
    burl = local(bid["burl"]).replace("${AUCTION_PRICE}", "2.50")
    assert (await (await dsp_client.get(burl)).json())["duplicate"] is True
    assert int(await redis.get(keys.campaign_spent("c1")) or 0) == 2500
    assert await redis.xlen(keys.EVENTS) == 1


async def test_a_clearing_price_above_our_bid_is_charged_at_our_bid(
    dsp_client: Client, redis: Redis
) -> None:
    bid = await won_bid(dsp_client, redis)
    nurl = local(bid["nurl"]).replace("${AUCTION_PRICE}", "99")
    assert (await (await dsp_client.get(nurl)).json())["charged_micros"] == 4000


async def test_notices_without_price_or_with_a_forged_field_charge_nothing(
    dsp_client: Client, redis: Redis
) -> None:
    bid = await won_bid(dsp_client, redis)
    unfilled = await dsp_client.get(local(bid["nurl"]))
    assert unfilled.status == 400
    forged = local(bid["nurl"]).replace("${AUCTION_PRICE}", "1").replace("b=4000000", "b=9000000")
    assert (await dsp_client.get(forged)).status == 403
    assert await redis.get(keys.campaign_spent("c1")) is None


async def test_impression_pixel_counts_once(dsp_client: Client, redis: Redis) -> None:
    bid = await won_bid(dsp_client, redis)
    pixel = link_in(bid["adm"], "/imp")
    for _ in range(3):
        response = await dsp_client.get(local(pixel))
        assert response.status == 200 and response.content_type == "image/gif"
    assert await counters(redis, "imp") == [1]


async def test_click_redirects_once_counted_and_a_tampered_click_is_refused(
    dsp_client: Client, redis: Redis
) -> None:
    bid = await won_bid(dsp_client, redis)
    click = local(link_in(bid["adm"], "/click"))
    params = dict(parse_qsl(urlsplit(click).query))
    tampered = click.replace(f"c={params['c']}", "c=c2")
    refused = await dsp_client.get(tampered, allow_redirects=False)
    assert refused.status == 403
    bad_signature = click.replace(f"s={params['s']}", "s=" + "0" * 32)
    assert (await dsp_client.get(bad_signature, allow_redirects=False)).status == 403
    assert await redis.xlen(keys.EVENTS) == 0
    for _ in range(2):
        response = await dsp_client.get(click, allow_redirects=False)
        assert response.status == 302
        assert response.headers["Location"] == "https://brand.example.com/landing?c=cr1"
    assert await counters(redis, "click") == [1]


async def test_health_and_metrics(dsp_client: Client, redis: Redis) -> None:
    await won_bid(dsp_client, redis)
    assert (await (await dsp_client.get("/healthz")).json())["status"] == "ok"
    text = await (await dsp_client.get("/metrics")).text()
    assert "dsp_bids_total 1" in text
    assert 'dsp_bid_latency_ms_bucket{le="+Inf"} 1' in text


async def test_impressions_count_against_the_frequency_cap(
    dsp_client: Client, redis: Redis
) -> None:
    capped = campaign("c1", cpm_micros=4_000_000)
    capped["targeting"] = {"frequency_cap": {"count": 2, "per": "day"}}
    await save_campaigns(redis, [capped])
    await dsp_client.app[LIVE].refresh(redis)
    await store_profile(redis)
    for auction in ("a1", "a2"):
        response = await dsp_client.post(
            "/openrtb2/bid", data=orjson.dumps(bid_request(id=auction))
        )
        assert response.status == 200
        bid = (await response.json())["seatbid"][0]["bid"][0]
        for _ in range(2):  # a repeated pixel counts once
            assert (await dsp_client.get(local(link_in(bid["adm"], "/imp")))).status == 200
    third = await dsp_client.post("/openrtb2/bid", data=orjson.dumps(bid_request(id="a3")))
    assert third.status == 204
