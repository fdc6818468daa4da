"""The simulated market's traffic: bid requests over simulated days on a diurnal curve.

Each simulated day gets ``requests_per_day`` requests; their hours follow ``DIURNAL``
(mobile traffic: a trough before dawn, a lunch bump, the evening peak), in the market's UTC
clock. Every request keeps the device record it came from, so the click model can judge
the truth, and the fresh randomness of its fate (rendered, clicked, competing bids) is
drawn here, once: strategies replayed over the same traffic meet the same users.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from adx_mock.competitors import DEFAULT_COMPETITORS, Competitor, competing_bids
from adx_mock.supply import SupplyConfig, build_request

# Share of a day's requests in each hour 0..23 (sums to 1).
_HOURLY = (
    20, 12, 8, 6, 6, 10, 22, 38, 48, 50, 50, 52,
    56, 52, 48, 48, 50, 52, 56, 62, 68, 68, 58, 40,
)  # fmt: skip
DIURNAL: tuple[float, ...] = tuple(w / sum(_HOURLY) for w in _HOURLY)
MS_PER_DAY = 86_400_000
MS_PER_HOUR = 3_600_000
# 2026-01-05, a Monday: day 0 of the simulated calendar.
EPOCH_DAY = 20_458


@dataclass(frozen=True, slots=True)
class ImpFate:
    """What the market holds for one impression, drawn before anyone bids."""

    imp_id: str
    kind: str  # banner, interstitial, native, video
    w: int
    h: int
    floor: float
    competition: tuple[tuple[str, float], ...]  # (competitor, CPM)
    render_u: float
    click_u: float


@dataclass(frozen=True, slots=True)
class MarketRequest:
    ts_ms: int
    hour: int
    request: dict[str, object]
    record: Mapping[str, object]
    known: bool  # the device is one the DMP holds (False: a device from outside)
    imps: tuple[ImpFate, ...]


def day_offsets(rng: random.Random, count: int) -> list[int]:
    """``count`` times of day (ms since midnight) drawn from the diurnal curve, sorted."""
    cumulative = list(itertools.accumulate(DIURNAL))
    top = cumulative[-1]
    offsets = []
    for _ in range(count):
        hour = min(23, bisect.bisect_right(cumulative, rng.random() * top))
        offsets.append(hour * MS_PER_HOUR + rng.randrange(MS_PER_HOUR))
    offsets.sort()
    return offsets


def traffic(
    population: Sequence[Mapping[str, object]],
    seed: int,
    *,
    days: int,
    requests_per_day: int,
    first_day: int = 0,
    competitors: Sequence[Competitor] = DEFAULT_COMPETITORS,
    supply: SupplyConfig | None = None,
) -> Iterator[MarketRequest]:
    """The market's requests, day by day in time order; the same arguments, the same stream."""
    supply = supply or SupplyConfig()
    rng = random.Random(seed)
    for day in range(first_day, first_day + days):
        base_ms = (EPOCH_DAY + day) * MS_PER_DAY
        for offset in day_offsets(rng, requests_per_day):
            record = population[rng.randrange(len(population))]
            request = build_request(rng, record, supply)
            ts_ms, hour = base_ms + offset, offset // MS_PER_HOUR
            price_tier = record.get("price_tier")
            tier = price_tier if isinstance(price_tier, int) else 3
            imps = tuple(_fate(rng, imp, competitors, tier) for imp in _imps(request))
            yield MarketRequest(ts_ms, hour, request, record, _known(request, record), imps)


def _imps(request: Mapping[str, object]) -> list[dict[str, object]]:
    imps = request.get("imp")
    return [i for i in imps if isinstance(i, dict)] if isinstance(imps, list) else []


def _fate(
    rng: random.Random, imp: Mapping[str, object], competitors: Sequence[Competitor], tier: int
) -> ImpFate:
    w = h = 0
    if "native" in imp:
        kind = "native"
    elif "video" in imp:
        kind = "video"
    else:
        banner = imp.get("banner")
        if isinstance(banner, dict):
            w, h = int(banner.get("w", 0)), int(banner.get("h", 0))
        kind = "interstitial" if imp.get("instl") == 1 else "banner"
    floor = imp.get("bidfloor", 0.0)
    competition = competing_bids(rng, competitors, kind, h <= 90 and kind == "banner", tier)
    return ImpFate(
        imp_id=str(imp.get("id", "")),
        kind=kind,
        w=w,
        h=h,
        floor=float(floor) if isinstance(floor, int | float) else 0.0,
        competition=tuple(competition),
        render_u=rng.random(),
        click_u=rng.random(),
    )


def _known(request: Mapping[str, object], record: Mapping[str, object]) -> bool:
    device = request.get("device")
    if not isinstance(device, dict):
        return False
    if "ifa" in device:
        return bool(device["ifa"] == record.get("id"))
    digest = hashlib.md5(str(record.get("id", "")).encode(), usedforsecurity=False).hexdigest()
    return bool(device.get("didmd5") == digest)
