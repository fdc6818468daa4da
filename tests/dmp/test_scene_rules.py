from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from dmp.errors import SceneRuleError
from dmp.ids import parse_device_id
from dmp.scene_events import EventKind, SceneEvent
from dmp.scene_match import GeoGrid, haversine_m, phone_digits
from dmp.scene_rules import SceneLibrary
from dmp.taxonomy import Taxonomy

DEVICE = parse_device_id("idfa", "6D92078A-8246-4BA4-AE5B-76104861E7DC")
RULES: list[dict[str, Any]] = [
    {"id": "airport_sz", "kind": "geofence", "lat": 22.639, "lon": 113.811, "radius_m": 2500,
     "tag": "scene.travel.at_airport", "score": 90, "ttl_minutes": 240},
    {"id": "car_apps", "kind": "app_open", "bundles": ["com.autohome", "com.yiche.autoeasy"],
     "tag": "scene.auto.car_app_opened", "ttl_minutes": 1440},
    {"id": "price_pages", "kind": "url_visit", "domains": ["autohome.com.cn"],
     "path_prefix": "/price", "tag": "scene.auto.price_research", "ttl_minutes": 1440},
    {"id": "car_search", "kind": "search", "keywords": ["suv", "电动车", "test drive"],
     "tag": "scene.auto.car_search", "ttl_minutes": 720},
    {"id": "ev_search", "kind": "search", "keywords": ["ev", "电动"],
     "tag": "scene.auto.ev_research", "ttl_minutes": 720},
    {"id": "bank_hotline", "kind": "call", "prefixes": ["400-820"],
     "tag": "scene.finance.called_bank", "ttl_minutes": 720},
]  # fmt: skip


@pytest.fixture(scope="module")
def library() -> SceneLibrary:
    return SceneLibrary(RULES)


def event(kind: str, text: str = "", lat: float = 0.0, lon: float = 0.0) -> SceneEvent:
    return SceneEvent(DEVICE, EventKind(kind), 1_764_000_000, lat=lat, lon=lon, text=text)


def tags(library: SceneLibrary, scene_event: SceneEvent) -> list[str]:
    return [rule.tag for rule in library.match(scene_event)]


def point_at(lat: float, lon: float, metres_north: float) -> tuple[float, float]:
    return lat + metres_north / 111_195, lon


@pytest.mark.parametrize(("metres", "inside"), [(0, True), (2400, True), (2600, False)])
def test_geofence_inside_and_outside_the_radius(
    library: SceneLibrary, metres: float, inside: bool
) -> None:
    lat, lon = point_at(22.639, 113.811, metres)
    assert abs(haversine_m(lat, lon, 22.639, 113.811) - metres) < 5
    expected = ["scene.travel.at_airport"] if inside else []
    assert tags(library, event("geofence", lat=lat, lon=lon)) == expected


def test_geofence_far_away(library: SceneLibrary) -> None:
    assert tags(library, event("geofence", lat=39.9, lon=116.4)) == []


def test_grid_agrees_with_a_scan_of_every_circle() -> None:
    rng = random.Random(7)
    circles = [
        (rng.uniform(20, 42), rng.uniform(100, 122), rng.uniform(100, 20_000), i)
        for i in range(300)
    ]
    grid: GeoGrid[int] = GeoGrid()
    for lat, lon, radius, item in circles:
        grid.add(lat, lon, radius, item)
    for _ in range(3000):
        lat, lon, radius, _item = rng.choice(circles)
        p_lat, p_lon = lat + rng.uniform(-0.3, 0.3), lon + rng.uniform(-0.3, 0.3)
        scanned = [
            i for c_lat, c_lon, r, i in circles if haversine_m(p_lat, p_lon, c_lat, c_lon) <= r
        ]
        assert sorted(grid.match(p_lat, p_lon)) == scanned


def test_grid_wraps_at_the_antimeridian() -> None:
    grid: GeoGrid[str] = GeoGrid()
    grid.add(0.0, 179.99, 5000, "fiji")
    assert grid.match(0.0, -179.99) == ["fiji"]


@pytest.mark.parametrize(
    ("bundle", "matched"),
    [("com.autohome", True), ("COM.YICHE.AUTOEASY", True), ("com.autohome.lite", False)],
)
def test_app_open_matches_whole_bundle_ids_ignoring_case(
    library: SceneLibrary, bundle: str, matched: bool
) -> None:
    expected = ["scene.auto.car_app_opened"] if matched else []
    assert tags(library, event("app_open", bundle)) == expected


@pytest.mark.parametrize(
    ("url", "matched"),
    [
        ("https://car.autohome.com.cn/price/brand-15.html", True),
        ("http://AUTOHOME.com.cn/price", True),
        ("autohome.com.cn/price/series?x=1", True),
        ("https://www.autohome.com.cn/news/1.html", False),  # path outside the prefix
        ("https://notautohome.com.cn/price/", False),  # not a subdomain
        ("https://autohome.com.cn.evil.example/price/", False),
        ("https://example.com/?u=autohome.com.cn/price", False),
    ],
)
def test_url_visit_matches_domain_subdomains_and_path_prefix(
    library: SceneLibrary, url: str, matched: bool
) -> None:
    expected = ["scene.auto.price_research"] if matched else []
    assert tags(library, event("url_visit", url)) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("best SUV 2025", ["scene.auto.car_search"]),
        ("ＳＵＶ价格", ["scene.auto.car_search"]),  # full width, CJK after the word
        ("book a  Test   Drive", ["scene.auto.car_search"]),
        ("比亚迪电动车价格", ["scene.auto.car_search", "scene.auto.ev_research"]),
        ("suvarna jewellery", []),  # not a whole word
        ("EV charging near me", ["scene.auto.ev_research"]),
        ("seven dwarfs", []),
        ("weather", []),
    ],
)
def test_search_keywords(library: SceneLibrary, query: str, expected: list[str]) -> None:
    assert sorted(tags(library, event("search", query))) == sorted(expected)


