"""Time in the advertiser's zone: flight dates, daypart, quiet hours, frequency-cap windows.

Evaluated by each bidder's refresher a few times a second, never per request: the result
is a mask of lines that may not bid now, and the counter field of each capped campaign.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo

from dsp.campaigns.model import Campaign, CapWindow


@functools.lru_cache(maxsize=512)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def local_time(campaign: Campaign, now: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(now, _zone(campaign.timezone))


@functools.lru_cache(maxsize=4096)
def _day_of_minute(zone: str, minute: int) -> str:
    return dt.datetime.fromtimestamp(minute * 60, _zone(zone)).strftime("%Y%m%d")


@functools.lru_cache(maxsize=4096)
def _offset_of_minute(zone: str, minute: int) -> float:
    offset = dt.datetime.fromtimestamp(minute * 60, _zone(zone)).utcoffset()
    return offset.total_seconds() if offset is not None else 0.0


def seconds_into_local_day(campaign: Campaign, now: float) -> float:
    """Wall-clock seconds since midnight in the campaign's zone: ``now`` plus the zone's
    offset, which, like the day, holds all minute long (one conversion a minute and zone)."""
    return (now + _offset_of_minute(campaign.timezone, int(now // 60))) % 86_400


def local_day(campaign: Campaign, now: float) -> str:
    """``YYYYMMDD`` in the campaign's zone. Every zone's midnight falls on a whole minute, so
    the day is the same all minute long: one zone conversion a minute, not one a campaign
    and refresh (the refresher asks for every campaign's day several times a second)."""
    return _day_of_minute(campaign.timezone, int(now // 60))


def _in_quiet_hours(minute: int, quiet: tuple[int, int]) -> bool:
    start, end = quiet
    if start <= end:
        return start <= minute < end
    return minute >= start or minute < end  # the quiet span crosses midnight


def may_bid_at(campaign: Campaign, now: float) -> bool:
    """Inside the flight dates and the daypart grid, outside quiet hours."""
    if (campaign.start is not None and now < campaign.start) or (
        campaign.end is not None and now >= campaign.end
    ):
        return False
    targeting = campaign.targeting
    if targeting.daypart is None and targeting.quiet_hours is None:
        return True
    local = local_time(campaign, now)
    if targeting.daypart is not None and not targeting.daypart[local.weekday() * 24 + local.hour]:
        return False
    quiet = targeting.quiet_hours
    return quiet is None or not _in_quiet_hours(local.hour * 60 + local.minute, quiet)


def cap_field(campaign: Campaign, now: float) -> str | None:
    """The counter field (per device) of the campaign's current frequency-cap window."""
    cap = campaign.targeting.frequency_cap
    if cap is None:
        return None
    if cap.per is CapWindow.LIFETIME:
        return f"{campaign.id}:l"
    if cap.per is CapWindow.HOUR:
        return f"{campaign.id}:h{int(now // 3600)}"
    return f"{campaign.id}:d{local_day(campaign, now)}"


def cap_ttl_s(campaign: Campaign) -> int:
    """How long a device's counter must outlive its window."""
    cap = campaign.targeting.frequency_cap
    if cap is None or cap.per is CapWindow.LIFETIME:
        return 400 * 86400
    return 2 * 3600 if cap.per is CapWindow.HOUR else 2 * 86400
