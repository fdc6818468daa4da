"""Small builders of campaigns, profiles and bid requests for the DSP tests."""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis

from dmp.ids import parse_device_id
from dmp.profile import Snapshot, TagEntry, day_number, encode
from dmp.profile_store import ProfileStore
from dmp.taxonomy import Taxonomy

IDFA = "6D92078A-8246-4BA4-AE5B-76104861E7DC"


def banner_creative(creative_id: str = "cr1", w: int = 300, h: int = 250) -> dict[str, Any]:
    return {
        "id": creative_id,
        "format": "banner",
        "w": w,
        "h": h,
        "image_url": f"https://cdn.example.com/{creative_id}.png",
        "landing_url": f"https://brand.example.com/landing?c={creative_id}",
        "adomain": ["brand.example.com"],
        "cat": ["IAB2"],
    }


def campaign(
    campaign_id: str = "c1",
    *,
    cpm_micros: int = 2_000_000,
    tags: str | None = None,
    creatives: list[dict[str, Any]] | None = None,
    budget_micros: int = 100_000_000,
    **targeting: list[str],
) -> dict[str, Any]:
    return {
        "id": campaign_id,
        "advertiser_id": "adv1",
        "name": f"campaign {campaign_id}",
        "bid": {"strategy": "fixed_cpm", "cpm_micros": cpm_micros},
        "budget": {"total_micros": budget_micros, "daily_micros": budget_micros},
        "targeting": {**({"tags": tags} if tags else {}), **targeting},
        "creatives": creatives or [banner_creative()],
    }


async def store_profile(
    redis: Redis, idfa: str = IDFA, tags: tuple[str, ...] = (), country: str = "CHN"
) -> None:
    taxonomy = Taxonomy.default()
    today = day_number(time.time())
    entries = [TagEntry(taxonomy.tag(code).id, today + 30) for code in tags]
    blob = encode(Snapshot(os="ios", country=country, region="GD"), entries)
    await ProfileStore(redis).put_many([(parse_device_id("idfa", idfa).digests(), blob)])


def bid_request(
    *, ifa: str = IDFA, w: int = 300, h: int = 250, floor: float = 0.5, **extra: Any
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "id": "auction-1",
        "at": 2,
        "tmax": 200,
        "imp": [{"id": "1", "banner": {"w": w, "h": h}, "bidfloor": floor}],
        "app": {"bundle": "com.example.game"},
        "device": {"ifa": ifa, "os": "iOS", "geo": {"country": "CHN", "region": "GD"}},
    }
    request.update(extra)
    return request
