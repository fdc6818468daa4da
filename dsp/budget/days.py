"""Budget days and the time of day, in the campaign's own time zone."""

from __future__ import annotations

from dsp.campaigns.model import Campaign
from dsp.campaigns.schedule import local_day, local_time

DAY_S = 86_400


def budget_day(campaign: Campaign, now: float) -> str:
    """``YYYYMMDD`` of the advertiser's day at ``now``: the day a daily budget is spent on."""
    return local_day(campaign, now)


def seconds_into_day(campaign: Campaign, now: float) -> float:
    """Wall-clock seconds since the advertiser's midnight."""
    local = local_time(campaign, now)
    return local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6


def max_cost_micros(price_micros: int) -> int:
    """The most one impression bid at ``price_micros`` CPM can be charged (rounded up)."""
    return -(-price_micros // 1000)
