"""issue 12, item 4: the market's hidden conversion model (``adx-mock experiment`` uses it).

Which clicks turn into a purchase (an install, a lead), and what it is worth. Bidders never
see it; they learn it from the postbacks, as they learn clicks. A click converts with a
base rate for the ad's IAB tier-1 category (``BASE_CVR``: a few percent, the middle of the
ranges public e-commerce and app-install benchmarks give) times:

* **purchase intent**, not just interest: the first tag relevant to the ad x1.4, each
  further one x1.1 (up to four more), and a scored relevant tag above 50 up to x2.5 more:
  intent matters more for buying than for clicking (the click model's is x1.6), which is
  what lets a target-CPA bidder beat a target-CPC one on conversions per budget;
* **hidden taste**: a fixed log-normal factor per (tag, ad category), sigma 0.15, seeded
  apart from the click model's.

Values are log-normal around the category's mean order value. Nothing here was tuned to an
experiment's outcome.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Final

from adx_mock.clicks import ClickModel, Shown, tier1
from dmp.taxonomy import Taxonomy

BASE_CVR: Mapping[str, float] = {
    "IAB2": 0.010,  # automotive: a lead
    "IAB9": 0.050,  # games: an install
    "IAB13": 0.015,  # finance: an application
    "IAB18": 0.030,
    "IAB20": 0.020,
    "IAB22": 0.035,  # shopping: an order
}
BASE_CVR_OTHER: Final = 0.020
MEAN_VALUE_USD: Mapping[str, float] = {"IAB2": 60.0, "IAB9": 3.0, "IAB13": 80.0, "IAB20": 150.0}
MEAN_VALUE_OTHER_USD: Final = 40.0
FIRST_RELEVANT: Final = 1.4
MORE_RELEVANT: Final = 1.1
MAX_MORE: Final = 4
INTENT_MAX: Final = 1.5  # a score of 100 on a relevant scored tag: x2.5
TASTE_SIGMA: Final = 0.15
VALUE_SIGMA: Final = 0.5
MAX_CVR: Final = 0.6


class ConversionModel:
    """Conversion probabilities and values of the market seeded ``seed``."""

    def __init__(self, seed: int, taxonomy: Taxonomy | None = None) -> None:
        self._seed = seed
        self._clicks = ClickModel(seed, taxonomy)  # for its relevance of tags to categories
        self._taste: dict[tuple[str, str], float] = {}

    def _factor(self, code: str, ad_cat: str) -> float:
        found = self._taste.get((code, ad_cat))
        if found is None:
            rng = random.Random(f"{self._seed}:cvr:{code}:{ad_cat}")
            found = self._taste[(code, ad_cat)] = math.exp(rng.gauss(0.0, TASTE_SIGMA))
        return found

    def relevant_codes(self, ad_cat: str) -> frozenset[str]:
        """Tag codes relevant to an ad of this category (the click model's)."""
        return self._clicks.relevant_codes(ad_cat)

    def probability(self, shown: Shown) -> float:
        """The chance that a click on ``shown`` converts."""
        ad_cat = tier1(shown.ad_cat)
        p = BASE_CVR.get(ad_cat, BASE_CVR_OTHER)
        relevant = self.relevant_codes(ad_cat)
        hits, intent = 0, 0.0
        for code, score in shown.tags.items():
            p *= self._factor(code, ad_cat)
            if code in relevant:
                hits += 1
                if score is not None:
                    intent = max(intent, (score - 50) / 50)
        if hits:
            p *= FIRST_RELEVANT * MORE_RELEVANT ** min(hits - 1, MAX_MORE)
            p *= 1.0 + INTENT_MAX * max(0.0, intent)
        return min(p, MAX_CVR)

    def value_micros(self, rng: random.Random, ad_cat: str) -> int:
        mean = MEAN_VALUE_USD.get(tier1(ad_cat), MEAN_VALUE_OTHER_USD)
        # log-normal with that mean: mu = ln(mean) - sigma^2 / 2
        mu = math.log(mean) - VALUE_SIGMA**2 / 2
        return int(math.exp(rng.gauss(mu, VALUE_SIGMA)) * 1_000_000)

    def convert(self, rng: random.Random, shown: Shown) -> int | None:
        """After a click: the conversion's value in micros, or None when it does not convert."""
        if rng.random() >= self.probability(shown):
            return None
        return self.value_micros(rng, shown.ad_cat)
