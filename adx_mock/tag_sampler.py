"""Draws a device's social, interest and usage tags with believable correlations.

Every tag starts with weight 1; each fact about the device (age band, gender, income level,
country) multiplies the weights of the tags whose codes start with a prefix in
``AFFINITIES``. Social categories and ``usage.device_age`` are exclusive (a device is married
or single, not both): at most one tag each. The rest are drawn without replacement, after
boosting a few favourite interest categories so interests cluster as real profiles do.
Prefixes that the taxonomy lacks match nothing, so the table survives taxonomy edits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dmp.taxonomy import Tag, Taxonomy

_Rules = tuple[tuple[str, float], ...]
_Floats = npt.NDArray[np.float64]

_NOT_MINOR: _Rules = (
    ("social.occupation.student", 0.05),
    ("social.occupation.retired", 0.0),
    ("social.life_stage.retiree", 0.0),
    ("social.life_stage.college_student", 0.05),
)

AFFINITIES: Mapping[str, _Rules] = {
    "base.gender.female": (
        ("interest.beauty", 2.5),
        ("interest.fashion", 2.0),
        ("interest.parenting", 1.8),
        ("interest.shopping", 1.8),
        ("interest.health", 1.3),
        ("interest.automotive", 0.6),
        ("interest.games", 0.6),
        ("interest.sports", 0.6),
        ("interest.tech", 0.7),
        ("social.occupation.homemaker", 3.0),
        ("social.occupation.delivery_rider", 0.2),
        ("social.occupation.professional_driver", 0.2),
    ),
    "base.gender.male": (
        ("interest.automotive", 1.8),
        ("interest.games", 1.8),
        ("interest.sports", 1.8),
        ("interest.tech", 1.7),
        ("interest.beauty", 0.4),
        ("interest.fashion", 0.6),
        ("social.occupation.homemaker", 0.1),
        ("social.occupation.professional_driver", 3.0),
        ("social.occupation.delivery_rider", 2.5),
        ("social.parenthood.expecting", 0.5),
    ),
    "base.age.under_18": (
        ("interest.games", 3.0),
        ("interest.education", 3.0),
        ("interest.video", 1.5),
        ("interest.finance", 0.05),
        ("interest.real_estate", 0.02),
        ("interest.automotive", 0.2),
        ("interest.parenting", 0.02),
        ("interest.career", 0.1),
        ("social.occupation", 0.01),
        ("social.occupation.student", 5000.0),
        ("social.marital_status", 0.01),
        ("social.marital_status.single", 5000.0),
        ("social.parenthood", 0.01),
        ("social.parenthood.no_children", 5000.0),
        ("social.housing", 0.05),
        ("social.housing.living_with_parents", 400.0),
        ("social.car_ownership", 0.01),
        ("social.car_ownership.no_car", 5000.0),
        ("social.life_stage", 0.01),
        ("social.education.junior_high_or_below", 20.0),
        ("social.education.high_school", 10.0),
        ("social.education.bachelor", 0.01),
        ("social.education.master", 0.0),
        ("social.education.doctorate", 0.0),
    ),
    "base.age.18_24": (
        ("interest.games", 2.0),
        ("interest.music", 1.8),
        ("interest.fashion", 1.4),
        ("interest.education", 1.8),
        ("interest.career", 1.8),
        ("interest.parenting", 0.2),
        ("social.occupation.student", 8.0),
        ("social.occupation.retired", 0.0),
        ("social.life_stage.college_student", 10.0),
        ("social.life_stage.new_graduate", 6.0),
        ("social.life_stage.retiree", 0.0),
        ("social.life_stage.empty_nester", 0.0),
        ("social.life_stage.pre_retirement", 0.0),
        ("social.marital_status.single", 6.0),
        ("social.marital_status.in_relationship", 3.0),
        ("social.marital_status.widowed", 0.0),
        ("social.housing.dormitory", 6.0),
        ("social.parenthood.no_children", 8.0),
        ("social.education.doctorate", 0.0),
    ),
    "base.age.25_34": (
        *_NOT_MINOR,
        ("interest.real_estate", 1.6),
        ("interest.parenting", 1.8),
        ("interest.career", 1.5),
        ("interest.travel", 1.3),
        ("social.life_stage.young_professional", 5.0),
        ("social.life_stage.newlywed", 4.0),
        ("social.life_stage.new_parent", 4.0),
        ("social.marital_status.married", 3.0),
        ("social.parenthood.child_0_1", 3.0),
        ("social.parenthood.child_1_3", 3.0),
        ("social.parenthood.expecting", 3.0),
        ("social.occupation.white_collar", 2.5),
        ("social.occupation.it_professional", 2.5),
    ),
    "base.age.35_44": (
        *_NOT_MINOR,
        ("interest.parenting", 2.0),
        ("interest.finance", 1.5),
        ("interest.automotive", 1.4),
        ("interest.real_estate", 1.5),
        ("interest.education", 1.4),
        ("social.life_stage.established_family", 6.0),
        ("social.marital_status.married", 6.0),
        ("social.parenthood.child_primary_school", 4.0),
        ("social.parenthood.child_middle_school", 3.0),
        ("social.housing.homeowner_with_mortgage", 3.0),
        ("social.occupation.business_owner", 2.0),
    ),
    "base.age.45_54": (
        *_NOT_MINOR,
        ("interest.health", 1.8),
        ("interest.finance", 1.7),
        ("interest.games", 0.5),
        ("social.life_stage.established_family", 3.0),
        ("social.life_stage.empty_nester", 3.0),
        ("social.marital_status.married", 6.0),
        ("social.parenthood.child_high_school", 4.0),
        ("social.housing.homeowner", 3.0),
    ),
    "base.age.55_64": (
        *_NOT_MINOR,
        ("interest.health", 2.5),
        ("interest.culture", 1.8),
        ("interest.games", 0.3),
        ("interest.fashion", 0.5),
        ("social.life_stage.pre_retirement", 6.0),
        ("social.life_stage.empty_nester", 4.0),
        ("social.occupation.retired", 6.0),
        ("social.marital_status.married", 5.0),
        ("social.housing.homeowner", 4.0),
    ),
    "base.age.65_plus": (
        *_NOT_MINOR,
        ("interest.health", 3.0),
        ("interest.culture", 2.0),
        ("interest.games", 0.2),
        ("interest.career", 0.05),
        ("social.occupation.retired", 30.0),
        ("social.life_stage.retiree", 15.0),
        ("social.marital_status.widowed", 5.0),
    ),
    "income.low": (
        ("interest.shopping", 1.3),
        ("interest.real_estate", 0.4),
        ("interest.finance.investment", 0.3),
        ("social.car_ownership.no_car", 4.0),
        ("social.car_ownership.luxury_car_owner", 0.02),
        ("social.housing.renter", 2.5),
        ("social.housing.multiple_properties", 0.05),
        ("social.occupation.business_owner", 0.2),
    ),
    "income.high": (
        ("interest.travel", 1.8),
        ("interest.finance", 1.8),
        ("interest.automotive", 1.5),
        ("interest.real_estate", 1.6),
        ("interest.outdoor", 1.3),
        ("social.car_ownership.car_owner", 2.0),
        ("social.car_ownership.luxury_car_owner", 6.0),
        ("social.car_ownership.multiple_cars", 4.0),
        ("social.car_ownership.no_car", 0.2),
        ("social.housing.multiple_properties", 5.0),
        ("social.housing.homeowner", 2.0),
        ("social.education.master", 3.0),
        ("social.education.doctorate", 2.0),
        ("social.occupation.business_owner", 3.0),
        ("social.occupation.finance_professional", 3.0),
    ),
    "country.abroad": (
        ("usage.network.china_", 0.0),
        ("social.migration.migrant_worker", 0.2),
        ("social.migration.returned_from_abroad", 0.0),
    ),
    "country.CHN": (("social.education.studying_abroad", 0.3),),
}

# Categories filled from the device snapshot rather than drawn (see population.py).
DERIVED_CATEGORIES = frozenset(
    {"social.city_tier", "usage.device_brand", "usage.device_price_tier"}
)
EXCLUSIVE_EXTRA = frozenset({"usage.device_age"})

# Share of devices known to have a tag in each exclusive category.
EXCLUSIVE_COVERAGE = 0.55
FAVOURITE_INTERESTS = (2, 5)
FAVOURITE_BOOST = 6.0


@dataclass(frozen=True, slots=True)
class Drawn:
    """A drawn tag with its affinity weight, which scored tags turn into a higher score."""

    tag: Tag
    weight: float


class TagSampler:
    """Weighted tag draws over one taxonomy; build once, call ``draw`` per device."""

    __slots__ = ("_tags", "_segments", "_free", "_interest", "_n_interest", "_affinity")

    def __init__(self, taxonomy: Taxonomy) -> None:
        exclusive, free = _partition(taxonomy.tags)
        self._tags: tuple[Tag, ...] = tuple(tag for group in exclusive for tag in group) + free
        self._segments: tuple[tuple[int, int], ...] = _segments(len(g) for g in exclusive)
        start = len(self._tags) - len(free)
        self._free = np.arange(start, len(self._tags))
        categories = sorted({t.category_code for t in free if t.dimension == "interest"})
        index = {code: i for i, code in enumerate(categories)}
        # Tags outside the interest dimension get the spare index len(categories).
        self._interest = np.array(
            [index.get(t.category_code, len(categories)) for t in self._tags], dtype=np.intp
        )
        self._n_interest = len(categories)
        self._affinity = {
            fact: _rule_vector(self._tags, rules) for fact, rules in AFFINITIES.items()
        }

    def draw(self, rng: np.random.Generator, facts: Iterable[str], budget: int) -> list[Drawn]:
        """Up to ``budget`` tags for a device with these facts (``AFFINITIES`` keys)."""
        weights = np.ones(len(self._tags))
        for fact in facts:
            vector = self._affinity.get(fact)
            if vector is not None:
                weights *= vector
        weights *= self._favourites(rng, weights)
        with np.errstate(divide="ignore"):
            # Gumbel-max: argmax of log-weight plus Gumbel noise is a weighted draw, and
            # the top k of the same keys is a weighted draw of k without replacement.
            keys = np.log(weights) + rng.gumbel(size=len(weights))
        chosen = self._exclusive_picks(rng, keys, budget)
        remaining = budget - len(chosen)
        free_keys = keys[self._free]
        available = int(np.count_nonzero(np.isfinite(free_keys)))
        take = min(remaining, available)
        if take > 0:
            top = np.argpartition(-free_keys, take - 1)[:take]
            chosen.extend(int(i) for i in self._free[top])
        return [Drawn(self._tags[i], float(weights[i])) for i in chosen]

    def _favourites(self, rng: np.random.Generator, weights: _Floats) -> _Floats:
        mask = self._interest < self._n_interest
        per_category = np.bincount(
            self._interest[mask], weights=weights[mask], minlength=self._n_interest
        )
        low, high = FAVOURITE_INTERESTS
        count = min(int(rng.integers(low, high + 1)), int(np.count_nonzero(per_category)))
        chosen = np.zeros(self._n_interest + 1, dtype=bool)
        if count > 0:
            with np.errstate(divide="ignore"):
                keys = np.log(per_category) + rng.gumbel(size=self._n_interest)
            chosen[np.argpartition(-keys, count - 1)[:count]] = True
        return np.where(chosen[self._interest], FAVOURITE_BOOST, 1.0)

    def _exclusive_picks(self, rng: np.random.Generator, keys: _Floats, budget: int) -> list[int]:
        covered = rng.random(len(self._segments)) < EXCLUSIVE_COVERAGE
        picks: list[int] = []
        for (start, end), wanted in zip(self._segments, covered, strict=True):
            if not wanted or len(picks) >= budget:
                continue
            best = start + int(np.argmax(keys[start:end]))
            if math.isfinite(keys[best]):
                picks.append(best)
        return picks


def _partition(tags: Sequence[Tag]) -> tuple[list[list[Tag]], tuple[Tag, ...]]:
    """Exclusive categories (one list each, file order) and the free pool."""
    exclusive: dict[str, list[Tag]] = {}
    free: list[Tag] = []
    for tag in tags:
        category = tag.category_code
        if tag.dimension == "base" or category in DERIVED_CATEGORIES:
            continue
        if tag.dimension == "social" or category in EXCLUSIVE_EXTRA:
            exclusive.setdefault(category, []).append(tag)
        else:
            free.append(tag)
    return list(exclusive.values()), tuple(free)


def _segments(lengths: Iterable[int]) -> tuple[tuple[int, int], ...]:
    segments: list[tuple[int, int]] = []
    start = 0
    for length in lengths:
        segments.append((start, start + length))
        start += length
    return tuple(segments)


def _rule_vector(tags: Sequence[Tag], rules: _Rules) -> _Floats:
    vector = np.ones(len(tags))
    for prefix, factor in rules:
        for i, tag in enumerate(tags):
            if tag.code.startswith(prefix):
                vector[i] *= factor
    return vector
