from __future__ import annotations

from typing import Any

import pytest

from dmp.errors import SceneEventError
from dmp.ids import IdForm, IdType
from dmp.scene_events import EventKind, parse_event, url_parts

NOW = 1_764_000_000.0
IDFA = "6d92078a-8246-4ba4-ae5b-76104861e7dc"


def geofence(**change: Any) -> dict[str, Any]:
    return {"id_type": "idfa", "id": IDFA, "kind": "geofence", "lat": 22.54, "lon": 113.93,
            **change}  # fmt: skip


def test_a_geofence_event() -> None:
    event = parse_event(geofence(ts=NOW - 5), NOW)
    assert event.device.type is IdType.IDFA
    assert event.device.value == IDFA.upper()
    assert (event.kind, event.ts, event.lat, event.lon) == (
        EventKind.GEOFENCE,
        NOW - 5,
        22.54,
        113.93,
    )


def test_ts_defaults_to_now() -> None:
    assert parse_event(geofence(), NOW).ts == int(NOW)


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("app_open", "bundle", "com.autohome"),
        ("url_visit", "url", "https://car.autohome.com.cn/price/"),
        ("search", "query", "  best suv  "),
        ("call", "number", "+86 400-820-1234"),
    ],
)
def test_text_events_round_trip_through_json(kind: str, field: str, value: str) -> None:
    raw = {"id_type": "gaid", "id": IDFA, "kind": kind, field: value, "ts": NOW}
    event = parse_event(raw, NOW)
    assert event.kind is EventKind(kind)
    assert event.text == value.strip()
    body = event.to_json()
    assert body["id_type"] == "gaid_raw" and body[field] == value.strip()
    assert parse_event(body, NOW) == event


def test_hashed_ids_round_trip() -> None:
    md5 = "0123456789abcdef0123456789ABCDEF"
    event = parse_event(geofence(id_type="idfa", id=md5), NOW)
    assert event.device.form is IdForm.MD5
    assert parse_event(event.to_json(), NOW) == event


@pytest.mark.parametrize(
    ("event", "field", "reason"),
    [
        ([1, 2], "event", "JSON object"),
        (geofence(id_type=None), "id_type", "missing"),
        (geofence(id_type="phone"), "id_type", "unknown id type"),
        (geofence(id=7), "id", "expected a string"),
        (geofence(id="not-a-uuid"), "id", "not a UUID"),
        (geofence(id="00000000-0000-0000-0000-000000000000"), "id", "placeholder"),
        (geofence(kind="teleport"), "kind", "expected one of"),
        (geofence(lat=None), "lat", "missing"),
        (geofence(lat="22.5"), "lat", "expected a number"),
        (geofence(lat=True), "lat", "expected a number"),
        (geofence(lat=91), "lat", "-90..90"),
        (geofence(lon=-181), "lon", "-180..180"),
        (geofence(ts=NOW + 3600), "ts", "in the future"),
        (geofence(ts=-1), "ts", "expected"),
        (geofence(ts="yesterday"), "ts", "expected a number"),
        (geofence(kind="app_open"), "bundle", "missing"),
        (geofence(kind="app_open", bundle="   "), "bundle", "empty"),
        (geofence(kind="app_open", bundle=["x"]), "bundle", "expected a string"),
        (geofence(kind="search", query="x" * 513), "query", "longer than 512"),
        (geofence(kind="url_visit", url="/just/a/path"), "url", "no host"),
        (geofence(kind="url_visit", url="http://[::1"), "url", "no host"),
        (geofence(kind="call", number="call me"), "number", "not a phone number"),
        (geofence(kind="call", number="12"), "number", "not a phone number"),
    ],
)
def test_invalid_events_name_the_field(event: object, field: str, reason: str) -> None:
    with pytest.raises(SceneEventError) as info:
        parse_event(event, NOW)
    assert info.value.field == field
    assert reason in info.value.reason


def test_url_parts() -> None:
    assert url_parts("https://Car.AutoHome.com.cn:443/price/x?y=1") == (
        "car.autohome.com.cn",
        "/price/x",
    )
    assert url_parts("autohome.com.cn") == ("autohome.com.cn", "/")
    assert url_parts("//m.jd.com/item") == ("m.jd.com", "/item")
