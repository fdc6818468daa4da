"""Campaigns in Redis: saved as validated JSON with a version counter bidders watch."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

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


async def campaigns_version(redis: Redis) -> int:
    return int(await redis.get(keys.CAMPAIGNS_VERSION) or 0)


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


async def spent_micros(
    redis: Redis, campaign_ids: Sequence[str], day: str
) -> dict[str, tuple[int, int]]:
    """(total, today's) micros charged, per campaign, in one round trip."""
    if not campaign_ids:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for campaign_id in campaign_ids:
            pipe.get(keys.campaign_spent(campaign_id))
            pipe.get(keys.campaign_spent_day(campaign_id, day))
        values = await pipe.execute()
    return {
        campaign_id: (int(values[2 * i] or 0), int(values[2 * i + 1] or 0))
        for i, campaign_id in enumerate(campaign_ids)
    }
