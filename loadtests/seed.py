"""What the bidder under load holds: a DMP population, campaigns, and an advertiser with an
API token; and the request templates naming the stored devices."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import uvloop
from redis.asyncio import Redis

from bench.campaigns import campaign_payloads
from bench.devices import store_population, store_slice
from dmp.taxonomy import Taxonomy
from dsp.admin import create_advertiser
from dsp.campaigns.store import save_campaigns
from loadtests.bodies import synthetic_templates, write_templates

TEMPLATES = 5000  # distinct synthetic requests, cycled
_ONE_PROCESS_BELOW = 100_000  # devices: writer processes cost more than they save


@dataclass(frozen=True, slots=True)
class Seeded:
    devices: int
    campaigns: int
    templates: int
    advertiser_id: str
    token: str


async def _campaigns_and_advertiser(url: str, campaigns: int, seed: int) -> tuple[str, str]:
    redis = Redis.from_url(url)
    try:
        await save_campaigns(redis, campaign_payloads(campaigns, seed, Taxonomy.default()))
        record, token, _ = await create_advertiser(redis, "Load test", "UTC")
        return record.id, token
    finally:
        await redis.aclose()


def seed_bidder(url: str, devices: int, campaigns: int, seed: int, templates_path: Path) -> Seeded:
    """Store ``devices`` profiles and ``campaigns`` campaigns in the Redis at ``url``, create
    an advertiser and its token, and write request templates for a sample of the devices."""
    every = max(1, devices // TEMPLATES)
    if devices < _ONE_PROCESS_BELOW:
        stored = store_slice(url, 0, devices, seed, every)
    else:
        stored = store_population(url, devices, seed, sample_every=every)
    written = write_templates(templates_path, synthetic_templates(stored.sample, seed))
    advertiser_id, token = uvloop.run(_campaigns_and_advertiser(url, campaigns, seed))
    return Seeded(stored.devices, campaigns, written, advertiser_id, token)
