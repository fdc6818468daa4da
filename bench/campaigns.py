"""Synthetic campaigns for the benchmarks: varied tags, places, systems, formats and prices.

Payloads are shaped as ``dsp.demo_campaigns`` makes them, so they go through the same
validation (``campaign_from_dict``) and storage as an advertiser's.
"""

from __future__ import annotations

import random
from typing import Any

from adx_mock import geo, supply
from dmp.taxonomy import Taxonomy
from dsp.campaigns.model import Campaign
from dsp.campaigns.validation import campaign_from_dict

# A size no request asks for: some lines never match on format, as in real accounts.
_RARE_SIZES = ((160, 600), (300, 600))
_CATEGORIES = ("IAB1", "IAB2", "IAB3", "IAB8", "IAB13", "IAB17", "IAB19", "IAB22")
_COUNTRIES = sorted({city.country for city in geo.CITIES})
_CHINESE_REGIONS = sorted({city.region for city in geo.CITIES if city.country == "CHN"})


class _Expressions:
    """Tag expressions of the shapes advertisers write, over the taxonomy's own codes."""

    def __init__(self, taxonomy: Taxonomy, rng: random.Random) -> None:
        self._rng = rng
        self._tags = [tag.code for tag in taxonomy.tags if not tag.code.startswith("base.")]
        self._base = [tag.code for tag in taxonomy.tags if tag.code.startswith("base.")]
        self._scored = [tag.code for tag in taxonomy.tags if tag.scored]
        self._categories = [c for c in taxonomy.categories() if not c.startswith("base.")]

    def _any(self) -> str:
        pick = self._rng.choice
        return pick(self._tags) if self._rng.random() < 0.6 else pick(self._categories)

    def make(self) -> str | None:
        rng, pick = self._rng, self._rng.choice
        shape = rng.randrange(8)
        if shape == 0:
            return None  # run of network
        if shape == 1:
            return self._any()
        if shape == 2:
            return " OR ".join(self._any() for _ in range(rng.randint(2, 4)))
        if shape == 3:
            return f"{pick(self._categories)} AND {pick(self._base)}"
        if shape == 4:
            return f"{self._any()} AND NOT {pick(self._tags)}"
        if shape == 5:
            return f"{pick(self._base)} AND ({self._any()} OR {self._any()})"
        if shape == 6:
            return f"{pick(self._scored)} >= {rng.randrange(30, 90, 5)}"
        return f"{pick(self._scored)} >= {rng.randrange(30, 90, 5)} OR {pick(self._categories)}"


def _targeting(rng: random.Random, expressions: _Expressions) -> dict[str, Any]:
    targeting: dict[str, Any] = {"countries": [], "os": []}
    if rng.random() < 0.5:
        targeting["countries"] = ["CHN"] if rng.random() < 0.6 else rng.sample(_COUNTRIES, 2)
        if targeting["countries"] == ["CHN"] and rng.random() < 0.2:
            targeting["regions"] = rng.sample(_CHINESE_REGIONS, rng.randint(1, 3))
    if rng.random() < 0.4:
        targeting["os"] = [rng.choice(("ios", "android"))]
    tags = expressions.make()
    if tags is not None:
        targeting["tags"] = tags
    return targeting


def _creatives(index: int, rng: random.Random) -> list[dict[str, Any]]:
    domain = f"brand{index % 997}.example.com"
    common = {
        "landing_url": f"https://{domain}/offer/{index}",
        "adomain": [domain],
        "cat": [rng.choice(_CATEGORIES)],
    }
    sizes = rng.sample(supply.BANNER_SIZES + _RARE_SIZES, rng.randint(1, 3))
    creatives: list[dict[str, Any]] = [
        {
            "id": f"b{w}x{h}",
            "format": "banner",
            "w": w,
            "h": h,
            "image_url": f"https://cdn.example.com/{domain}/{w}x{h}.png",
            **common,
        }
        for w, h in sizes
    ]
    if rng.random() < 0.3:
        image = f"https://cdn.example.com/{domain}/native.png"
        creatives.append(
            {"id": "native", "format": "native", "title": f"Offer {index}", "image_url": image}
            | common
        )
    if rng.random() < 0.15:
        media = f"https://cdn.example.com/{domain}/spot.mp4"
        creatives.append({"id": "video", "format": "video", "media_url": media} | common)
    return creatives


def campaign_payloads(count: int, seed: int, taxonomy: Taxonomy) -> list[dict[str, Any]]:
    """``count`` campaign payloads, the same ones for the same ``seed``."""
    rng = random.Random(seed)
    expressions = _Expressions(taxonomy, rng)
    budget = 10**15  # never runs out during a benchmark
    return [
        {
            "id": f"bench-{index:05d}",
            "advertiser_id": f"adv-{index % 50}",
            "name": f"Benchmark campaign {index}",
            "bid": {
                "strategy": "fixed_cpm",
                "cpm_micros": rng.randrange(300_000, 8_000_000, 10_000),
            },
            "budget": {"total_micros": budget, "daily_micros": budget},
            "targeting": _targeting(rng, expressions),
            "creatives": _creatives(index, rng),
        }
        for index in range(count)
    ]


def make_campaigns(count: int, seed: int, taxonomy: Taxonomy) -> list[Campaign]:
    """The payloads validated into campaigns, as the bidder loads them."""
    return [campaign_from_dict(payload) for payload in campaign_payloads(count, seed, taxonomy)]
