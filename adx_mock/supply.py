"""Synthetic supply: OpenRTB 2.6 bid requests (plain dicts) for devices of a population.

Device IDs go where a real exchange puts them: IDFA, GAID and OAID raw in ``device.ifa``
(with ``device.ext.ifa_type``), an IMEI only as ``device.didmd5``. A share of requests
comes from devices the population does not hold, as real traffic does. Addresses come from
the documentation ranges (RFC 5737), never real ones.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import orjson

from adx_mock import devices, inventory
from adx_mock.auction import SECOND_PRICE
from adx_mock.errors import ConfigError

BANNER_SIZES = ((300, 250), (320, 50), (728, 90), (320, 480))
BANNER_WEIGHTS = (0.40, 0.35, 0.10, 0.15)
FLOOR_RANGE = (0.10, 2.00)
TEST_NETS = ("192.0.2", "198.51.100", "203.0.113")
# OpenRTB connection types: 2 Wi-Fi, 5 3G, 6 4G, 7 5G.
CONNECTION_TYPES = (2, 2, 2, 2, 6, 6, 6, 7, 7, 5)
LANGUAGES: Mapping[str, str] = {"CHN": "zh", "JPN": "ja", "DEU": "de", "FRA": "fr"}
OS_NAMES: Mapping[str, str] = {"ios": "iOS", "android": "Android"}
# Spread of the reported position around the home position, in degrees (~1 km).
GEO_JITTER_DEG = 0.01


@dataclass(frozen=True, slots=True)
class SupplyConfig:
    """Shape of the traffic; shares are probabilities per request or per impression."""

    tmax_ms: int = 100
    auction_type: int = SECOND_PRICE
    unknown_device_share: float = 0.10
    app_share: float = 0.75
    two_imp_share: float = 0.15
    native_share: float = 0.10
    video_share: float = 0.10


def bid_requests(
    population: Sequence[Mapping[str, object]], seed: int, config: SupplyConfig | None = None
) -> Iterator[dict[str, object]]:
    """An endless, seeded stream of bid requests from random devices of ``population``."""
    if not population:
        raise ConfigError("population", "needs at least one device")
    config = config or SupplyConfig()
    rng = random.Random(seed)
    while True:
        record = population[rng.randrange(len(population))]
        yield build_request(rng, record, config)


def build_request(
    rng: random.Random, record: Mapping[str, object], config: SupplyConfig
) -> dict[str, object]:
    """One bid request for the device ``record`` (a population record)."""
    request_id = _uuid(rng)
    os = str(record.get("os", "android"))
    imp_count = 2 if rng.random() < config.two_imp_share else 1
    request: dict[str, object] = {
        "id": request_id,
        "imp": [_imp(rng, str(n), config) for n in range(1, imp_count + 1)],
    }
    if rng.random() < config.app_share:
        request["app"] = _app(rng, os)
    else:
        request["site"] = _site(rng)
    request["device"] = _device(rng, record, config)
    request["at"] = config.auction_type
    request["tmax"] = config.tmax_ms
    request["cur"] = ["USD"]
    request["source"] = {"tid": request_id}
    request["regs"] = {"coppa": 0}
    return request


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _imp(rng: random.Random, imp_id: str, config: SupplyConfig) -> dict[str, object]:
    imp: dict[str, object] = {"id": imp_id, "tagid": f"slot-{rng.randrange(1, 40)}"}
    kind = rng.random()
    if kind < config.native_share:
        imp["native"] = {"request": native_request(), "ver": "1.2"}
    elif kind < config.native_share + config.video_share:
        imp["video"] = _video()
    else:
        width, height = rng.choices(BANNER_SIZES, BANNER_WEIGHTS)[0]
        imp["banner"] = {"w": width, "h": height, "format": [{"w": width, "h": height}]}
        if (width, height) == (320, 480):
            imp["instl"] = 1
    imp["bidfloor"] = round(rng.uniform(*FLOOR_RANGE), 2)
    imp["bidfloorcur"] = "USD"
    imp["secure"] = 1
    return imp


def native_request() -> str:
    """An OpenRTB Native 1.2 request: title, main image and sponsor text assets."""
    document = {
        "ver": "1.2",
        "context": 1,
        "plcmttype": 1,
        "plcmtcnt": 1,
        "assets": [
            {"id": 1, "required": 1, "title": {"len": 90}},
            {"id": 2, "required": 1, "img": {"type": 3, "wmin": 300, "hmin": 250}},
            {"id": 3, "required": 0, "data": {"type": 1, "len": 25}},
            {"id": 4, "required": 0, "data": {"type": 2, "len": 140}},
        ],
        "eventtrackers": [{"event": 1, "methods": [1, 2]}],
    }
    return orjson.dumps(document).decode()


def _video() -> dict[str, object]:
    return {
        "mimes": ["video/mp4", "video/3gpp"],
        "w": 640,
        "h": 360,
        "minduration": 5,
        "maxduration": 30,
        # VAST 2.0, 3.0, 2.0 wrapper, 3.0 wrapper, 4.0, 4.0 wrapper.
        "protocols": [2, 3, 5, 6, 7, 8],
        "linearity": 1,
        "startdelay": 0,
        "plcmt": 1,
    }


def _app(rng: random.Random, os: str) -> dict[str, object]:
    app = rng.choice(inventory.APPS)
    bundle = app.ios_bundle if os == "ios" else app.android_bundle
    return {
        "id": f"app-{app.android_bundle.rsplit('.', 1)[-1]}",
        "name": app.name,
        "bundle": bundle,
        "cat": list(app.cat),
        "publisher": {"id": app.publisher_id, "name": app.publisher},
    }


def _site(rng: random.Random) -> dict[str, object]:
    site = rng.choice(inventory.SITES)
    return {
        "id": f"site-{site.domain.split('.')[0]}",
        "domain": site.domain,
        "page": f"https://{site.domain}{rng.choice(site.paths)}",
        "cat": list(site.cat),
        "publisher": {"id": site.publisher_id, "name": site.publisher},
    }


def _device(
    rng: random.Random, record: Mapping[str, object], config: SupplyConfig
) -> dict[str, object]:
    os, osv, model = (str(record.get(k, "")) for k in ("os", "osv", "model"))
    country = str(record.get("country", ""))
    device: dict[str, object] = {
        "ua": devices.user_agent(os, osv, model),
        "ip": f"{rng.choice(TEST_NETS)}.{rng.randrange(1, 255)}",
        "devicetype": _device_type(rng, model),
        "make": record.get("make", ""),
        "model": model,
        "os": OS_NAMES.get(os, os),
        "osv": osv,
        "connectiontype": rng.choice(CONNECTION_TYPES),
        "language": LANGUAGES.get(country, "en"),
        "lmt": 0,
        "geo": _geo(rng, record),
    }
    id_type = str(record.get("id_type", ""))
    device_id = str(record.get("id", ""))
    if rng.random() < config.unknown_device_share:
        device_id = devices.make_device_id(id_type, rng.getrandbits(128))
    if id_type == "imei":
        device["didmd5"] = hashlib.md5(device_id.encode(), usedforsecurity=False).hexdigest()
    else:
        device["ifa"] = device_id
        device["ext"] = {"ifa_type": id_type}
    return device


def _device_type(rng: random.Random, model: str) -> int:
    # OpenRTB device types: 1 mobile/tablet (unspecified), 4 phone, 5 tablet.
    if devices.is_tablet(model):
        return 5
    return 1 if rng.random() < 0.1 else 4


def _geo(rng: random.Random, record: Mapping[str, object]) -> dict[str, object]:
    geo: dict[str, object] = {
        key: record[key] for key in ("country", "region", "city") if key in record
    }
    for key in ("lat", "lon"):
        value = record.get(key)
        if isinstance(value, int | float):
            geo[key] = round(value + rng.gauss(0.0, GEO_JITTER_DEG), 4)
    # Type 2: derived from the IP address, as an exchange without GPS consent reports it.
    geo["type"] = 2
    return geo
