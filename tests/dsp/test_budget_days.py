"""The advertiser's day and time of day, against ``datetime`` in the campaign's own zone."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from dsp.budget.days import budget_day, seconds_into_day
from dsp.campaigns.validation import campaign_from_dict
from tests.dsp.factories import campaign

# Whole-hour, half-hour and 45-minute offsets, both hemispheres' daylight saving, and
# Lord Howe, whose clocks move by half an hour.
ZONES = (
    "UTC", "America/New_York", "Europe/London", "Asia/Kolkata", "Asia/Kathmandu",
    "Australia/Lord_Howe", "Pacific/Chatham", "America/Sao_Paulo", "Asia/Shanghai",
)  # fmt: skip


def _instants() -> list[float]:
    """Every 7 min 13.25 s across the days around this year's clock changes in New York,
    London and Lord Howe, and a sample of the rest of the year."""
    starts = ["2026-03-07", "2026-03-28", "2026-04-04", "2026-10-03", "2026-10-24", "2026-10-31"]
    instants = []
    for start in starts:
        first = dt.datetime.fromisoformat(start).replace(tzinfo=dt.UTC).timestamp()
        instants += [first + k * 433.25 for k in range(3 * 24 * 60 * 60 // 433)]
    year = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()
    instants += [year + k * 86_399.5 for k in range(365)]
    return instants


@pytest.mark.parametrize("zone", ZONES)
def test_seconds_into_the_day_and_the_day_match_the_zone_s_wall_clock(zone: str) -> None:
    ours = campaign_from_dict({**campaign("c1"), "timezone": zone})
    assert ours.timezone == zone
    tz = zoneinfo.ZoneInfo(zone)
    for now in _instants():
        local = dt.datetime.fromtimestamp(now, tz)
        wall = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        assert seconds_into_day(ours, now) == pytest.approx(wall, abs=1e-6), (zone, now)
        assert budget_day(ours, now) == local.strftime("%Y%m%d"), (zone, now)