@pytest.mark.parametrize(
    ("number", "matched"),
    [
        ("400-820-1234", True),
        ("4008201234", True),
        ("+86 400 820 1234", True),
        ("0086-400-820-1234", True),
        ("400-821-1234", False),
        ("+1 400 820 1234", False),  # another country
        ("40082", False),  # shorter than the prefix
    ],
)
def test_call_prefixes(library: SceneLibrary, number: str, matched: bool) -> None:
    expected = ["scene.finance.called_bank"] if matched else []
    assert tags(library, event("call", number)) == expected


def test_phone_digits() -> None:
    assert phone_digits("(010) 6512-3456") == "01065123456"
    assert phone_digits("+86-138 0013 8000") == "13800138000"
    assert phone_digits("+44 20 7946 0000") == "+442079460000"


def test_default_library_loads_and_uses_scene_tags_of_the_taxonomy() -> None:
    library = SceneLibrary.default()
    taxonomy = Taxonomy.default()
    assert len(library) >= 40
    assert {rule.kind for rule in library.rules} == set(EventKind)
    for code in library.tags():
        assert taxonomy.tag(code).dimension == "scene"
    assert SceneLibrary.default() is library


@pytest.mark.parametrize(
    ("kind", "text", "lat", "lon", "expected"),
    [
        ("geofence", "", 22.6395, 113.812, "scene.travel.at_airport"),
        ("geofence", "", 22.54, 113.93, "scene.education.at_university"),
        ("app_open", "com.autohome", 0, 0, "scene.auto.car_app_opened"),
        ("url_visit", "https://item.jd.com/100012043978.html", 0, 0, "scene.shopping.product_research"),
        ("search", "深圳到北京机票", 0, 0, "scene.travel.trip_planning"),
        ("call", "95588", 0, 0, "scene.finance.called_bank"),
    ],
)  # fmt: skip
def test_default_library_examples(
    kind: str, text: str, lat: float, lon: float, expected: str
) -> None:
    assert expected in tags(SceneLibrary.default(), event(kind, text, lat, lon))


def test_rules_without_score_are_full_membership(library: SceneLibrary) -> None:
    (rule,) = library.match(event("app_open", "com.autohome"))
    assert (rule.id, rule.score, rule.ttl_minutes) == ("car_apps", 100, 1440)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"kind": "teleport"}, "unknown kind"),
        ({"radius_m": 0}, "radius_m"),
        ({"radius_m": 60_000}, "radius_m"),
        ({"lat": 91}, "lat"),
        ({"lat": True}, "lat"),
        ({"ttl_minutes": 0}, "ttl_minutes"),
        ({"score": 101}, "score"),
        ({"tag": "travel.at_airport"}, "dimension.category.tag"),
        ({"radius": 100}, "not a field of a geofence rule"),
        ({"id": ""}, "id"),
    ],
)
def test_bad_rules_are_refused_naming_rule_and_field(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(SceneRuleError) as info:
        SceneLibrary([RULES[1], {**RULES[0], **change}], "lib.json")
    assert reason in info.value.reason
    assert info.value.source == "lib.json: rules[1]"


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ({**RULES[2], "path_prefix": "price"}, "must start with '/'"),
        ({**RULES[2], "domains": ["https://autohome.com.cn"]}, "a host name, not a URL"),
        ({**RULES[1], "bundles": []}, "non-empty list"),
        ({**RULES[3], "keywords": ["suv", " "]}, "non-empty string"),
        ({**RULES[5], "prefixes": ["--"]}, "no digits"),
        (RULES[0], "duplicate id"),
    ],
)
def test_bad_text_rules(rule: dict[str, Any], reason: str) -> None:
    with pytest.raises(SceneRuleError, match=reason):
        SceneLibrary([RULES[0], rule])


def test_from_json_errors(tmp_path: Path) -> None:
    with pytest.raises(SceneRuleError, match="not JSON"):
        SceneLibrary.from_bytes(b"{")
    with pytest.raises(SceneRuleError, match='"rules" list'):
        SceneLibrary.from_bytes(b"[]")
    with pytest.raises(SceneRuleError) as info:
        SceneLibrary.from_json(tmp_path / "missing.json")
    assert info.value.source == str(tmp_path / "missing.json")
    path = tmp_path / "scenes.json"
    path.write_text('{"rules": [{"id": "a", "kind": "search", "keywords": ["x"], '
                    '"tag": "scene.games.game_guide_search", "ttl_minutes": 5}]}')  # fmt: skip
    assert len(SceneLibrary.from_json(path)) == 1
