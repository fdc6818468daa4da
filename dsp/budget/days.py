"""Budget days and the time of day, in the campaign's own time zone."""

from __future__ import annotations

from dsp.campaigns.model import Campaign
from dsp.campaigns.schedule import local_day, seconds_into_local_day

DAY_S = 86_400


def budget_day(campaign: Campaign, now: float) -> str:
    """``YYYYMMDD`` of the advertiser's day at ``now``: the day a daily budget is spent on."""
    return local_day(campaign, now)


def seconds_into_day(campaign: Campaign, now: float) -> float:
    """Wall-clock seconds since the advertiser's midnight."""
    return seconds_into_local_day(campaign, now)


def max_cost_micros(price_micros: int) -> int:
    """The most one impression bid at ``price_micros`` CPM can be charged (rounded up)."""
    return -(-price_micros // 1000)
