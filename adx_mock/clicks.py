"""The market's hidden click model: who clicks which ad, where. Bidders never see it.

A click's probability is a base rate for the ad's format times moderate factors:

* **format** (``BASE_CTR``): in-app banners click at a few tenths of a percent, full-screen
  interstitials near one percent, native in between: the middle of the ranges that public
  mobile-advertising benchmark reports give (display about 0.1-0.5 %, interstitial about
  1-3 %, native about 0.2-1 %). The middle, not the top.
* **relevance of the device's tags** to the ad's IAB category (``RELEVANT``): the first
  relevant tag x1.8, each further one x1.15 (up to four more), a scored intent tag above 50
  up to x1.6 more. Behavioural-targeting studies report lifts of this order for relevant
  audiences (Yan et al., WWW 2009: up to several-fold on the best segments); a device with
  one relevant interest clicks 1.8x, not 10x.
* **context**: a site or app of the ad's own IAB category x1.3; night hours (0-5) x0.85.
* **hidden taste**: a fixed factor per (tag, ad category) and per (age, gender, ad
  category), log-normal with sigma 0.1 and 0.2, drawn from the market seed. Nothing logs
  them; they are the part of reality a model can only partly learn.

The factors were set once from those ranges, before any strategy was run, and are not
tuned to the experiment's outcome. Probabilities are capped at ``MAX_CTR``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from dmp.taxonomy import Taxonomy

BASE_CTR: Mapping[tuple[int, int], float] = {
    (300, 250): 0.0030,
    (320, 50): 0.0015,
    (728, 90): 0.0020,
    (320, 480): 0.0100,  # interstitial
}
BASE_CTR_NATIVE: Final = 0.0050
BASE_CTR_VIDEO: Final = 0.0060
BASE_CTR_OTHER: Final = 0.0020

# IAB tier-1 category of an ad -> the taxonomy categories whose tags make its audience.
RELEVANT: Mapping[str, tuple[str, ...]] = {
    "IAB2": ("interest.automotive", "scene.auto"),
    "IAB5": ("interest.education", "usage.app_education", "scene.education"),
    "IAB7": ("interest.health", "usage.app_health"),
    "IAB9": ("interest.games", "usage.app_games", "scene.games"),
    "IAB13": ("interest.finance", "usage.app_finance", "scene.finance"),
    "IAB18": ("interest.fashion", "interest.beauty"),
    "IAB19": ("interest.tech",),
    "IAB20": ("interest.travel", "usage.app_travel", "scene.travel"),
    "IAB22": ("interest.shopping", "usage.app_shopping", "scene.shopping"),
}
FIRST_RELEVANT: Final = 1.8
MORE_RELEVANT: Final = 1.15
MAX_MORE: Final = 4
INTENT_MAX: Final = 0.6  # a score of 100 on a relevant scored tag: x1.6
CONTEXT_MATCH: Final = 1.3
NIGHT: Final = 0.85
TASTE_SIGMA: Final = 0.1
DEMO_SIGMA: Final = 0.2
MAX_CTR: Final = 0.3


@dataclass(frozen=True, slots=True)
class Shown:
    """One rendered ad, as the click model sees it (the truth, not what a bidder logs)."""

    tags: Mapping[str, int | None]  # every tag code of the device -> its score (None: unscored)
    ad_cat: str  # the ad's IAB category, e.g. "IAB2" or "IAB2-3"
    w: int
    h: int
    kind: str  # banner, native or video
    context_cat: tuple[str, ...]  # IAB categories of the site or app
    hour: int  # local hour 0..23


def tier1(category: str) -> str:
    return category.split("-", 1)[0]


class ClickModel:
    """Click probabilities of the market seeded ``seed`` (taste factors drawn lazily, seeded)."""

    def __init__(self, seed: int, taxonomy: Taxonomy | None = None) -> None:
        self._seed = seed
        self._taxonomy = taxonomy or Taxonomy.default()
        self._relevant: dict[str, frozenset[str]] = {}
        self._taste: dict[tuple[str, str], float] = {}

    def relevant_codes(self, ad_cat: str) -> frozenset[str]:
        """Tag codes relevant to an ad of this category."""
        top = tier1(ad_cat)
        found = self._relevant.get(top)
        if found is None:
            prefixes = RELEVANT.get(top, ())
            found = frozenset(
                tag.code for tag in self._taxonomy.tags if tag.category_code in prefixes
            )
            self._relevant[top] = found
        return found

    def _factor(self, key: str, ad_cat: str, sigma: float) -> float:
        found = self._taste.get((key, ad_cat))
        if found is None:
            # Seeded by name, not by draw order: the same market has the same tastes
            # whatever traffic asks for them first.
            rng = random.Random(f"{self._seed}:{key}:{ad_cat}")
            found = math.exp(rng.gauss(0.0, sigma))
            self._taste[(key, ad_cat)] = found
        return found

    def probability(self, shown: Shown) -> float:
        if shown.kind == "native":
            p = BASE_CTR_NATIVE
        elif shown.kind == "video":
            p = BASE_CTR_VIDEO
        else:
            p = BASE_CTR.get((shown.w, shown.h), BASE_CTR_OTHER)
        ad_cat = tier1(shown.ad_cat)
        relevant = self.relevant_codes(ad_cat)
        hits, intent = 0, 0.0
        demographic = []
        for code, score in shown.tags.items():
            p *= self._factor(code, ad_cat, TASTE_SIGMA)
            if code.startswith(("base.age.", "base.gender.")):
                demographic.append(code)
            if code in relevant:
                hits += 1
                if score is not None:
                    intent = max(intent, (score - 50) / 50)
        if demographic:
            p *= self._factor("|".join(sorted(demographic)), ad_cat, DEMO_SIGMA)
        if hits:
            p *= FIRST_RELEVANT * MORE_RELEVANT ** min(hits - 1, MAX_MORE)
            p *= 1.0 + INTENT_MAX * max(0.0, intent)
        if any(tier1(c) == ad_cat for c in shown.context_cat):
            p *= CONTEXT_MATCH
        if shown.hour < 6:
            p *= NIGHT
        return min(p, MAX_CTR)


def device_tags(record: Mapping[str, object]) -> dict[str, int | None]:
    """Tag code -> score of a population record (None for an unscored tag)."""
    found: dict[str, int | None] = {}
    tags = record.get("tags")
    for entry in tags if isinstance(tags, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("tag"), str):
            score = entry.get("score")
            found[entry["tag"]] = score if isinstance(score, int) else None
    return found


def categories(values: Iterable[object]) -> tuple[str, ...]:
    return tuple(v for v in values if isinstance(v, str))
