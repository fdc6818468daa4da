"""The bid decision: pure, over a parsed request, a device profile and the campaign index."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from dmp.profile import Profile
from dsp.bidder.openrtb import BidRequest, Imp
from dsp.campaigns.index import PRIOR_CTR, WINDOW, CampaignIndex, Line, bid_price_micros
from dsp.campaigns.model import BidStrategy

_NO_TAGS: Final[Mapping[int, int]] = {}


@dataclass(slots=True, init=False, unsafe_hash=True)  # a value class: see ``infra.compiled``
class Bid:
    imp: Final[Imp]
    line: Final[Line]

    def __init__(self, imp: Imp, line: Line) -> None:
        self.imp = imp
        self.line = line


@dataclass(frozen=True, slots=True)
class Moment:
    """What the refresher knows about now: lines that may not bid (budget, daypart, dates)
    and the frequency-counter field of each capped campaign's current window."""

    blocked_lines: int = 0
    cap_fields: Mapping[str, str] = field(default_factory=dict)


def _allowed_by_request(line: Line, request: BidRequest) -> bool:
    creative = line.creative
    if request.blocked_domains and not request.blocked_domains.isdisjoint(creative.adomain):
        return False
    return not (
        request.blocked_categories and not request.blocked_categories.isdisjoint(creative.cat)
    )


@dataclass(slots=True, init=False, unsafe_hash=True)  # a value class: see ``infra.compiled``
class _Context:
    request: Final[BidRequest]
    tags: Final[Mapping[int, int]]
    counters: Final[Mapping[str, int] | None]
    moment: Final[Moment]
    index: Final[CampaignIndex]

    def __init__(
        self,
        request: BidRequest,
        tags: Mapping[int, int],
        counters: Mapping[str, int] | None,
        moment: Moment,
        index: CampaignIndex,
    ) -> None:
        self.request = request
        self.tags = tags
        self.counters = counters
        self.moment = moment
        self.index = index


def _passes_checks(line: Line, ctx: _Context) -> bool:
    """The per-line checks that bitsets cannot do, run only on the few surviving lines."""
    if line.tags is not None and not line.tags(ctx.tags):
        return False
    if line.os_min_version:
        minimum = line.os_min_version.get(ctx.request.os)
        if minimum is not None and ctx.request.os_version < minimum:
            return False
    if line.cap is not None:
        if ctx.counters is None:
            return False  # no device to count impressions against: the cap cannot hold
        counter = ctx.moment.cap_fields.get(line.campaign.id)
        if counter is not None and ctx.counters.get(counter, 0) >= line.cap.count:
            return False
    return ctx.index.circles.contains(line.bit, ctx.request.point)


def _price(line: Line, imp: Imp, ctx: _Context) -> int:
    """What ``line`` bids for ``imp``: its fixed CPM, or target CPC x pCTR x 1000 (capped)."""
    if line.campaign.strategy is BidStrategy.FIXED_CPM:
        return line.price_micros
    predictor = ctx.index.ctr
    predicted = None if predictor is None else predictor.predict(line, ctx.tags, ctx.request, imp)
    if line.campaign.strategy is BidStrategy.TARGET_CPA:  # issue 12: x pCVR; none: no bid
        cvr = ctx.index.cvr
        pcvr = None if cvr is None else cvr.predict(line, ctx.tags, ctx.request, imp)
        return bid_price_micros(line.campaign, PRIOR_CTR if predicted is None else predicted, pcvr)
    if predicted is None:
        return line.price_micros  # the prior CTR's price, worked out when the index was built
    return bid_price_micros(line.campaign, predicted)


def _best_line(candidates: int, imp: Imp, ctx: _Context) -> tuple[tuple[Line, int] | None, bool]:
    """The best-paying line at or above the floor, and its price; and whether that is final
    (False: the candidates ran out before any line could have ended the search).

    Lines come by descending highest price; a fixed-CPM line pays exactly that, a target-CPC
    line at most its cap. So the search stops at the first line whose highest price cannot
    beat the best found (or the floor), and a fixed line that passes ends it.
    """
    floor_micros = imp.floor_micros or 0
    lines, checked = ctx.index.lines, ctx.index.checked
    best: tuple[Line, int] | None = None
    while candidates:
        lowest = candidates & -candidates
        line = lines[lowest.bit_length() - 1]
        highest = line.campaign.cpm_micros
        if highest < floor_micros or (best is not None and highest <= best[1]):
            return best, True  # lines are ordered by highest price: every later one pays less
        if (not lowest & checked or _passes_checks(line, ctx)) and _allowed_by_request(
            line, ctx.request
        ):
            price = _price(line, imp, ctx)
            if price >= floor_micros and price > 0 and (best is None or price > best[1]):
                best = (line, price)
            if line.campaign.strategy is BidStrategy.FIXED_CPM:
                return best, True
        candidates ^= lowest
    return best, False


def _eligible(
    request: BidRequest,
    profile: Profile | None,
    index: CampaignIndex,
    moment: Moment,
    within: int,
) -> int:
    """Lines of ``within`` that the request's bitset dimensions and the moment allow."""
    country = request.country or (profile.country if profile else "")
    region = request.region or (profile.region if profile else "")
    os = request.os or (profile.os if profile else "")
    eligible = index.request_lines(request, country, region, os, within)
    if moment.blocked_lines:
        eligible &= ~moment.blocked_lines
    if profile is None:
        eligible &= index.untargeted
    return eligible


def decide(
    request: BidRequest,
    profile: Profile | None,
    index: CampaignIndex,
    moment: Moment,
    counters: Mapping[str, int] | None = None,
) -> list[Bid]:
    """The best line per imp, or nothing. ``profile`` is None when no DMP data may be used;
    ``counters`` are the device's frequency counters, None when there is no device.

    The search runs first among the index's best-paying lines (``WINDOW``), and over
    every line only for an imp it left undecided: the same answer, at a cost that does not
    grow with the number of campaigns for most requests.
    """
    eligible = _eligible(request, profile, index, moment, WINDOW)
    everything: int | None = None  # every eligible line, once an imp needs them
    ctx = _Context(
        request, profile.tags if profile is not None else _NO_TAGS, counters, moment, index
    )
    bids = []
    for imp in request.imps:
        if imp.floor_micros is None:
            continue
        native, video = imp.native is not None, imp.video_size is not None
        candidates = index.format_lines(imp.banner_sizes, native, video, eligible)
        best, final = _best_line(candidates, imp, ctx)
        if not final and index.beyond_window:
            if everything is None:
                everything = _eligible(request, profile, index, moment, -1)
            candidates = index.format_lines(imp.banner_sizes, native, video, everything)
            best, _ = _best_line(candidates, imp, ctx)
        if best is not None:
            line, price = best
            if price != line.price_micros:  # a target-CPC bid priced for this imp
                line = dataclasses.replace(line, price_micros=price)
            bids.append(Bid(imp, line))
    return bids
