"""The advertiser API on the cluster: its two-step design (a change in the advertiser's slot,
then its publication to the bidders' campaign hash) and the operator's whole path.

The API's own tests run again on the cluster in ``tests/cluster/api``; these cover what only
the cluster path has: a change saved but never published (its process died between the two
steps), publications arriving out of order, and the path from ``dsp advertisers create`` to
a bid, a win and the report.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from redis.asyncio import Redis

from dmp.taxonomy import Taxonomy
from dsp.api import changes, store
from dsp.api.changes import Rules
from dsp.api.records import ADMIN, ADVERTISER, CAMPAIGN, CREATIVE, Record
from dsp.api.validation import Validators
from dsp.campaigns.store import load_campaigns
from dsp.errors import PreconditionFailed
from infra import keys
from infra.embedded_redis import free_port
from infra.settings import Settings
from tests.dsp.api.conftest import Api, Client, Tenant, campaign_body, start
from tests.dsp.api.test_admin import admin
from tests.dsp.factories import banner_creative, bid_request, store_profile

pytestmark = pytest.mark.cluster
RULES = Rules(Validators(), Taxonomy.default())


@pytest.fixture
async def bidder(cluster_redis: Redis, cluster_url: str) -> AsyncIterator[Client]:
    """A bidder process's app (bid front, notices, ``/api/v1``) on the cluster."""
    port = free_port()
    client = await start(
        Settings(redis_url=cluster_url, port=port, signing_key=b"k", campaign_refresh_s=0.05)
    )
    try:
        yield client
    finally:
        await client.close()


async def _advertiser(redis: Redis) -> Record:
    record = Record.new(
        ADVERTISER,
        ADVERTISER.new_id(),
        changes.normalised(ADVERTISER, {"name": "Acme", "timezone": "UTC"}, RULES),
        1,
    )
    await store.create_advertiser(redis, record)
    return record


async def _creative(redis: Redis, advertiser_id: str) -> Record:
    body = {k: v for k, v in banner_creative().items() if k != "id"}
    plan = await store.transact(
        redis,
        advertiser_id,
        lambda snapshot: changes.create(snapshot, CREATIVE, body, ADMIN, RULES),
    )
    return plan.result


async def _published(redis: Redis) -> dict[str, dict[str, Any]]:
    stored = await redis.hgetall(keys.CAMPAIGNS)
    return {k.decode() if isinstance(k, bytes) else k: orjson.loads(v) for k, v in stored.items()}


async def test_a_change_whose_process_died_before_publishing_is_published_later(
    cluster_redis: Redis,
) -> None:
    redis = cluster_redis
    advertiser = await _advertiser(redis)
    creative = await _creative(redis, advertiser.id)
    # The first step alone, as if the process died right after it.
    snapshot = await store.load_snapshot(redis, advertiser.id)
    body = campaign_body([creative.id])
    plan = changes.create(snapshot, CAMPAIGN, body, ADMIN, RULES)
    unpublished = await store.apply_on_cluster(redis, advertiser.id, snapshot.revision, plan)
    assert unpublished is not None and list(unpublished) == [plan.result.id]
    assert await store.get(redis, advertiser.id, CAMPAIGN, plan.result.id) == plan.result
    assert await _published(redis) == {}  # saved, not yet seen by any bidder

    # A process starting (every API process does this) publishes it, once.
    version_before = int(await redis.get(keys.CAMPAIGNS_VERSION) or 0)
    assert await store.republish_all(redis) == 1
    assert (await _published(redis))[plan.result.id]["name"] == body["name"]
    assert int(await redis.get(keys.CAMPAIGNS_VERSION) or 0) == version_before + 1
    assert await redis.hlen(keys.advertiser_unpublished(advertiser.id)) == 0
    assert await store.republish_all(redis) == 0  # nothing left: no version bump either
    _, campaigns = await load_campaigns(redis)
    assert [c.id for c in campaigns] == [plan.result.id]

    # Died again, after a pause this time; the advertiser's next change publishes it too.
    snapshot = await store.load_snapshot(redis, advertiser.id)
    current = snapshot.find(CAMPAIGN, plan.result.id)
    assert current is not None
    paused = changes.patch(
        snapshot, CAMPAIGN, current.id, {"status": "paused"}, current.etag, ADMIN, RULES
    )
    assert await store.apply_on_cluster(redis, advertiser.id, snapshot.revision, paused)
    assert (await _published(redis))[current.id]["status"] == "active"
    await _creative(redis, advertiser.id)  # an unrelated change of the same advertiser
    assert (await _published(redis))[current.id]["status"] == "paused"
    assert await redis.hlen(keys.advertiser_unpublished(advertiser.id)) == 0


async def test_publications_out_of_order_never_put_back_an_older_payload(
    cluster_redis: Redis,
) -> None:
    redis = cluster_redis
    advertiser = await _advertiser(redis)
    newer, older = {"c1": b"7|" + b'{"v":"new"}'}, {"c1": b"6|" + b'{"v":"old"}'}
    assert await store.publish(redis, advertiser.id, newer) == 1
    version = await redis.get(keys.CAMPAIGNS_VERSION)
    assert await store.publish(redis, advertiser.id, older) == 0  # a slow writer, late
    assert await store.publish(redis, advertiser.id, newer) == 0  # a republication
    assert await _published(redis) == {"c1": {"v": "new"}}
    assert await redis.get(keys.CAMPAIGNS_VERSION) == version  # bidders reload nothing


