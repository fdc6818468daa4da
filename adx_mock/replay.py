"""Replay mode: bid requests from files instead of the synthetic supply.

Two formats are read, plain or compressed (``.gz``, ``.xz``, by file name):

* ``openrtb``: OpenRTB 2.x bid requests, one JSON object a line (JSON Lines);
* ``rtbkit``: RTBkit's normalised bid-request log (``"!!CV"`` records, e.g. the recorded
  Datacratic auctions in ``../shared/corpus/logs``), converted to OpenRTB 2.6 by
  ``rtbkit_to_openrtb``.

``auto`` tells them apart by the first record. A line that is not a JSON object is skipped
and counted, as an exchange drops a request it cannot forward.
"""

from __future__ import annotations

import gzip
import lzma
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final, cast
from urllib.parse import urlsplit

import orjson

from adx_mock.errors import ConfigError

FORMATS: Final = ("auto", "openrtb", "rtbkit")
DEFAULT_TMAX_MS: Final = 100

# ISO 3166-1 alpha-2 (RTBkit) -> alpha-3 (OpenRTB geo.country), for the countries the logs hold
# and the project's own markets; an unknown code leaves geo.country out rather than guess.
ALPHA3: Mapping[str, str] = {
    "US": "USA", "CA": "CAN", "GB": "GBR", "JM": "JAM", "JE": "JEY", "IR": "IRN",
    "BS": "BHS", "MX": "MEX", "FR": "FRA", "DE": "DEU", "JP": "JPN", "CN": "CHN",
    "AU": "AUS", "IN": "IND", "BR": "BRA", "ES": "ESP", "IT": "ITA", "NL": "NLD",
}  # fmt: skip


_GEO_FIELDS = (("regionCode", "region"), ("cityName", "city"), ("postalCode", "zip"))


@dataclass(slots=True)
class ReplayStats:
    read: int = 0
    skipped: int = 0


def open_text(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed by its suffix."""
    if path.suffix == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    if path.suffix == ".xz":
        return lzma.open(path, "rb")
    return path.open("rb")


def read_requests(
    path: Path,
    fmt: str = "auto",
    *,
    tmax_ms: int = DEFAULT_TMAX_MS,
    stats: ReplayStats | None = None,
) -> Iterator[dict[str, object]]:
    """OpenRTB 2.6 bid requests of a replay file, in file order."""
    if fmt not in FORMATS:
        raise ConfigError("format", f"must be one of {', '.join(FORMATS)}")
    stats = stats if stats is not None else ReplayStats()
    try:
        file = open_text(path)
    except OSError as exc:
        raise ConfigError("replay", f"cannot read {path}: {exc.strerror or exc}") from exc
    with file:
        for line in file:
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                stats.skipped += 1
                continue
            if not isinstance(record, dict):
                stats.skipped += 1
                continue
            if fmt == "auto":
                fmt = "rtbkit" if is_rtbkit(record) else "openrtb"
            stats.read += 1
            if fmt == "rtbkit":
                yield rtbkit_to_openrtb(record, tmax_ms=tmax_ms)
            else:
                record.setdefault("tmax", tmax_ms)
                yield record


def is_rtbkit(record: Mapping[str, object]) -> bool:
    return "!!CV" in record or ("spots" in record and "imp" not in record)


def rtbkit_to_openrtb(
    record: Mapping[str, object], *, tmax_ms: int = DEFAULT_TMAX_MS
) -> dict[str, object]:
    """One RTBkit normalised bid request as an OpenRTB 2.6 bid request.

    Spots become banner imps (every ``WxH`` of ``formats`` in ``banner.format``, the first
    as ``w``/``h``); ``reservePrice`` the floor (CPM, USD); ``url`` the site page and
    domain; ``location`` the device geo (country as alpha-3); ``userIds.xchg`` the user id;
    ``restrictions.clickUrl`` the blocked advertiser domains (``badv``). What has no exact
    OpenRTB field (exchange, timestamp, creative-attribute exclusions in the exchange's own
    numbering, segments) goes to ``ext.rtbkit``.
    """
    request: dict[str, object] = {
        "id": str(record.get("id", "")),
        "imp": [_imp(spot) for spot in _list(record.get("spots")) if isinstance(spot, dict)],
        "at": 2,
        "tmax": tmax_ms,
        "cur": ["USD"],
    }
    url = record.get("url")
    if isinstance(url, str) and url:
        domain = (urlsplit(url).hostname or "").removeprefix("www.")
        request["site"] = {"page": url, "domain": domain}
    else:
        request["site"] = {}
    request["device"] = _device(record)
    user_ids = record.get("userIds")
    if isinstance(user_ids, dict) and isinstance(user_ids.get("xchg"), str):
        request["user"] = {"id": user_ids["xchg"]}
    restrictions = record.get("restrictions")
    restrictions = restrictions if isinstance(restrictions, dict) else {}
    blocked = [d for d in _list(restrictions.get("clickUrl")) if isinstance(d, str)]
    if blocked:
        request["badv"] = blocked
    request["ext"] = {
        "rtbkit": {
            "exchange": record.get("exchange"),
            "provider": record.get("provider"),
            "timestamp": record.get("timestamp"),
            "creative_attribute": restrictions.get("creativeAttribute"),
            "sensitive_category_attribute": restrictions.get("sensitiveCategoryAttribute"),
        }
    }
    return request


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _imp(spot: Mapping[str, object]) -> dict[str, object]:
    sizes = []
    for text in _list(spot.get("formats")):
        w, sep, h = str(text).partition("x")
        if sep and w.isdigit() and h.isdigit():
            sizes.append({"w": int(w), "h": int(h)})
    banner: dict[str, object] = {"format": sizes}
    if sizes:
        banner |= sizes[0]
    reserve = spot.get("reservePrice", 0)
    floor = float(reserve) if isinstance(reserve, int | float) and reserve > 0 else 0.0
    return {
        "id": str(spot.get("id", "1")),
        "banner": banner,
        "bidfloor": floor,
        "bidfloorcur": "USD",
    }


def _device(record: Mapping[str, object]) -> dict[str, object]:
    device: dict[str, object] = {}
    for source, target in (("userAgent", "ua"), ("ipAddress", "ip"), ("language", "language")):
        value = record.get(source)
        if isinstance(value, str) and value:
            device[target] = value
    location = record.get("location")
    if isinstance(location, dict):
        geo: dict[str, object] = {"type": 2}
        country = ALPHA3.get(str(location.get("countryCode", "")))
        if country:
            geo["country"] = country
        for source, target in _GEO_FIELDS:
            value = location.get(source)
            if isinstance(value, str) and value:
                geo[target] = value
        dma = location.get("dma")
        if isinstance(dma, int):
            geo["metro"] = str(dma)
        device["geo"] = geo
    return device
