"""A run end to end (bids, wins, losses, impressions, clicks with duplicates and invalid
ones), archived, recounted from the files by independent code: the report's figures."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import Application, Request
from redis.asyncio import Redis

from dsp.app import LIVE, TRACKING, create_app
from dsp.campaigns.store import save_campaigns
from dsp.events.archive import Archiver
from dsp.events.recount import recount, recount_rows
from dsp.reporting.report import build_report, records
from infra.embedded_redis import free_port
from infra.settings import Settings
from tests.dsp.factories import bid_request, campaign, store_profile

Client = TestClient[Request, Application]
BROWSER = {"User-Agent": "Mozilla/5.0 (Linux; Android 14) Chrome/126.0 Mobile"}
BOT = {"User-Agent": "Mozilla/5.0 (compatible; bingbot/2.0)"}
DEVICES = [
    (f"6D92078A-8246-4BA4-AE5B-76104861E7D{n}", tags)
    for n, tags in enumerate(
        [("base.gender.male",), ("social.occupation.student",),
         ("base.gender.male", "social.occupation.student"), (), (), ("base.age.18_24",)]
    )
]  # fmt: skip


@pytest.fixture
async def client(redis: Redis, redis_url: str) -> AsyncIterator[Client]:
    port = free_port()
    settings = Settings(
        redis_url=redis_url, port=port, signing_keys=(("k1", b"secret"),),
        campaign_refresh_s=3600, click_rate_max=2, event_flush_s=3600,
    )  # fmt: skip
    test_client = TestClient(TestServer(create_app(settings), host="127.0.0.1", port=port))
    await test_client.start_server()
    try:
        yield test_client
    finally:
        await test_client.close()


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def link_in(adm: str, path: str) -> str:
    start = adm.index(f"{path}?")
    return local(adm[start : adm.index('"', start)].replace("&amp;", "&"))


async def _run(client: Client, redis: Redis) -> dict[str, int]:
    await save_campaigns(
        redis,
        [
            campaign(
                "c1", cpm_micros=4_000_000, tags="base.gender.male OR social.occupation.student"
            ),
            campaign("c2", cpm_micros=3_000_000),
        ],
    )
    await client.app[LIVE].refresh(redis)
    for ifa, tags in DEVICES:
        await store_profile(redis, ifa, tags)
    rng = random.Random(11)
    seen = {"bids": 0, "imps": 0, "clicks": 0, "wins": 0}
    for n in range(48):
        ifa = DEVICES[n % len(DEVICES)][0]
        answer = await client.post(
            "/openrtb2/bid", data=orjson.dumps(bid_request(id=f"a{n}", ifa=ifa))
        )
        assert answer.status == 200
        bid: dict[str, Any] = (await answer.json())["seatbid"][0]["bid"][0]
        seen["bids"] += 1
        if rng.random() < 0.25:
            loss = local(bid["lurl"]).replace("${AUCTION_LOSS}", "102")
            assert (await client.get(loss)).status == 204
            continue
        win = local(bid["nurl"]).replace("${AUCTION_PRICE}", f"{rng.randrange(50, 300) / 100}")
        for _ in range(rng.choice((1, 1, 2))):  # a repeated win notice charges once
            assert (await client.get(win)).status == 200
        seen["wins"] += 1
        shown = rng.random() < 0.85
        if shown:
            for _ in range(rng.choice((1, 2, 3))):  # repeated pixels count once
                assert (await client.get(link_in(bid["adm"], "/imp"))).status == 200
            seen["imps"] += 1
        if rng.random() < 0.6:
            headers = BOT if rng.random() < 0.15 else BROWSER
            for _ in range(rng.choice((1, 2))):
                click = await client.get(link_in(bid["adm"], "/click"), headers=headers,
                                         allow_redirects=False)  # fmt: skip
                assert click.status == 302
            seen["clicks"] += 1
    buffer = client.app[TRACKING].events
    assert buffer is not None
    await buffer.flush()
    return seen


def _without_labels(found: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{k: v for k, v in r.items() if k not in ("name", "tag_code")} for r in found]


async def test_the_archive_recounted_independently_gives_the_report(
    client: Client, redis: Redis, tmp_path: Path
) -> None:
    seen = await _run(client, redis)
    await Archiver(redis, tmp_path).catch_up()
    counts = recount(tmp_path)
    for by in [(), ("campaign",), ("campaign", "creative", "hour"), ("day",), ("tag",),
               ("campaign", "tag")]:  # fmt: skip
        report = _without_labels(records(await build_report(redis, by), by))
        assert report == recount_rows(counts, by), by
    (total,) = await build_report(redis, ())
    assert (total.bids, total.wins, total.impressions) == (seen["bids"], seen["wins"], seen["imps"])
    assert total.clicks + total.invalid_clicks == seen["clicks"]
    assert 0 < total.invalid_clicks < seen["clicks"] and total.clicks > 0
    assert total.losses == seen["bids"] - seen["wins"]
    spent = sum([int(await redis.get(f"dsp:{{c:{c}}}:spent") or 0) for c in ("c1", "c2")])
    assert total.spend_micros == spent > 0
    by_tag = {row.key[0]: row for row in await build_report(redis, ("tag",))}
    assert set(by_tag) == {"8", str(32), "-"}  # male, student; c2's bids matched no tag
