"""Group ``targeting``: the cost of ``decide()`` per bid request, by size of the campaign index.

Requests are parsed and profiles decoded beforehand, so the figure is the decision alone:
bitset lookups and ANDs over the index, then tag expressions of the surviving lines.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson

from adx_mock.supply import bid_requests
from bench import devices
from bench.campaigns import make_campaigns
from bench.figures import Figures
from dmp.profile import Profile, day_number, decode
from dmp.taxonomy import Taxonomy
from dsp.bidder.decide import Moment, decide
from dsp.bidder.openrtb import BidRequest, parse_bid_request
from dsp.campaigns.index import CampaignIndex
from infra.settings import DEFAULT_FX_PER_USD

FIGURES = ("targeting_us_100_campaigns", "targeting_us_10k_campaigns", "targeting_ratio_10k_vs_100")


@dataclass(frozen=True, slots=True)
class Case:
    """One bid request as the bidder holds it after the DMP lookup."""

    request: BidRequest
    profile: Profile | None
    counters: Mapping[str, int] | None  # frequency counters; None without a usable device ID


def make_cases(population: int, requests: int, seed: int, taxonomy: Taxonomy) -> list[Case]:
    """Parsed requests with the decoded profile of their device (None if unknown or private)."""
    today = day_number(time.time())
    records = devices.templates(population, seed, taxonomy)
    maker = devices.ProfileMaker(taxonomy, today, seed)
    profiles = {devices.digests(record)[0]: decode(maker.blob(record), today) for record in records}
    cases = []
    for raw in itertools.islice(bid_requests(records, seed), requests):
        request = parse_bid_request(
            orjson.loads(orjson.dumps(raw)),
            default_tmax_ms=100,
            max_tmax_ms=2000,
            fx_per_usd=DEFAULT_FX_PER_USD,
        )
        keys = [] if request.privacy_restricted else [d.key for d in request.device_ids]
        profile = next((profiles[key] for key in keys if key in profiles), None)
        cases.append(Case(request, profile, {} if keys else None))
    return cases


def time_decide(cases: Sequence[Case], index: CampaignIndex, repeats: int) -> tuple[float, int]:
    """Best of ``repeats`` passes, in microseconds per request; and how many requests bid."""
    moment = Moment()  # nothing blocked, no frequency caps
    answered = sum(1 for c in cases if decide(c.request, c.profile, index, moment, c.counters))
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter_ns()
        for case in cases:
            decide(case.request, case.profile, index, moment, case.counters)
        best = min(best, time.perf_counter_ns() - started)
    return best / 1000 / len(cases), answered


def _measure(
    figures: Figures, name: str, count: int, cases: Sequence[Case], seed: int, repeats: int
) -> float:
    taxonomy = Taxonomy.default()
    started = time.perf_counter()
    index = CampaignIndex.build(make_campaigns(count, seed, taxonomy), taxonomy)
    built_s = time.perf_counter() - started
    micros, answered = time_decide(cases, index, repeats)
    note = (
        f"{count:,} campaigns, {len(index.lines):,} lines (built in {built_s:.1f} s), "
        f"{answered / len(cases):.0%} of requests bid"
    )
    return figures.add(name, micros, "us/request", note)


def run_targeting(
    figures: Figures,
    *,
    small: int = 100,
    large: int = 10_000,
    population: int = 2000,
    requests: int = 3000,
    seed: int = 1,
    repeats: int = 5,
) -> None:
    """Figures ``targeting_us_100_campaigns`` (``small``) and ``..._10k_...`` (``large``)."""
    cases = make_cases(population, requests, seed, Taxonomy.default())
    known = sum(case.profile is not None for case in cases)
    figures.say(f"targeting: {len(cases):,} requests, {known / len(cases):.0%} with a profile")
    few = _measure(figures, FIGURES[0], small, cases, seed, repeats)
    many = _measure(figures, FIGURES[1], large, cases, seed, repeats)
    figures.add(FIGURES[2], many / few, "x", f"{large:,} vs {small:,} campaigns")
