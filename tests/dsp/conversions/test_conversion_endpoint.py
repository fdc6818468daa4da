"""``/conv`` through the real bidder app on a loopback socket, against a real Redis."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import Application, Request
from redis.asyncio import Redis

from dmp.ids import parse_device_id
from dmp.taxonomy import Taxonomy
from dsp.app import LIVE, TRACKING, errors_middleware
from dsp.campaigns.live import LiveCampaigns
from dsp.campaigns.store import save_campaigns
from dsp.conversions.click_ids import ClickIds
from dsp.conversions.handlers import Conversions
from dsp.events.schema import entry_events
from dsp.metrics import Metrics
from dsp.reporting.report import build_report
from dsp.tracking.links import LinkSigner, Notice
from infra import keys
from infra.embedded_redis import free_port
from infra.settings import Settings
from infra.tokens import create_token
from tests.dsp.factories import IDFA, bid_request, campaign, store_profile

Client = TestClient[Request, Application]
DAY_S = 86_400


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def link_in(adm: str, path: str) -> str:
    start = adm.index(f"{path}?")
    return adm[start : adm.index('"', start)].replace("&amp;", "&")


async def setup(client: Client, redis: Redis, *campaigns: dict[str, Any]) -> None:
    await save_campaigns(redis, list(campaigns) or [campaign("c1", cpm_micros=4_000_000)])
    await client.app[LIVE].refresh(redis)
    await store_profile(redis)


async def shown(client: Client, auction: str = "auction-1") -> str:
    """Bid, win and render one ad; its markup."""
    response = await client.post("/openrtb2/bid", data=orjson.dumps(bid_request(id=auction)))
    assert response.status == 200
    adm: str = (await response.json())["seatbid"][0]["bid"][0]["adm"]
    assert (await client.get(local(link_in(adm, "/imp")))).status == 200
    return adm


async def clicked(client: Client, adm: str) -> str:
    """Click the ad; the click id the landing URL got."""
    response = await client.get(local(link_in(adm, "/click")), allow_redirects=False)
    assert response.status == 302
    return dict(parse_qsl(urlsplit(response.headers["Location"]).query))["dsp_click"]


def set_clock(client: Client, at: float) -> None:
    conversions = client.app[TRACKING].conversions
    assert conversions is not None
    conversions.clock = lambda: at


async def test_the_same_order_id_counts_once(dsp_client: Client, redis: Redis) -> None:
    await setup(dsp_client, redis)
    click = await clicked(dsp_client, await shown(dsp_client))
    answers = []
    for _ in range(3):
        response = await dsp_client.get(f"/conv?click={click}&order=o-1&value=25000000")
        assert response.status == 200
        answers.append(await response.json())
    assert [a["duplicate"] for a in answers] == [False, True, True]
    assert answers[0]["type"] == "conversion" and answers[0]["campaign_id"] == "c1"
    # a second order on the same click is another conversion; without order id, once per click
    assert not (await (await dsp_client.get(f"/conv?click={click}&order=o-2")).json())["duplicate"]
    flags = [(await (await dsp_client.get(f"/conv?click={click}")).json())["duplicate"]
             for _ in range(2)]  # fmt: skip
    assert flags == [False, True]
    row = (await build_report(redis, ("campaign",)))[0]
    assert (row.clicks, row.click_conversions, row.view_conversions) == (1, 3, 0)
    assert row.conversion_value_micros == 25_000_000


async def test_server_to_server_post_as_form_or_json(dsp_client: Client, redis: Redis) -> None:
    await setup(dsp_client, redis)
    click = await clicked(dsp_client, await shown(dsp_client))
    form = await dsp_client.post("/conv", data={"click": click, "order": "A", "value": "7"})
    body = orjson.dumps({"click": click, "order": "A", "value": 7})
    as_json = await dsp_client.post(
        "/conv", data=body, headers={"Content-Type": "application/json"}
    )
    assert (form.status, as_json.status) == (200, 200)
    assert [(await r.json())["duplicate"] for r in (form, as_json)] == [False, True]


async def test_forged_or_malformed_click_ids_are_refused_and_count_nothing(
    dsp_client: Client, redis: Redis
) -> None:
    await setup(dsp_client, redis)
    click = await clicked(dsp_client, await shown(dsp_client))
    payload, key_id, signature = click.split(".")
    forged = await dsp_client.get(f"/conv?click={payload}.{key_id}.{'f' * 32}&order=x")
    assert forged.status == 403
    assert (await forged.json())["reason"] == "forged_click"
    for query in ("click=nonsense", "order=x", "click=&order=x", f"click={click}&value=-5",
                  f"click={click}&value=1.5"):  # fmt: skip
        response = await dsp_client.get(f"/conv?{query}")
        assert response.status == 400, query
        assert "error" in await response.json()
    rows = await build_report(redis, ("campaign",))
    assert rows[0].conversions == 0


async def test_click_window_per_campaign_with_an_injected_clock(
    dsp_client: Client, redis: Redis
) -> None:
    long_window = {**campaign("c1", cpm_micros=4_000_000), "click_window_days": 10}
    await setup(dsp_client, redis, long_window, campaign("c2", cpm_micros=3_000_000))
    clicks = {}
    for n, name in enumerate(("c1", "c2")):
        adm = await shown(dsp_client, f"auction-{n}")
        clicks[name] = await clicked(dsp_client, adm)
        if name == "c1":  # c1 bids higher: pause it so c2 wins the next auction
            await save_campaigns(redis, [{**long_window, "status": "paused"}, campaign("c2", cpm_micros=3_000_000)])  # fmt: skip
            await dsp_client.app[LIVE].refresh(redis)
    assert ClickIds(dsp_client.app[TRACKING].signer).read(clicks["c2"]).campaign_id == "c2"
    now = time.time()
    set_clock(dsp_client, now + 8 * DAY_S)  # past c2's default 7 days, inside c1's 10
    expired = await dsp_client.get(f"/conv?click={clicks['c2']}&order=o")
    assert expired.status == 403 and (await expired.json())["reason"] == "expired_click"
    assert (await dsp_client.get(f"/conv?click={clicks['c1']}&order=o")).status == 200
    set_clock(dsp_client, now + 6 * DAY_S)
    assert (await dsp_client.get(f"/conv?click={clicks['c2']}&order=p")).status == 200
    set_clock(dsp_client, now + 11 * DAY_S)
    assert (await dsp_client.get(f"/conv?click={clicks['c1']}&order=q")).status == 403


async def device_postback(client: Client, token: str | None, **params: str) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"device_type": "idfa", "device_id": IDFA, **params}
    response = await client.post("/conv", data=body, headers=headers)
    return response.status, await response.json()


async def test_view_through_by_device_credits_one_impression_inside_the_window(
    dsp_client: Client, redis: Redis
) -> None:
    await setup(dsp_client, redis)
    token = await create_token(redis, "dsp", "adv1", frozenset({"read", "write"}))
    stranger = await create_token(redis, "dsp", "adv2", frozenset({"read", "write"}))
    reader = await create_token(redis, "dsp", "adv1", frozenset({"read"}))
    await shown(dsp_client, "auction-1")
    await shown(dsp_client, "auction-2")  # the same device's later impression: last touch
    now = time.time()
    status, answer = await device_postback(dsp_client, token, order="v1", value="3000000")
    assert status == 200 and answer["type"] == "view_conversion"
    status, again = await device_postback(dsp_client, token, order="v1", value="3000000")
    assert again["duplicate"]
    # another advertiser's conversion is never credited to adv1's impressions
    assert (await device_postback(dsp_client, stranger, order="v2"))[1] == {
        "attributed": False, "duplicate": False,
    }  # fmt: skip
    assert (await device_postback(dsp_client, None, order="v3"))[0] == 403
    assert (await device_postback(dsp_client, reader, order="v3"))[0] == 403
    assert (await device_postback(dsp_client, token, device_id="not-an-idfa"))[0] == 400
    get = await dsp_client.get(f"/conv?device_type=idfa&device_id={IDFA}")
    assert get.status == 400  # a device postback must come server to server
    set_clock(dsp_client, now + DAY_S + 60)  # past the one-day view window
    assert not (await device_postback(dsp_client, token, order="v4"))[1]["attributed"]
    events = [e for e in await stream_events(redis) if e["type"] == "view_conversion"]
    assert [(e["auction"], e["order"], e["price"]) for e in events] == [
        ("auction-2", "v1", 3_000_000)
    ]
    row = (await build_report(redis, ("campaign",)))[0]
    assert (row.impressions, row.view_conversions, row.conversions) == (2, 1, 1)


async def test_a_device_click_beats_its_older_impressions(dsp_client: Client, redis: Redis) -> None:
    await setup(dsp_client, redis)
    token = await create_token(redis, "dsp", "adv1", frozenset({"write"}))
    adm = await shown(dsp_client, "auction-1")
    await clicked(dsp_client, adm)
    set_clock(dsp_client, time.time() + 3 * DAY_S)  # the impression is out of its window
    status, answer = await device_postback(dsp_client, token, order="d1")
    assert status == 200 and answer["type"] == "conversion"
    touches = await redis.hgetall(keys_touches())
    assert sorted(touches) == [b"c1|click", b"c1|imp"]


def keys_touches() -> bytes:
    return keys.device_touches(parse_device_id("idfa", IDFA).key)


async def stream_events(redis: Redis) -> list[dict[str, Any]]:
    entries: Any = await redis.xrange(keys.EVENTS)
    return [event for _, data in entries for event in entry_events(data)]


async def test_redis_down_answers_503_with_retry_after() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = Settings(redis_url=dead)
    signer = LinkSigner(b"k", "http://dsp.test")
    redis = Redis.from_url(dead, socket_connect_timeout=0.2)
    conversions = Conversions(
        settings, redis, ClickIds(signer), LiveCampaigns(Taxonomy.default()), Metrics()
    )
    app = web.Application(middlewares=[errors_middleware])
    app.router.add_post("/conv", conversions.handle)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        notice = Notice("a", "1", "c1", "cr1", "", 1, "USD", 0, "k", "d", "nurl")
        click = ClickIds(signer).mint(notice, int(time.time() * 1000))
        response = await client.post("/conv", data={"click": click})
        assert response.status == 503 and response.headers["Retry-After"] == "1"
    finally:
        await client.close()
        await redis.aclose()


async def test_an_invalid_click_gets_no_click_id(dsp_client: Client, redis: Redis) -> None:
    await setup(dsp_client, redis)
    adm = await shown(dsp_client)
    bot = {"User-Agent": "Googlebot/2.1 (+http://www.google.com/bot.html)"}
    response = await dsp_client.get(
        local(link_in(adm, "/click")), allow_redirects=False, headers=bot
    )
    assert response.status == 302
    assert response.headers["Location"] == "https://brand.example.com/landing?c=cr1"
