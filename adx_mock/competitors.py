"""Competing DSPs: each bids on a share of impressions with its own price distribution.

A competitor's CPM is log-normal around its median, scaled for the format (video and
interstitials cost more, small banners less) and for the handset's price tier (richer
audiences cost more). Medians and spreads are in the range public programmatic CPM reports
give for mobile open-exchange inventory (about $0.5-3 CPM for banners); the mix makes a
$1.50 CPM bid win a minority of the auctions it enters, as an open exchange does.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

FORMAT_PRICE = {"banner": 1.0, "interstitial": 2.2, "native": 1.4, "video": 3.5}
SMALL_BANNER = 0.6  # 320x50 and other strips
TIER_STEP = 0.08  # each price tier above 3 adds 8 %, below takes 8 %


@dataclass(frozen=True, slots=True)
class Competitor:
    name: str
    participation: float  # share of impressions it bids on
    median_cpm: float  # USD, for a 300x250 banner on a mid-tier handset
    sigma: float  # log-normal spread

    def bid(self, rng: random.Random, kind: str, small: bool, price_tier: int) -> float | None:
        if rng.random() >= self.participation:
            return None
        scale = FORMAT_PRICE.get(kind, 1.0) * (SMALL_BANNER if small else 1.0)
        scale *= 1.0 + TIER_STEP * (price_tier - 3 if price_tier else 0)
        return round(self.median_cpm * scale * math.exp(rng.gauss(0.0, self.sigma)), 4)


DEFAULT_COMPETITORS: tuple[Competitor, ...] = (
    Competitor("network-dsp", 0.90, 0.60, 0.5),
    Competitor("performance-dsp", 0.70, 1.10, 0.6),
    Competitor("brand-dsp", 0.45, 1.60, 0.5),
    Competitor("app-install-dsp", 0.50, 1.00, 0.7),
    Competitor("retargeter", 0.15, 2.80, 0.5),
    Competitor("premium-dsp", 0.08, 4.50, 0.4),
)


def competing_bids(
    rng: random.Random,
    competitors: Sequence[Competitor],
    kind: str,
    small: bool,
    price_tier: int,
) -> list[tuple[str, float]]:
    """(competitor, CPM) of every competitor that bids on this impression."""
    bids = []
    for competitor in competitors:
        price = competitor.bid(rng, kind, small, price_tier)
        if price is not None:
            bids.append((competitor.name, price))
    return bids
