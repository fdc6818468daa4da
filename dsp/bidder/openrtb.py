"""OpenRTB 2.5/2.6 bid requests: validated into the few typed facts the bid path uses.

Only what makes a bid impossible to define is an error (no id, no imps, duplicate imp ids,
more than one of site/app/dooh, negative tmax, invalid gdpr flag, a deal without id).
Unknown fields and enum values are tolerated, as OpenRTB asks of bidders.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from dmp.ids import DeviceId, device_ids_from_openrtb
from dsp.bidder.native import NativeAssets, native_assets, parse_native_request
from dsp.errors import InvalidBidRequest

_OS_ALIASES: Final = {"ipados": "ios", "iphone os": "ios", "tvos": "ios", "android tv": "android"}
# Decoded JSON objects are dicts: typed so, compiled code takes dict's own fast paths.
JsonObject = dict[str, Any]
_EMPTY: Final[JsonObject] = {}  # read only
# IAB TCF consent strings: base64url segments joined by dots; the core segment opens with a
# 6-bit version (1 or 2) and holds at least the core fields (173 bits in v1, 213 in v2).
_TCF_SEGMENT: Final = re.compile(r"[A-Za-z0-9_-]{29,4096}")
_TCF_VERSIONS: Final = (1, 2)


@dataclass(slots=True, init=False, unsafe_hash=True)  # a value class: see ``infra.compiled``
class Imp:
    id: Final[str]
    banner_sizes: Final[tuple[tuple[int, int], ...]]
    native: Final[NativeAssets | None]  # None when not native, or its request cannot be understood
    video_size: Final[tuple[int, int] | None]  # (0, 0) when the player size is not given
    floor_micros: Final[int | None]  # USD micros CPM; None when the floor's currency is unknown

    def __init__(
        self,
        id: str,
        banner_sizes: tuple[tuple[int, int], ...],
        native: NativeAssets | None,
        video_size: tuple[int, int] | None,
        floor_micros: int | None,
    ) -> None:
        self.id = id
        self.banner_sizes = banner_sizes
        self.native = native
        self.video_size = video_size
        self.floor_micros = floor_micros


@dataclass(slots=True, init=False, unsafe_hash=True)  # a value class: see ``infra.compiled``
class BidRequest:
    id: Final[str]
    imps: Final[tuple[Imp, ...]]
    tmax_ms: Final[int]
    currencies: Final[tuple[str, ...]]
    device_ids: Final[tuple[DeviceId, ...]]
    # True when the request forbids using DMP data (lmt, dnt, coppa, gdpr without consent).
    privacy_restricted: Final[bool]
    os: Final[str]
    os_version: Final[tuple[int, ...]]
    country: Final[str]
    region: Final[str]
    city: Final[str]  # lower case
    point: Final[tuple[float, float] | None]  # (lat, lon) of the device
    device_type: Final[int]
    connection_type: Final[int]
    categories: Final[frozenset[str]]  # IAB categories of the site or app
    domain: Final[str]  # site domain, lower case ("" in apps)
    bundle: Final[str]  # app bundle, lower case ("" on sites)
    blocked_domains: Final[frozenset[str]]
    blocked_categories: Final[frozenset[str]]
    test: Final[bool]

    def __init__(
        self,
        id: str,
        imps: tuple[Imp, ...],
        tmax_ms: int,
        currencies: tuple[str, ...],
        device_ids: tuple[DeviceId, ...],
        privacy_restricted: bool,
        os: str,
        os_version: tuple[int, ...],
        country: str,
        region: str,
        city: str,
        point: tuple[float, float] | None,
        device_type: int,
        connection_type: int,
        categories: frozenset[str],
        domain: str,
        bundle: str,
        blocked_domains: frozenset[str],
        blocked_categories: frozenset[str],
        test: bool,
    ) -> None:
        self.id = id
        self.imps = imps
        self.tmax_ms = tmax_ms
        self.currencies = currencies
        self.device_ids = device_ids
        self.privacy_restricted = privacy_restricted
        self.os = os
        self.os_version = os_version
        self.country = country
        self.region = region
        self.city = city
        self.point = point
        self.device_type = device_type
        self.connection_type = connection_type
        self.categories = categories
        self.domain = domain
        self.bundle = bundle
        self.blocked_domains = blocked_domains
        self.blocked_categories = blocked_categories
        self.test = test


def _object(value: object, field: str) -> JsonObject:
    if value is None:
        return _EMPTY
    if not isinstance(value, dict):
        raise InvalidBidRequest(field, "expected an object")
    return value


def _int_flag(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _size(w: object, h: object) -> tuple[int, int] | None:
    """A width and height in pixels: integers (JSON true is no size), both positive."""
    if type(w) is int and type(h) is int and w > 0 and h > 0:
        return w, h
    return None


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, str))


def _floor_micros(imp: JsonObject, fx_per_usd: Mapping[str, Decimal]) -> int | None:
    floor = imp.get("bidfloor", 0)
    if not isinstance(floor, int | float) or isinstance(floor, bool) or floor < 0:
        return 0
    currency = imp.get("bidfloorcur") or "USD"
    rate = fx_per_usd.get(currency.upper()) if isinstance(currency, str) else None
    if rate is None:
        return None
    return _usd_micros(floor, rate)


@functools.lru_cache(maxsize=8192)  # floors repeat (0.5, 1.2, ...): the Decimal work once each
def _usd_micros(floor: float, rate: Decimal) -> int:
    try:
        # Ceiling: bidding a hair under the floor loses the auction for nothing.
        usd_micros = Decimal(repr(floor)) * 1_000_000 / rate
    except InvalidOperation:
        return 0
    return int(usd_micros.to_integral_value(rounding="ROUND_CEILING"))


def _sizes(banner: JsonObject) -> tuple[tuple[int, int], ...]:
    sizes: list[tuple[int, int]] = []
    formats = banner.get("format")
    for fmt in formats if isinstance(formats, list) else ():
        if isinstance(fmt, dict):
            if (size := _size(fmt.get("w"), fmt.get("h"))) is not None:
                sizes.append(size)
    size = _size(banner.get("w"), banner.get("h"))
    if size is not None and size not in sizes:
        sizes.append(size)
    return tuple(sizes)


def _check_deals(imp: JsonObject, field: str) -> None:
    deals = _object(imp.get("pmp"), f"{field}.pmp").get("deals")
    for j, deal in enumerate(deals if isinstance(deals, list) else ()):
        if not isinstance(deal, dict) or not deal.get("id"):
            raise InvalidBidRequest(f"{field}.pmp.deals[{j}]", 'missing required field "id"')


def _imp(raw: object, index: int, fx_per_usd: Mapping[str, Decimal]) -> Imp:
    field = f"imp[{index}]"
    imp = _object(raw, field)
    imp_id = imp.get("id")
    if not isinstance(imp_id, str | int) or isinstance(imp_id, bool) or imp_id == "":
        raise InvalidBidRequest(f"{field}.id", 'missing required field "id"')
    _check_deals(imp, field)
    banner = imp.get("banner")
    native = imp.get("native")
    video = imp.get("video")
    video_size = None
    if isinstance(video, dict):
        w, h = video.get("w"), video.get("h")
        video_size = _size(w, h) or (0, 0)
    native_request = native.get("request") if isinstance(native, dict) else None
    if isinstance(native_request, str):
        assets = parse_native_request(native_request)
    else:  # some exchanges send the object, not a string: read as is, never re-encoded
        assets = native_assets(native_request)
    return Imp(
        id=str(imp_id),
        banner_sizes=_sizes(banner) if isinstance(banner, dict) else (),
        native=assets,
        video_size=video_size,
        floor_micros=_floor_micros(imp, fx_per_usd),
    )


def _imps(request: JsonObject, fx_per_usd: Mapping[str, Decimal]) -> tuple[Imp, ...]:
    raw_imps = request.get("imp")
    if not isinstance(raw_imps, list) or not raw_imps:
        raise InvalidBidRequest("imp", "expected a non-empty array")
    imps = tuple(_imp(raw, i, fx_per_usd) for i, raw in enumerate(raw_imps))
    seen: dict[str, int] = {}
    for i, imp in enumerate(imps):
        if imp.id in seen:
            raise InvalidBidRequest(
                f"imp[{i}].id", f"imp[{seen[imp.id]}] and imp[{i}] have the same id {imp.id!r}"
            )
        seen[imp.id] = i
    return imps


def _tmax(request: JsonObject, default_ms: int, max_ms: int) -> int:
    tmax = request.get("tmax")
    if tmax is None:
        return default_ms
    if not isinstance(tmax, int) or isinstance(tmax, bool):
        raise InvalidBidRequest("tmax", "expected an integer")
    if tmax < 0:
        raise InvalidBidRequest("tmax", f"must be nonnegative, got {tmax}")
    return min(tmax or default_ms, max_ms)


def _gdpr_applies(regs: JsonObject) -> bool:
    ext = _object(regs.get("ext"), "regs.ext")
    for field, value in (("regs.gdpr", regs.get("gdpr")), ("regs.ext.gdpr", ext.get("gdpr"))):
        if value is not None and value not in (0, 1):
            raise InvalidBidRequest(field, "must be either 0 or 1")
        if value == 1:
            return True
    return False


def consent_parsable(consent: object) -> bool:
    """Whether ``consent`` is a TCF v1/v2 consent string (its core segment decodes)."""
    if not isinstance(consent, str):
        return False
    core = consent.strip().split(".", 1)[0]
    if not _TCF_SEGMENT.fullmatch(core):
        return False
    padded = core.replace("-", "+").replace("_", "/") + "=" * (-len(core) % 4)
    try:
        raw = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return False
    return bool(raw) and raw[0] >> 2 in _TCF_VERSIONS


def _privacy_restricted(request: JsonObject, device: JsonObject, regs: JsonObject) -> bool:
    ext = _object(regs.get("ext"), "regs.ext")
    if _int_flag(device.get("lmt")) == 1 or _int_flag(device.get("dnt")) == 1:
        return True
    if _int_flag(regs.get("coppa")) == 1 or _int_flag(ext.get("coppa")) == 1:
        return True
    if _gdpr_applies(regs):
        user = _object(request.get("user"), "user")
        consent = user.get("consent") or _object(user.get("ext"), "user.ext").get("consent")
        # Without a consent string, or one we cannot read, there is no lawful basis to use
        # profile data.
        return not consent_parsable(consent)
    return False


def _geo(request: JsonObject, device: JsonObject) -> JsonObject:
    geo = device.get("geo")
    if not isinstance(geo, dict):
        geo = _object(request.get("user"), "user").get("geo")
    return geo if isinstance(geo, dict) else _EMPTY


def _os(device: JsonObject) -> str:
    raw = device.get("os")
    if not isinstance(raw, str):
        return ""
    name = raw.strip().lower()
    return _OS_ALIASES.get(name, name)


def _os_version(device: JsonObject) -> tuple[int, ...]:
    raw = device.get("osv")
    if not isinstance(raw, str):
        return ()
    parts: list[int] = []
    for part in raw.split("."):
        # ASCII digits only ("²".isdigit() holds but int() refuses it), and not too many.
        if not (part.isascii() and part.isdigit() and len(part) <= 9):
            break
        parts.append(int(part))
    return tuple(parts)


def _point(geo: JsonObject) -> tuple[float, float] | None:
    lat, lon = geo.get("lat"), geo.get("lon")
    if isinstance(lat, int | float) and isinstance(lon, int | float):
        if -90 <= lat <= 90 and -180 <= lon <= 180 and not isinstance(lat, bool):
            return float(lat), float(lon)
    return None


@dataclass(slots=True, init=False, unsafe_hash=True)  # a value class: see ``infra.compiled``
class _Inventory:
    categories: Final[frozenset[str]]
    domain: Final[str]
    bundle: Final[str]

    def __init__(self, categories: frozenset[str], domain: str, bundle: str) -> None:
        self.categories = categories
        self.domain = domain
        self.bundle = bundle


def _inventory(request: JsonObject) -> _Inventory:
    """Categories, domain and bundle of the site or app the ad would run in."""
    site = _object(request.get("site"), "site")
    app = _object(request.get("app"), "app")
    place = site or app
    publisher = _object(place.get("publisher"), "publisher")
    categories = {
        *_strings(place.get("cat")),
        *_strings(place.get("sectioncat")),
        *_strings(place.get("pagecat")),
        *_strings(publisher.get("cat")),
    }
    domain = site.get("domain") or (publisher.get("domain") if site else None)
    bundle = app.get("bundle")
    return _Inventory(
        frozenset(categories),
        domain.lower() if isinstance(domain, str) else "",
        bundle.lower() if isinstance(bundle, str) else "",
    )


def parse_bid_request(
    data: object, *, default_tmax_ms: int, max_tmax_ms: int, fx_per_usd: Mapping[str, Decimal]
) -> BidRequest:
    """Validate a decoded JSON value; raises ``InvalidBidRequest`` naming the field."""
    if not isinstance(data, dict):
        raise InvalidBidRequest("$", "expected a JSON object")
    request_id = data.get("id")
    if not isinstance(request_id, str) or not request_id:
        raise InvalidBidRequest("id", 'missing required field "id"')
    if sum(data.get(key) is not None for key in ("site", "app", "dooh")) > 1:
        raise InvalidBidRequest("site", "no more than one of site, app or dooh may be given")
    tmax_ms = _tmax(data, default_tmax_ms, max_tmax_ms)
    imps = _imps(data, fx_per_usd)
    device = _object(data.get("device"), "device")
    regs = _object(data.get("regs"), "regs")
    restricted = _privacy_restricted(data, device, regs)
    geo = _geo(data, device)
    country, region, city = geo.get("country"), geo.get("region"), geo.get("city")
    inventory = _inventory(data)
    return BidRequest(
        id=request_id,
        imps=imps,
        tmax_ms=tmax_ms,
        currencies=tuple(c.upper() for c in _strings(data.get("cur"))),
        device_ids=() if restricted else tuple(device_ids_from_openrtb(device)),
        privacy_restricted=restricted,
        os=_os(device),
        os_version=_os_version(device),
        country=country.upper() if isinstance(country, str) else "",
        region=region.upper() if isinstance(region, str) else "",
        city=city.lower() if isinstance(city, str) else "",
        point=_point(geo),
        device_type=_int_flag(device.get("devicetype")),
        connection_type=_int_flag(device.get("connectiontype")),
        categories=inventory.categories,
        domain=inventory.domain,
        bundle=inventory.bundle,
        blocked_domains=frozenset(_strings(data.get("badv"))),
        blocked_categories=frozenset(_strings(data.get("bcat"))),
        test=_int_flag(data.get("test")) == 1,
    )
