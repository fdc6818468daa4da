"""Campaigns in Redis: saved as validated JSON with a version counter bidders watch."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import orjson
from redis.asyncio import Redis

from dsp.campaigns.model import Campaign
from dsp.campaigns.validation import campaign_from_dict
from dsp.errors import InvalidCampaign
from infra import keys

log = logging.getLogger(__name__)


async def save_campaigns(redis: Redis, payloads: Iterable[object]) -> list[Campaign]:
    """Validate every payload first, then store them all and bump the version once."""
    payloads = list(payloads)
    campaigns = [campaign_from_dict(payload) for payload in payloads]
    async with redis.pipeline(transaction=True) as pipe:
        for campaign, payload in zip(campaigns, payloads, strict=True):
            pipe.hset(keys.CAMPAIGNS, campaign.id, orjson.dumps(payload))
        pipe.incr(keys.CAMPAIGNS_VERSION)
        await pipe.execute()
    return campaigns


async def load_campaigns(redis: Redis) -> tuple[int, list[Campaign]]:
    """The version and every stored campaign; one that no longer validates is logged, skipped."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.get(keys.CAMPAIGNS_VERSION)
        pipe.hgetall(keys.CAMPAIGNS)
        version, stored = await pipe.execute()
    campaigns = []
    for campaign_id, raw in sorted(stored.items()):
        try:
            campaigns.append(campaign_from_dict(orjson.loads(raw)))
        except (InvalidCampaign, orjson.JSONDecodeError) as error:
            log.error(
                "stored campaign skipped", extra={"campaign": campaign_id, "error": str(error)}
            )
    return int(version or 0), campaigns
