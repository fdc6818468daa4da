"""The simulated market: diurnal supply, competitors, the hidden click model."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest

from adx_mock.auction import (
    MacroValues,
    multipliers_of,
    substitute_macros,
)
from adx_mock.clicks import (
    BASE_CTR,
    CONTEXT_MATCH,
    FIRST_RELEVANT,
    MAX_CTR,
    ClickModel,
    Shown,
)
from adx_mock.competitors import DEFAULT_COMPETITORS, competing_bids
from adx_mock.market import DIURNAL, traffic
from adx_mock.population import generate_population
from dmp.taxonomy import Taxonomy

TAXONOMY = Taxonomy.default()


def shown(tags: Mapping[str, int | None], **extra: object) -> Shown:
    fields: dict[str, object] = {
        "tags": tags, "ad_cat": "IAB2", "w": 300, "h": 250, "kind": "banner",
        "context_cat": ("IAB12",), "hour": 14,
    } | extra  # fmt: skip
    return Shown(**fields)  # type: ignore[arg-type]


def test_click_model_is_seeded_and_its_effects_are_moderate() -> None:
    model, again, other = ClickModel(1, TAXONOMY), ClickModel(1, TAXONOMY), ClickModel(2, TAXONOMY)
    device = {"base.gender.male": None, "interest.tech.phones": None}
    assert model.probability(shown(device)) == again.probability(shown(device))
    assert model.probability(shown(device)) != other.probability(shown(device))

    plain = model.probability(shown({}))
    assert plain == pytest.approx(BASE_CTR[(300, 250)])
    one = model.probability(shown({"interest.automotive.suv": None}))
    # One relevant tag: 1.8x, give or take the hidden per-tag taste (sigma 0.1).
    assert 1.4 * plain < one < 2.3 * plain
    many = {f"interest.automotive.{t}": None for t in ("suv", "sedan", "mpv", "used_cars")}
    intent = many | {"interest.automotive.purchase_intent": 95}
    assert model.probability(shown(intent)) > model.probability(shown(many)) > one
    # Everything favourable together stays a believable CTR, not a tuned jackpot.
    best = model.probability(shown(intent, context_cat=("IAB2",), w=320, h=480))
    assert best < 0.15 and best <= MAX_CTR
    assert model.probability(shown({}, context_cat=("IAB2-3",))) == pytest.approx(
        plain * CONTEXT_MATCH
    )
    assert model.probability(shown({}, hour=3)) < plain
    assert FIRST_RELEVANT < 2.0  # a relevant interest doubles a click's odds at most


def test_relevance_follows_the_ads_category() -> None:
    model = ClickModel(1, TAXONOMY)
    travel = {"interest.travel.flights": None}
    assert model.probability(shown(travel, ad_cat="IAB20")) > 1.4 * model.probability(
        shown(travel, ad_cat="IAB2")
    )


def test_traffic_follows_the_diurnal_curve_and_is_reproducible() -> None:
    population = list(generate_population(300, 1, TAXONOMY))
    first = list(traffic(population, 5, days=2, requests_per_day=3000))
    again = list(traffic(population, 5, days=2, requests_per_day=3000))
    assert [r.request["id"] for r in first] == [r.request["id"] for r in again]
    assert [r.ts_ms for r in first] == sorted(r.ts_ms for r in first)
    hours = Counter(r.hour for r in first)
    night = sum(hours[h] for h in range(2, 5)) / len(first)
    evening = sum(hours[h] for h in range(19, 22)) / len(first)
    assert evening > 5 * night
    assert evening == pytest.approx(sum(DIURNAL[19:22]), abs=0.02)
    # The population's devices mostly, a share from outside it, as real traffic.
    known = sum(r.known for r in first) / len(first)
    assert 0.85 < known < 0.95
    # Sites and apps carry IAB categories.
    assert all(_context(r.request).get("cat") for r in first[:200])


def _context(request: Mapping[str, Any]) -> Mapping[str, Any]:
    found = request.get("app") or request.get("site") or {}
    assert isinstance(found, dict)
    return found


def test_competitors_make_win_rates_realistic() -> None:
    rng = random.Random(3)
    rates = {}
    for kind, small in (("banner", False), ("banner", True), ("interstitial", False)):
        wins = 0
        for _ in range(4000):
            best = max(
                (p for _, p in competing_bids(rng, DEFAULT_COMPETITORS, kind, small, 3)), default=0
            )
            wins += best < 1.5
        rates[(kind, small)] = wins / 4000
    # A $1.50 CPM wins some medium rectangles, most strips and few interstitials.
    assert 0.2 < rates[("banner", False)] < 0.6
    assert rates[("banner", True)] > rates[("banner", False)]
    assert rates[("interstitial", False)] < 0.2


def test_openrtb_26_macros_multiplier_and_impression_time() -> None:
    values = MacroValues("a1", price=1.25, multiplier=2.5, imp_ts_ms=1_700_000_000_123)
    url = "https://d.example/b?p=${AUCTION_PRICE}&m=${AUCTION_MULTIPLIER}&t=${AUCTION_IMP_TS}"
    assert substitute_macros(url, values) == "https://d.example/b?p=1.2500&m=2.5&t=1700000000123"
    assert substitute_macros("${AUCTION_MULTIPLIER}", MacroValues("a1")) == ""
    request = {"imp": [{"id": "1", "qty": {"multiplier": 3}}, {"id": "2"}]}
    assert multipliers_of(request) == {"1": 3.0}
