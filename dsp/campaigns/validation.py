"""Campaign and creative payloads (JSON) into frozen records, naming the first bad field.

A campaign payload in its stored form carries its creatives inline; the advertiser API
resolves creative references before it calls ``campaign_from_dict``.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass

from dmp.errors import DmpError
from dmp.tag_expression import parse
from dsp.campaigns.model import (
    BidStrategy,
    Billing,
    Campaign,
    CapWindow,
    Creative,
    CreativeFormat,
    FrequencyCap,
    Pacing,
    Radius,
    Status,
    Targeting,
)
from dsp.campaigns.reader import Reader
from dsp.errors import InvalidCampaign

_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_VERSION = re.compile(r"^\d+(\.\d+){0,3}$")


def _creative(reader: Reader) -> Creative:
    fmt = reader.choice("format", CreativeFormat)
    common = {
        "id": reader.text("id", max_len=64),
        "landing_url": reader.url("landing_url"),
        "adomain": reader.strings("adomain"),
        "cat": reader.strings("cat"),
    }
    if fmt is CreativeFormat.BANNER:
        return Creative(
            format=fmt,
            w=reader.integer("w", minimum=1, maximum=4096),
            h=reader.integer("h", minimum=1, maximum=4096),
            image_url=reader.url("image_url"),
            **common,  # type: ignore[arg-type]
        )
    if fmt is CreativeFormat.NATIVE:
        return Creative(
            format=fmt,
            title=reader.text("title", max_len=90),
            description=reader.text("description", "", max_len=500),
            image_url=reader.url("image_url"),
            **common,  # type: ignore[arg-type]
        )
    creative = Creative(
        format=fmt,
        w=reader.integer("w", minimum=1, maximum=4096, default=640),
        h=reader.integer("h", minimum=1, maximum=4096, default=360),
        vast_url=reader.url("vast_url", required=False),
        media_url=reader.url("media_url", required=False),
        duration_s=reader.integer("duration_s", minimum=1, maximum=600, default=15),
        **common,  # type: ignore[arg-type]
    )
    if not (creative.vast_url or creative.media_url):
        raise reader.fail("vast_url", "a video needs vast_url or media_url")
    return creative


def creative_from_dict(data: object, path: str = "") -> Creative:
    """Validate one creative payload; raises ``InvalidCampaign`` naming the first bad field."""
    return _creative(Reader(data, path))


def _tag_expression(reader: Reader) -> str | None:
    if not reader.has("tags"):
        return None
    text = reader.text("tags", max_len=4000)
    try:
        parse(text)
    except DmpError as error:
        raise reader.fail("tags", str(error)) from None
    return text


def _os(reader: Reader) -> tuple[frozenset[str], tuple[tuple[str, tuple[int, ...]], ...]]:
    """``os``: names (``"ios"``) or objects (``{"name": "ios", "min_version": "14.0"}``)."""
    value = reader.data.get("os", [])
    if not isinstance(value, list):
        raise reader.fail("os", "expected a list")
    names: set[str] = set()
    minimums: list[tuple[str, tuple[int, ...]]] = []
    for i, item in enumerate(value):
        if isinstance(item, str) and item:
            names.add(item.lower())
            continue
        entry = Reader(item, f"{reader.field('os')}[{i}]")
        name = entry.text("name", max_len=32).lower()
        names.add(name)
        if entry.has("min_version"):
            version = entry.text("min_version", max_len=16)
            if not _VERSION.match(version):
                raise entry.fail("min_version", "expected a version like 14 or 14.2")
            minimums.append((name, tuple(int(part) for part in version.split("."))))
    return frozenset(names), tuple(minimums)


def _daypart(reader: Reader) -> tuple[bool, ...] | None:
    if not reader.has("daypart"):
        return None
    days = reader.data["daypart"]
    if not isinstance(days, list) or len(days) != 7:
        raise reader.fail("daypart", "expected 7 lists of hours, Monday first")
    flags = [False] * 168
    for day, hours in enumerate(days):
        if not isinstance(hours, list) or not all(
            isinstance(h, int) and not isinstance(h, bool) and 0 <= h <= 23 for h in hours
        ):
            raise InvalidCampaign(f"{reader.field('daypart')}[{day}]", "expected hours 0..23")
        for hour in hours:
            flags[day * 24 + hour] = True
    return tuple(flags)


def _minute_of_day(reader: Reader, name: str) -> int:
    match = _CLOCK.match(reader.text(name, max_len=5))
    if match is None:
        raise reader.fail(name, "expected HH:MM")
    return int(match.group(1)) * 60 + int(match.group(2))


def _quiet_hours(reader: Reader) -> tuple[int, int] | None:
    if not reader.has("quiet_hours"):
        return None
    quiet = reader.child("quiet_hours")
    return _minute_of_day(quiet, "start"), _minute_of_day(quiet, "end")


def _frequency_cap(reader: Reader) -> FrequencyCap | None:
    if not reader.has("frequency_cap"):
        return None
    cap = reader.child("frequency_cap")
    return FrequencyCap(
        count=cap.integer("count", minimum=1, maximum=10_000), per=cap.choice("per", CapWindow)
    )


def _radius(reader: Reader) -> tuple[Radius, ...]:
    return tuple(
        Radius(
            lat=item.number("lat", minimum=-90, maximum=90),
            lon=item.number("lon", minimum=-180, maximum=180),
            km=item.number("km", minimum=0.01, maximum=500),
        )
        for item in reader.items("radius")
    )


def _lower(values: tuple[str, ...]) -> frozenset[str]:
    return frozenset(value.lower() for value in values)


def _targeting(reader: Reader) -> Targeting:
    os_names, os_minimums = _os(reader)
    return Targeting(
        tags=_tag_expression(reader),
        audiences=reader.strings("audiences"),
        countries=frozenset(c.upper() for c in reader.strings("countries")),
        regions=frozenset(r.upper() for r in reader.strings("regions")),
        cities=_lower(reader.strings("cities")),
        radius=_radius(reader),
        os=os_names,
        os_min_version=os_minimums,
        device_types=reader.integers("device_types", minimum=1, maximum=8),
        connection_types=reader.integers("connection_types", minimum=0, maximum=7),
        categories=frozenset(reader.strings("categories")),
        domains_allow=_lower(reader.strings("domains_allow")),
        domains_block=_lower(reader.strings("domains_block")),
        bundles_allow=_lower(reader.strings("bundles_allow")),
        bundles_block=_lower(reader.strings("bundles_block")),
        daypart=_daypart(reader),
        quiet_hours=_quiet_hours(reader),
        frequency_cap=_frequency_cap(reader),
    )


def _instant(reader: Reader, name: str) -> float | None:
    if not reader.has(name):
        return None
    text = reader.text(name, max_len=40)
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise reader.fail(name, "expected an RFC 3339 date-time") from None
    if moment.tzinfo is None:
        raise reader.fail(name, "give the time zone offset, e.g. 2026-12-01T00:00:00+08:00")
    return moment.timestamp()


def _timezone(reader: Reader) -> str:
    name = reader.text("timezone", "UTC", max_len=64)
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise reader.fail("timezone", f"unknown time zone {name!r}") from None
    return name


_MAX_BID_MICROS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class _Bid:
    strategy: BidStrategy
    cpm_micros: int  # the fixed CPM, or the cap of a target bid
    target_cpc_micros: int = 0
    target_cpa_micros: int = 0


def _bid(reader: Reader) -> _Bid:
    bid = reader.child("bid")
    strategy = bid.choice("strategy", BidStrategy, "fixed_cpm")
    if strategy is BidStrategy.FIXED_CPM:
        return _Bid(strategy, bid.integer("cpm_micros", minimum=1, maximum=_MAX_BID_MICROS))
    if strategy is BidStrategy.TARGET_CPA:  # issue 12
        target = bid.integer("target_cpa_micros", minimum=1, maximum=_MAX_BID_MICROS)
        cap = bid.integer("max_cpm_micros", minimum=1, maximum=_MAX_BID_MICROS)
        return _Bid(strategy, cap, target_cpa_micros=target)
    target = bid.integer("target_cpc_micros", minimum=1, maximum=_MAX_BID_MICROS)
    cap = bid.integer("max_cpm_micros", minimum=1, maximum=_MAX_BID_MICROS)
    return _Bid(strategy, cap, target_cpc_micros=target)


def campaign_from_dict(data: object) -> Campaign:
    """Validate a stored-form campaign; raises ``InvalidCampaign`` naming the first bad field."""
    reader = Reader(data, "")
    budget = reader.child("budget")
    creatives = tuple(_creative(item) for item in reader.items("creatives", required=True))
    ids = [creative.id for creative in creatives]
    if len(set(ids)) != len(ids):
        raise InvalidCampaign("creatives", "creative ids must be unique")
    total = budget.integer("total_micros", minimum=1)
    daily = budget.integer("daily_micros", minimum=1, default=total)
    if daily > total:
        raise InvalidCampaign("budget.daily_micros", "must not exceed budget.total_micros")
    bid = _bid(reader)
    start, end = _instant(reader, "start"), _instant(reader, "end")
    if start is not None and end is not None and end <= start:
        raise InvalidCampaign("end", "must be after start")
    return Campaign(
        id=reader.text("id", max_len=64),
        advertiser_id=reader.text("advertiser_id", max_len=64),
        name=reader.text("name", max_len=200),
        status=reader.choice("status", Status, "active"),
        strategy=bid.strategy,
        cpm_micros=bid.cpm_micros,
        target_cpc_micros=bid.target_cpc_micros,
        budget_total_micros=total,
        budget_daily_micros=daily,
        targeting=_targeting(reader.child("targeting")),
        creatives=creatives,
        timezone=_timezone(reader),
        start=start,
        end=end,
        billing=reader.choice("billing", Billing, "nurl"),
        pacing=reader.choice("pacing", Pacing, "asap"),
        click_window_days=reader.integer("click_window_days", minimum=1, maximum=30, default=7),
        target_cpa_micros=bid.target_cpa_micros,
    )
