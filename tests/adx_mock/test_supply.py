from __future__ import annotations

import hashlib
import itertools
from collections import Counter

import orjson
import pytest

from adx_mock.auction import FIRST_PRICE
from adx_mock.errors import ConfigError
from adx_mock.population import generate_population
from adx_mock.supply import SupplyConfig, bid_requests
from dmp.taxonomy import Taxonomy

COUNT = 2000


@pytest.fixture(scope="module")
def population() -> list[dict[str, object]]:
    return list(generate_population(500, 3, Taxonomy.default()))


@pytest.fixture(scope="module")
def requests(population: list[dict[str, object]]) -> list[dict[str, object]]:
    return list(itertools.islice(bid_requests(population, 9), COUNT))


def _dict(value: object) -> dict[str, object]:
    assert isinstance(value, dict)
    return value


def _imps(request: dict[str, object]) -> list[dict[str, object]]:
    imps = request["imp"]
    assert isinstance(imps, list)
    return imps


def test_same_seed_same_requests(
    population: list[dict[str, object]], requests: list[dict[str, object]]
) -> None:
    assert list(itertools.islice(bid_requests(population, 9), 50)) == requests[:50]
    assert list(itertools.islice(bid_requests(population, 10), 50)) != requests[:50]


def test_request_basics(requests: list[dict[str, object]]) -> None:
    assert len({r["id"] for r in requests}) == COUNT
    for request in requests:
        assert request["at"] == 2 and request["tmax"] == 100 and request["cur"] == ["USD"]
        assert ("app" in request) != ("site" in request)
        orjson.loads(orjson.dumps(request))
    apps = sum("app" in r for r in requests) / COUNT
    assert 0.6 < apps < 0.9
    config = SupplyConfig(tmax_ms=80, auction_type=FIRST_PRICE)
    population = [{"id_type": "gaid", "id": "x", "os": "android"}]
    first = next(bid_requests(population, 1, config))
    assert first["at"] == 1 and first["tmax"] == 80


def test_impressions(requests: list[dict[str, object]]) -> None:
    kinds: Counter[str] = Counter()
    imp_counts = Counter(len(_imps(r)) for r in requests)
    assert set(imp_counts) == {1, 2} and imp_counts[1] > imp_counts[2]
    for request in requests:
        imps = _imps(request)
        assert [imp["id"] for imp in imps] == [str(n) for n in range(1, len(imps) + 1)]
        for imp in imps:
            floor = imp["bidfloor"]
            assert isinstance(floor, float) and 0.1 <= floor <= 2.0
            assert imp["bidfloorcur"] == "USD" and imp["secure"] == 1
            kind = next(k for k in ("banner", "native", "video") if k in imp)
            kinds[kind] += 1
            if kind == "banner":
                banner = _dict(imp["banner"])
                size = (banner["w"], banner["h"])
                assert size in {(300, 250), (320, 50), (728, 90), (320, 480)}
                assert banner["format"] == [{"w": size[0], "h": size[1]}]
            elif kind == "native":
                native = _dict(imp["native"])
                document = orjson.loads(str(native["request"]))
                assert document["ver"] == "1.2"
                assets = {key for asset in document["assets"] for key in asset}
                assert {"title", "img", "data"} <= assets
            else:
                video = _dict(imp["video"])
                assert video["w"] == 640 and video["h"] == 360
                assert "video/mp4" in str(video["mimes"]) and video["protocols"]
    total = sum(kinds.values())
    assert kinds["native"] / total == pytest.approx(0.10, abs=0.03)
    assert kinds["video"] / total == pytest.approx(0.10, abs=0.03)


def test_device_ids_where_an_exchange_puts_them(
    population: list[dict[str, object]], requests: list[dict[str, object]]
) -> None:
    known = {str(r["id"]) for r in population}
    known_md5 = {hashlib.md5(i.encode()).hexdigest() for i in known}
    unknown = 0
    for request in requests:
        device = _dict(request["device"])
        if "didmd5" in device:
            assert "ifa" not in device
            unknown += device["didmd5"] not in known_md5
        else:
            assert _dict(device["ext"])["ifa_type"] in ("idfa", "gaid", "oaid")
            unknown += device["ifa"] not in known
    assert unknown / COUNT == pytest.approx(0.10, abs=0.03)


def test_device_fields(requests: list[dict[str, object]]) -> None:
    for request in requests:
        device = _dict(request["device"])
        assert device["os"] in ("iOS", "Android")
        assert device["devicetype"] in (1, 4, 5)
        assert device["lmt"] == 0 and isinstance(device["connectiontype"], int)
        assert str(device["ip"]).rsplit(".", 1)[0] in ("192.0.2", "198.51.100", "203.0.113")
        assert str(device["ua"]).startswith("Mozilla/5.0")
        geo = _dict(device["geo"])
        assert geo["type"] == 2 and {"country", "region", "city", "lat", "lon"} <= set(geo)


def test_empty_population_is_refused() -> None:
    with pytest.raises(ConfigError):
        next(bid_requests([], 1))
