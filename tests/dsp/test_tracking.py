from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request
from redis.asyncio import Redis

from dsp.app import LIVE, TRACKING
from dsp.campaigns.store import save_campaigns
from dsp.errors import BadSignature
from dsp.events.schema import ENTRY_FIELD, decode
from dsp.tracking.links import LinkSigner, Notice
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
    assert (await dsp_client.get(local(link_in(bid["adm"], "/imp")))).status == 200
    for _ in range(2):
        response = await dsp_client.get(click, allow_redirects=False)
        assert response.status == 302
        # issue 12: the landing URL keeps its query and gains the signed click id
        location = response.headers["Location"]
        assert location.startswith("https://brand.example.com/landing?c=cr1&dsp_click=")
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


async def logged(redis: Redis) -> list[dict[str, Any]]:
    """Every notice event in the stream, in order."""
    entries: Any = await redis.xrange(keys.EVENTS)
    return [
        event for _, data in entries if ENTRY_FIELD in data for event in decode(data[ENTRY_FIELD])
    ]


def notice(**changes: Any) -> Notice:
    fields: dict[str, Any] = dict(
        auction_id="a1",
        imp_id="1",
        campaign_id="c1",
        creative_id="cr1",
        device="00ff",
        bid_micros=4_000_000,
        currency="USD",
        issued_ms=1,
        keeper="k",
        day="20260101",
        billing="nurl",
        tags=(12, 40),
    )
    fields.update(changes)
    return Notice(**fields)


def test_a_link_signed_with_the_previous_key_verifies_until_that_key_is_removed() -> None:
    old = LinkSigner([("k1", b"first secret")], "http://dsp")
    rotated = LinkSigner([("k2", b"second secret"), ("k1", b"first secret")], "http://dsp")
    retired = LinkSigner([("k2", b"second secret")], "http://dsp")
    old_link = dict(parse_qsl(urlsplit(old.links(notice()).click).query))
    assert old_link["v"] == "k1" and old_link["g"] == "12.40"
    assert rotated.verify(old_link, "click") == notice()
    new_link = dict(parse_qsl(urlsplit(rotated.links(notice()).click).query))
    assert new_link["v"] == "k2"  # the newest key signs
    assert retired.verify(new_link, "click").tags == (12, 40)
    with pytest.raises(BadSignature):
        retired.verify(old_link, "click")
    forged = {**new_link, "g": "12.40.41"}  # the matched tags are signed too
    with pytest.raises(BadSignature):
        rotated.verify(forged, "click")
    single = LinkSigner(b"one key", "http://dsp")  # a bare key is key id "0"
    assert single.verify(dict(parse_qsl(single.query(notice()))), "imp") == notice()


@pytest.mark.parametrize("key", [b"", b"k", b"x" * 64, b"y" * 65, bytes(range(200))])
def test_the_signature_is_hmac_sha256_of_the_values_so_issued_links_keep_verifying(
    key: bytes,
) -> None:
    signer = LinkSigner([("k1", key)], "http://dsp")
    params = dict(parse_qsl(urlsplit(signer.links(notice()).win).query))
    values = [params[name] for name in ("a", "i", "c", "r", "d", "b", "x", "t", "k", "y", "m")]
    message = "\x1f".join([*values, "12.40", "k1"]).encode()
    assert params["s"] == hmac.digest(key, message, hashlib.sha256).hex()[:32]


@pytest.mark.parametrize("auction_id", ["a b", "a&b=c", "a\x1fb", "\x1f", "日本"])
def test_values_that_are_not_url_safe_are_quoted_and_still_verify(auction_id: str) -> None:
    signer = LinkSigner(b"secret", "http://dsp")
    link = signer.links(notice(auction_id=auction_id)).click
    query = dict(parse_qsl(urlsplit(link).query))
    assert query["a"] == auction_id
    assert signer.verify(query, "click") == notice(auction_id=auction_id)


async def test_win_imp_and_click_events_carry_what_reports_count_by(
    dsp_client: Client, redis: Redis
) -> None:
    bid = await won_bid(dsp_client, redis)
    assert (
        await dsp_client.get(local(bid["nurl"]).replace("${AUCTION_PRICE}", "2.5"))
    ).status == 200
    pixel = local(link_in(bid["adm"], "/imp"))
    assert (await dsp_client.get(pixel)).status == 200
    click = local(link_in(bid["adm"], "/click"))
    assert (await dsp_client.get(click, allow_redirects=False)).status == 302
    events = await logged(redis)
    assert [e["type"] for e in events] == ["win", "imp", "click"]
    for event in events:
        assert event["auction"] == "auction-1" and event["imp"] == "1"
        assert event["campaign"] == "c1" and event["creative"] == "cr1"
        assert len(event["device"]) == 16 and isinstance(event["tags"], list)
        assert abs(event["ts"] - time.time() * 1000) < 60_000
    assert [e["price"] for e in events] == [2500, 0, 0]


async def test_clicks_without_impression_from_bots_or_too_often_are_invalid(
    dsp_client: Client, redis: Redis
) -> None:
    await save_campaigns(redis, [campaign("c1", cpm_micros=4_000_000)])
    await dsp_client.app[LIVE].refresh(redis)
    await store_profile(redis)
    limit = dsp_client.app[TRACKING].settings.click_rate_max
    clicks = []
    for n in range(limit + 3):
        response = await dsp_client.post(
            "/openrtb2/bid", data=orjson.dumps(bid_request(id=f"a{n}"))
        )
        adm = (await response.json())["seatbid"][0]["bid"][0]["adm"]
        if n > 0:  # the first auction's ad is clicked without its impression
            assert (await dsp_client.get(local(link_in(adm, "/imp")))).status == 200
        clicks.append(local(link_in(adm, "/click")))
    browser = {"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile/15E148"}
    crawler = {"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1)"}
    for n, link in enumerate(clicks):
        headers = crawler if n == 1 else browser
        for _ in range(2):  # a repeated click counts once
            response = await dsp_client.get(link, headers=headers, allow_redirects=False)
            assert response.status == 302  # the person still lands
    reasons = [e.get("reason") for e in await logged(redis) if e["type"].endswith("click")]
    # every distinct click counts against the device's window, bots' too
    expected = [
        "no_impression",
        "bot",
        *[None] * (limit - 2),
        "click_rate",
        "click_rate",
        "click_rate",
    ]
    assert reasons == expected
    assert sum(await counters(redis, "click")) == limit - 2
    assert sum(await counters(redis, "invalid_click")) == 5


async def test_loss_notices_reach_the_stream_in_a_batch(dsp_client: Client, redis: Redis) -> None:
    bid = await won_bid(dsp_client, redis)
    lurl = local(bid["lurl"]).replace("${AUCTION_LOSS}", "102")
    assert (await dsp_client.get(lurl)).status == 204
    buffer = dsp_client.app[TRACKING].events
    assert buffer is not None and len(buffer) == 2  # the bid event and the loss event
    assert await buffer.flush() == 2
    entries: Any = await redis.xrange(keys.EVENTS)
    assert len(entries) == 1  # one entry for the whole batch
    from dsp.events.schema import entry_events

    events = entry_events(entries[0][1])
    assert [e["type"] for e in events] == ["bid", "loss"]
    assert events[0]["price"] == 4_000_000 and events[0]["os"] == "ios"
    assert (events[0]["w"], events[0]["h"]) == (300, 250)
    assert events[1]["reason"] == "102"
