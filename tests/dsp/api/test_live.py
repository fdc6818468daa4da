"""A change made through the API reaches every running bidder process within one second."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import orjson
import pytest
from redis.asyncio import Redis

from infra.embedded_redis import free_port
from infra.settings import Settings
from tests.dsp.api.conftest import Api, Client, campaign_body, start, tenant
from tests.dsp.factories import bid_request, store_profile

DEADLINE_S = 1.0


@pytest.fixture
async def bidders(redis: Redis, redis_url: str) -> AsyncIterator[list[Client]]:
    """Two bidder processes' apps on one Redis, each refreshing at the default interval."""
    clients = []
    for _ in range(2):
        settings = Settings(redis_url=redis_url, port=free_port(), signing_key=b"k")
        assert settings.campaign_refresh_s == 0.25
        clients.append(await start(settings))
    try:
        yield clients
    finally:
        for client in clients:
            await client.close()


async def bids_for(bidder: Client, campaign_id: str) -> bool:
    response = await bidder.post("/openrtb2/bid", data=orjson.dumps(bid_request()))
    if response.status != 200:
        return False
    body = await response.json()
    return any(bid.get("cid") == campaign_id for seat in body["seatbid"] for bid in seat["bid"])


async def seconds_until(bidder: Client, campaign_id: str, *, bidding: bool, since: float) -> float:
    while time.monotonic() - since < 3 * DEADLINE_S:
        if await bids_for(bidder, campaign_id) is bidding:
            return time.monotonic() - since
        await asyncio.sleep(0.02)
    return float("inf")


async def test_an_api_change_reaches_every_bidder_within_a_second(
    bidders: list[Client], redis: Redis
) -> None:
    await store_profile(redis)
    api = Api(bidders[0], await tenant(redis, "Live Co", "Asia/Shanghai"))
    creative = await api.creative()
    for bidder in bidders:
        assert not await bids_for(bidder, "nothing yet")

    created = time.monotonic()
    campaign = await api.create("campaigns", campaign_body([creative["id"]]))
    delays = await asyncio.gather(
        *(seconds_until(b, campaign["id"], bidding=True, since=created) for b in bidders)
    )
    assert max(delays) < DEADLINE_S, delays

    paused = time.monotonic()
    answer = await api.call(
        "PATCH", f"/campaigns/{campaign['id']}", {"status": "paused"}, If_Match=campaign["etag"]
    )
    assert answer.status == 200
    delays = await asyncio.gather(
        *(seconds_until(b, campaign["id"], bidding=False, since=paused) for b in bidders)
    )
    assert max(delays) < DEADLINE_S, delays
