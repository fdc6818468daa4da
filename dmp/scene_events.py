"""Behaviour events: what a device just did, validated into a `SceneEvent`.

One JSON object per event, with the device and what happened::

    {"id_type": "idfa", "id": "6D92078A-...", "kind": "geofence", "lat": 22.54, "lon": 113.93,
     "ts": 1764000000}

``kind`` is ``geofence`` (``lat``, ``lon``: the device entered a place), ``app_open``
(``bundle``), ``url_visit`` (``url``), ``search`` (``query``) or ``call`` (``number``).
``ts`` (unix seconds) is optional and defaults to now; a scene lives from the event's time,
so an event that waited in a queue does not live longer than it should.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from dmp.errors import InvalidDeviceId, SceneEventError
from dmp.ids import DeviceId, parse_device_id

# Devices and their servers keep imperfect clocks; further ahead than this is a bad ``ts``.
MAX_FUTURE_S = 600
MAX_TEXT = {"bundle": 255, "url": 2048, "query": 512, "number": 32}
_PHONE_CHARS = frozenset("0123456789+-(). ")
_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://|//")


class EventKind(StrEnum):
    GEOFENCE = "geofence"
    APP_OPEN = "app_open"
    URL_VISIT = "url_visit"
    SEARCH = "search"
    CALL = "call"


# The field holding the subject of each text kind.
TEXT_FIELD = {
    EventKind.APP_OPEN: "bundle",
    EventKind.URL_VISIT: "url",
    EventKind.SEARCH: "query",
    EventKind.CALL: "number",
}


@dataclass(frozen=True, slots=True)
class SceneEvent:
    """One validated event. ``text`` is the bundle, URL, query or number, by ``kind``."""

    device: DeviceId
    kind: EventKind
    ts: int
    lat: float = 0.0
    lon: float = 0.0
    text: str = ""

    def to_json(self) -> dict[str, object]:
        """The event as a JSON object that `parse_event` reads back unchanged."""
        body: dict[str, object] = {
            "id_type": f"{self.device.type.value}_{self.device.form.value}",
            "id": self.device.value,
            "kind": self.kind.value,
            "ts": self.ts,
        }
        if self.kind is EventKind.GEOFENCE:
            body["lat"], body["lon"] = self.lat, self.lon
        else:
            body[TEXT_FIELD[self.kind]] = self.text
        return body


_KINDS = {kind.value: kind for kind in EventKind}


def event_kind(value: object) -> EventKind | None:
    """The kind this JSON value names, if any."""
    return _KINDS.get(value) if isinstance(value, str) else None


def _kind_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _device(event: Mapping[str, object]) -> DeviceId:
    id_type, value = event.get("id_type"), event.get("id")
    for name, given in (("id_type", id_type), ("id", value)):
        if not isinstance(given, str):
            reason = "missing" if given is None else f"expected a string, got {_kind_name(given)}"
            raise SceneEventError(name, reason)
    assert isinstance(id_type, str) and isinstance(value, str)
    try:
        return parse_device_id(id_type, value)
    except InvalidDeviceId as exc:
        if exc.reason == "unknown id type":
            reason = f"unknown id type {id_type!r} (imei, idfa, gaid, oaid or mac, optionally _md5)"
            raise SceneEventError("id_type", reason) from None
        raise SceneEventError("id", str(exc)) from None


def _number(event: Mapping[str, object], field: str, low: float, high: float) -> float:
    value = event.get(field)
    if value is None:
        raise SceneEventError(field, "missing")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SceneEventError(field, f"expected a number, got {_kind_name(value)}")
    if not (math.isfinite(value) and low <= value <= high):
        raise SceneEventError(field, f"expected {low:g}..{high:g}, got {value!r}")
    return float(value)


def _ts(event: Mapping[str, object], now: float) -> int:
    if event.get("ts") is None:
        return int(now)
    ts = _number(event, "ts", 1, 2**32 - 1)
    if ts > now + MAX_FUTURE_S:
        raise SceneEventError("ts", f"{ts:.0f} is in the future (now {now:.0f})")
    return int(ts)


def _text(event: Mapping[str, object], field: str) -> str:
    value = event.get(field)
    if value is None:
        raise SceneEventError(field, "missing")
    if not isinstance(value, str):
        raise SceneEventError(field, f"expected a string, got {_kind_name(value)}")
    text = value.strip()
    if not text:
        raise SceneEventError(field, "empty")
    if len(text) > MAX_TEXT[field]:
        raise SceneEventError(field, f"longer than {MAX_TEXT[field]} characters")
    return text


def _check_text(kind: EventKind, text: str) -> None:
    if kind is EventKind.URL_VISIT:
        if not url_parts(text)[0]:
            raise SceneEventError("url", f"no host in {text!r}")
    elif kind is EventKind.CALL:
        if not set(text) <= _PHONE_CHARS or sum(c.isdigit() for c in text) < 3:
            raise SceneEventError("number", f"not a phone number: {text!r}")


def parse_event(event: object, now: float | None = None) -> SceneEvent:
    """Validate a decoded JSON event; raises `SceneEventError` naming the bad field."""
    if not isinstance(event, Mapping):
        raise SceneEventError("event", f"expected a JSON object, got {_kind_name(event)}")
    device = _device(event)
    kind = event_kind(event.get("kind"))
    if kind is None:
        names = ", ".join(k.value for k in EventKind)
        raise SceneEventError("kind", f"expected one of {names}, got {event.get('kind')!r}")
    ts = _ts(event, time.time() if now is None else now)
    if kind is EventKind.GEOFENCE:
        lat, lon = _number(event, "lat", -90, 90), _number(event, "lon", -180, 180)
        return SceneEvent(device, kind, ts, lat=lat, lon=lon)
    text = _text(event, TEXT_FIELD[kind])
    _check_text(kind, text)
    return SceneEvent(device, kind, ts, text=text)


def url_parts(url: str) -> tuple[str, str]:
    """``(host, path)`` of a URL, the host lowercased; the scheme may be left out."""
    try:
        parts = urlsplit(url if _SCHEME.match(url) else f"//{url}")
        host = (parts.hostname or "").rstrip(".")
    except ValueError:  # a malformed port or IPv6 literal
        return "", ""
    return host, parts.path or "/"
