"""End to end: a behaviour event on the stream makes the running bidder bid within a second."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import orjson
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request
from redis.asyncio import Redis

from dmp.scene_consumer import SceneConsumer, publish
from dmp.scene_rules import SceneLibrary
from dmp.scene_writer import SceneWriter
from dmp.taxonomy import Taxonomy
from dsp.app import LIVE
from dsp.campaigns.store import save_campaigns
from tests.dsp.factories import IDFA, bid_request, campaign, store_profile

Client = TestClient[Request, Application]
AT_THE_AIRPORT = {"kind": "geofence", "lat": 22.6401, "lon": 113.8125}  # Shenzhen Bao'an
DEADLINE_S = 1.0
POLL_S = 0.02


async def bid_status(client: Client) -> int:
    response = await client.post("/openrtb2/bid", data=orjson.dumps(bid_request()))
    await response.read()
    return response.status


async def seconds_until_bid(client: Client) -> float:
    """Poll the bidder from now until it bids; fail if that takes over a second."""
    started = time.monotonic()
    while await bid_status(client) != 200:
        elapsed = time.monotonic() - started
        assert elapsed < DEADLINE_S, f"no bid {elapsed:.3f}s after publishing"
        await asyncio.sleep(POLL_S)
    return time.monotonic() - started


async def bids_after_publishing(client: Client, redis: Redis, event: dict[str, Any]) -> float:
    await save_campaigns(redis, [campaign("airport", tags="scene.travel.at_airport >= 80")])
    await client.app[LIVE].refresh(redis)
    assert await bid_status(client) == 204
    writer = SceneWriter(redis, SceneLibrary.default(), Taxonomy.default())
    await writer.warm_up()
    consumer = SceneConsumer(redis, writer, name="scene-test")
    async with consumer.running() as task:
        await asyncio.sleep(0.05)  # the consumer is waiting in XREADGROUP BLOCK
        started = time.monotonic()
        await publish(redis, event)
        elapsed = await seconds_until_bid(client)
        latency = time.monotonic() - started
        assert not task.done()
    assert consumer.stats.applied == 1
    print(f"bid {latency * 1000:.1f} ms after publishing (first 200 at {elapsed * 1000:.1f} ms)")
    return latency


async def test_a_device_at_the_airport_gets_a_bid_within_a_second(
    dsp_client: Client, redis: Redis
) -> None:
    await store_profile(redis)  # a known device, no scene yet
    event = {"id_type": "idfa", "id": IDFA, **AT_THE_AIRPORT}
    assert await bids_after_publishing(dsp_client, redis, event) < DEADLINE_S


async def test_an_event_under_an_alias_reaches_the_profile_the_bidder_reads(
    dsp_client: Client, redis: Redis
) -> None:
    await store_profile(redis)
    sha1 = hashlib.sha1(IDFA.lower().encode()).hexdigest()  # another spelling, an alias field
    event = {"id_type": "idfa_sha1", "id": sha1, **AT_THE_AIRPORT}
    assert await bids_after_publishing(dsp_client, redis, event) < DEADLINE_S


async def test_a_device_unknown_to_the_dmp_gets_its_scene_too(
    dsp_client: Client, redis: Redis
) -> None:
    event = {"id_type": "idfa", "id": IDFA.lower(), **AT_THE_AIRPORT}
    assert await bids_after_publishing(dsp_client, redis, event) < DEADLINE_S
