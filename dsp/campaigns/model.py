"""The campaign as advertisers define it: frozen records, validated in ``validation.py``.

Money is integer micros of USD throughout. Times of day are in the advertiser's time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CreativeFormat(StrEnum):
    BANNER = "banner"
    NATIVE = "native"
    VIDEO = "video"


class Status(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    ARCHIVED = "archived"


class BidStrategy(StrEnum):
    FIXED_CPM = "fixed_cpm"
    TARGET_CPC = "target_cpc"  # bid = target CPC x predicted CTR, capped at max_cpm
    # issue 12: bid = target CPA x predicted CTR x predicted CVR, capped at max_cpm; no bid
    # without a pCVR model (``dsp.campaigns.index.bid_price_micros``)
    TARGET_CPA = "target_cpa"


class Billing(StrEnum):
    NURL = "nurl"  # charged on the win notice
    BURL = "burl"  # charged on the billing notice, sent when the ad renders


class Pacing(StrEnum):
    ASAP = "asap"  # bid whenever there is money
    EVEN = "even"  # spread the daily budget over the day, following the traffic forecast


class CapWindow(StrEnum):
    HOUR = "hour"
    DAY = "day"
    LIFETIME = "lifetime"


@dataclass(frozen=True, slots=True)
class Creative:
    id: str
    format: CreativeFormat
    landing_url: str
    adomain: tuple[str, ...]
    cat: tuple[str, ...] = ()
    w: int = 0
    h: int = 0
    image_url: str = ""
    title: str = ""
    description: str = ""
    vast_url: str = ""  # an advertiser's VAST tag: our markup wraps it
    media_url: str = ""  # or a video file: our markup is an inline VAST around it
    duration_s: int = 0


@dataclass(frozen=True, slots=True)
class Radius:
    lat: float
    lon: float
    km: float


@dataclass(frozen=True, slots=True)
class FrequencyCap:
    count: int
    per: CapWindow


@dataclass(frozen=True, slots=True)
class Targeting:
    tags: str | None = None  # a boolean tag expression over the taxonomy
    audiences: tuple[str, ...] = ()  # DMP audience ids: the device must be in one of them
    countries: frozenset[str] = frozenset()  # ISO 3166-1 alpha-3, as OpenRTB geo.country
    regions: frozenset[str] = frozenset()
    cities: frozenset[str] = frozenset()  # lower case
    radius: tuple[Radius, ...] = ()
    os: frozenset[str] = frozenset()  # lowercase: ios, android, ...
    os_min_version: tuple[tuple[str, tuple[int, ...]], ...] = ()  # (os, version) pairs
    device_types: frozenset[int] = frozenset()  # OpenRTB device.devicetype
    connection_types: frozenset[int] = frozenset()  # OpenRTB device.connectiontype
    categories: frozenset[str] = frozenset()  # IAB categories of the site or app
    domains_allow: frozenset[str] = frozenset()
    domains_block: frozenset[str] = frozenset()
    bundles_allow: frozenset[str] = frozenset()
    bundles_block: frozenset[str] = frozenset()
    # 168 flags, hour of week (Monday 00:00 first); None means every hour.
    daypart: tuple[bool, ...] | None = None
    quiet_hours: tuple[int, int] | None = None  # (start, end) minute of day; no bids inside
    frequency_cap: FrequencyCap | None = None


@dataclass(frozen=True, slots=True)
class Campaign:
    id: str
    advertiser_id: str
    name: str
    status: Status
    strategy: BidStrategy
    cpm_micros: int  # fixed CPM, or the cap of a target-CPC or target-CPA bid
    target_cpc_micros: int
    budget_total_micros: int
    budget_daily_micros: int
    targeting: Targeting
    creatives: tuple[Creative, ...]
    timezone: str = "UTC"
    start: float | None = None  # unix seconds
    end: float | None = None
    billing: Billing = Billing.NURL
    pacing: Pacing = Pacing.ASAP
    click_window_days: int = 7  # issue 12: conversions credited to a click this long after it
    target_cpa_micros: int = 0  # issue 12: what a target-CPA campaign pays per conversion

    @property
    def active(self) -> bool:
        return self.status is Status.ACTIVE
