"""The bid decision: pure, over a parsed request, a device profile and the campaign index."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dmp.profile import Profile
from dsp.bidder.openrtb import BidRequest, Imp
from dsp.campaigns.index import CampaignIndex, Line

_NO_TAGS: Mapping[int, int] = {}


@dataclass(frozen=True, slots=True)
class Bid:
    imp: Imp
    line: Line


def _allowed_by_request(line: Line, request: BidRequest) -> bool:
    creative = line.creative
    if request.blocked_domains and not request.blocked_domains.isdisjoint(creative.adomain):
        return False
    return not (
        request.blocked_categories and not request.blocked_categories.isdisjoint(creative.cat)
    )


def _best_line(
    candidates: int,
    floor_micros: int,
    tags: Mapping[int, int],
    index: CampaignIndex,
    request: BidRequest,
) -> Line | None:
    lines = index.lines
    while candidates:
        lowest = candidates & -candidates
        line = lines[lowest.bit_length() - 1]
        if line.price_micros < floor_micros:
            return None  # lines are ordered by price: every later one pays less
        if (line.tags is None or line.tags(tags)) and _allowed_by_request(line, request):
            return line
        candidates ^= lowest
    return None


def decide(
    request: BidRequest, profile: Profile | None, index: CampaignIndex, blocked_lines: int
) -> list[Bid]:
    """The best line per imp, or nothing. ``profile`` is None when no DMP data may be used.

    ``blocked_lines`` holds the lines of campaigns that must not bid now (budget spent).
    """
    country = request.country or (profile.country if profile else "")
    region = request.region or (profile.region if profile else "")
    os = request.os or (profile.os if profile else "")
    eligible = index.audience_lines(country, region, os) & ~blocked_lines
    if profile is None:
        eligible &= index.untargeted
    tags = profile.tags if profile is not None else _NO_TAGS
    bids = []
    for imp in request.imps:
        if imp.floor_micros is None or not eligible:
            continue
        formats = index.format_lines(
            imp.banner_sizes, imp.native is not None, imp.video_size is not None
        )
        line = _best_line(eligible & formats, imp.floor_micros, tags, index, request)
        if line is not None:
            bids.append(Bid(imp, line))
    return bids
