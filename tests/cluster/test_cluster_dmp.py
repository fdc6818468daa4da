"""The DMP and the bid lookups on a real Redis Cluster: aliases in another slot, the DMP
API, erasure, and scene tags from behaviour events reaching the bidder."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import Application, Request
from redis.asyncio import Redis

from dmp.app import create_app as create_dmp_app
from dmp.ids import parse_device_id
from dsp.app import LIVE, METRICS
from dsp.campaigns.store import save_campaigns
from dsp.serve import Worker
from infra import keys
from infra.embedded_redis import free_port
from infra.settings import Settings
from infra.tokens import create_token
from tests.cluster.test_cluster_end_to_end import bidder  # noqa: F401  (fixture)
from tests.dsp.factories import IDFA, bid_request, campaign, store_profile

pytestmark = pytest.mark.cluster
Client = TestClient[Request, Application]
SEGMENT = "interest.automotive.suv"
AT_THE_AIRPORT = {"kind": "geofence", "lat": 22.6401, "lon": 113.8125}


async def post_bid(worker: Worker, body: dict[str, object]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", worker.settings.port)
    data = orjson.dumps(body)
    writer.write(
        b"POST /openrtb2/bid HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(data), data)
    )
    head = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    return int(head.split(b" ")[1])


async def test_an_alias_in_another_slot_is_followed_and_counted(
    bidder: Worker,  # noqa: F811
    cluster_redis: Redis,
) -> None:
    redis = cluster_redis
    await store_profile(redis, tags=(SEGMENT,))
    digests = parse_device_id("idfa", IDFA).digests()
    primary, sha1 = digests[0], hashlib.sha1(IDFA.encode()).digest()[:8]
    assert sha1 in digests
    # The SHA1 form is an alias whose primary lives in another slot of the cluster.
    assert keys.profile_bucket(sha1) != keys.profile_bucket(primary)
    await save_campaigns(redis, [campaign("c1", tags=SEGMENT)])
    await bidder.app[LIVE].refresh(redis)
    device = {"os": "iOS", "geo": {"country": "CHN", "region": "GD"}}
    assert await post_bid(bidder, bid_request()) == 200
    assert bidder.app[METRICS].counters["cluster_alias_lookups"] == 0
    sha1_text = hashlib.sha1(IDFA.encode()).hexdigest()
    only_sha1 = bid_request(device={**device, "dpidsha1": sha1_text})  # no ifa
    assert await post_bid(bidder, only_sha1) == 200
    assert bidder.app[METRICS].counters["cluster_alias_lookups"] == 1
    assert await post_bid(bidder, bid_request(ifa="00000000-1111-2222-3333-444444444444")) == 204


@pytest.fixture
async def dmp_client(cluster_redis: Redis, cluster_url: str) -> AsyncIterator[Client]:
    app = create_dmp_app(Settings(redis_url=cluster_url))
    client = TestClient(TestServer(app, host="127.0.0.1", port=free_port()))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def test_the_dmp_api_and_scene_tags_work_on_a_cluster(
    dmp_client: Client,
    bidder: Worker,  # noqa: F811
    cluster_redis: Redis,
) -> None:
    redis = cluster_redis
    token = await create_token(redis, "dmp", "data-team", frozenset({"devices"}))
    headers = {"Authorization": f"Bearer {token}"}
    device = {"id_type": "idfa", "id": IDFA, "os": "ios", "country": "CHN", "region": "GD",
              "tags": [SEGMENT]}  # fmt: skip
    assert (await dmp_client.put("/api/v1/devices", json=device, headers=headers)).status == 200
    sha1 = hashlib.sha1(IDFA.encode()).hexdigest()
    answer = await dmp_client.get(f"/api/v1/devices/idfa_sha1/{sha1}", headers=headers)
    assert answer.status == 200
    assert SEGMENT in [t["tag"] for t in (await answer.json())["tags"]]

    # A behaviour event becomes a scene tag the bidder uses (the stream consumer of dmp serve).
    await save_campaigns(redis, [campaign("airport", tags="scene.travel.at_airport >= 80")])
    await bidder.app[LIVE].refresh(redis)
    assert await post_bid(bidder, bid_request()) == 204
    event = {"id_type": "idfa_sha1", "id": sha1, **AT_THE_AIRPORT}  # an alias: 2 slots
    posted = await dmp_client.post("/api/v1/events", json=event, headers=headers)
    assert posted.status == 202
    deadline = time.monotonic() + 5
    while await post_bid(bidder, bid_request()) != 200:
        assert time.monotonic() < deadline, "no bid after the scene event"
        await asyncio.sleep(0.05)

    erased = await dmp_client.delete(f"/api/v1/devices/idfa/{IDFA}", headers=headers)
    assert erased.status == 200
    gone = await dmp_client.get(f"/api/v1/devices/idfa_sha1/{sha1}", headers=headers)
    assert gone.status == 404
    assert await post_bid(bidder, bid_request()) == 204