async def test_concurrent_edits_with_one_etag_on_the_cluster_let_exactly_one_win(
    cluster_redis: Redis,
) -> None:
    redis = cluster_redis
    advertiser = await _advertiser(redis)
    creative = await _creative(redis, advertiser.id)
    created = await store.transact(
        redis,
        advertiser.id,
        lambda s: changes.create(s, CAMPAIGN, campaign_body([creative.id]), ADMIN, RULES),
    )
    campaign = created.result

    async def rename(name: str) -> str:
        try:
            await store.transact(
                redis,
                advertiser.id,
                lambda s: changes.patch(
                    s, CAMPAIGN, campaign.id, {"name": name}, campaign.etag, ADMIN, RULES
                ),
            )
        except PreconditionFailed:
            return ""
        return name

    winners = [name for name in await asyncio.gather(*map(rename, "abcdefgh")) if name]
    assert len(winners) == 1
    stored = await store.get(redis, advertiser.id, CAMPAIGN, campaign.id)
    assert stored.body["name"] == winners[0] and stored.version == 2
    assert (await _published(redis))[campaign.id]["name"] == winners[0]
    assert int(await redis.get(keys.advertiser_revision(advertiser.id)) or 0) == 4


async def _bid_for(bidder: Client, campaign_id: str) -> dict[str, Any] | None:
    """The bidder's bid for ``campaign_id``, once it has loaded it (within 2 s), else None."""
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        response = await bidder.post("/openrtb2/bid", data=orjson.dumps(bid_request()))
        if response.status == 200:
            bids = [b for seat in (await response.json())["seatbid"] for b in seat["bid"]]
            found = next((b for b in bids if b["cid"] == campaign_id), None)
            if found is not None:
                return dict(found)
        await asyncio.sleep(0.05)
    return None


def _local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_from_the_admin_command_to_a_bid_a_win_and_the_report(
    bidder: Client, cluster_redis: Redis, cluster_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    redis = cluster_redis
    status, out, err = await admin(
        capsys, cluster_url, "advertisers", "create", "--name", "Acme", "--timezone", "Asia/Tokyo"
    )
    assert status == 0, err
    created = orjson.loads(out)
    api = Api(bidder, Tenant(created["advertiser_id"], created["token"]))
    status, out, _ = await admin(capsys, cluster_url, "advertisers", "list")
    assert status == 0 and created["advertiser_id"] in out

    creative = await api.creative()
    campaign = await api.campaign([creative["id"]], status="paused")
    stale = await api.call(
        "PATCH", f"/campaigns/{campaign['id']}", {"status": "active"}, If_Match='"stale"'
    )
    assert stale.status == 412
    active = await api.call(
        "PATCH", f"/campaigns/{campaign['id']}", {"status": "active"}, If_Match=campaign["etag"]
    )
    assert active.status == 200 and active.body["status"] == "active"

    await store_profile(redis)
    bid = await _bid_for(bidder, campaign["id"])
    assert bid is not None, "the bidder on the cluster never bid for the API's campaign"
    win = await bidder.get(_local(bid["nurl"]).replace("${AUCTION_PRICE}", "1.50"))
    assert win.status == 200 and (await win.json())["charged_micros"] == 1500

    report = await api.call("GET", "/reports")
    assert report.status == 200
    (row,) = report.body["rows"]
    assert (row["campaign"], row["wins"], row["spend_usd"]) == (campaign["id"], 1, 0.0015)
    audit = await api.call("GET", "/audit")
    assert [e["action"] for e in audit.body["items"]][:3] == ["update", "create", "create"]

    status, _, _ = await admin(
        capsys, cluster_url, "tokens", "revoke", "--advertiser", created["advertiser_id"],
        "--token", created["token"],
    )  # fmt: skip
    assert status == 0
    assert (await api.call("GET", "/campaigns")).status == 401


async def test_a_starting_api_process_publishes_what_a_dead_one_left_and_then_bids(
    cluster_redis: Redis, cluster_url: str
) -> None:
    redis = cluster_redis
    advertiser = await _advertiser(redis)
    creative = await _creative(redis, advertiser.id)
    snapshot = await store.load_snapshot(redis, advertiser.id)
    plan = changes.create(snapshot, CAMPAIGN, campaign_body([creative.id]), ADMIN, RULES)
    assert await store.apply_on_cluster(redis, advertiser.id, snapshot.revision, plan)
    await store_profile(redis)
    bidder = await start(
        Settings(redis_url=cluster_url, port=free_port(), signing_key=b"k", campaign_refresh_s=0.05)
    )
    try:
        assert plan.result.id in await _published(redis)  # on start, before any request
        assert await _bid_for(bidder, plan.result.id) is not None
    finally:
        await bidder.close()
