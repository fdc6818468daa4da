"""The campaign as advertisers define it, validated from JSON into frozen records.

Money is integer micros of USD throughout. Validation names the field path of the first
problem (``creatives[1].w``) so an API can answer 422 with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from dsp.errors import InvalidCampaign


class CreativeFormat(StrEnum):
    BANNER = "banner"
    NATIVE = "native"
    VIDEO = "video"


class Status(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    ARCHIVED = "archived"


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
class Targeting:
    tags: str | None = None  # a boolean tag expression over the taxonomy
    countries: frozenset[str] = frozenset()  # ISO 3166-1 alpha-3, as OpenRTB geo.country
    regions: frozenset[str] = frozenset()
    os: frozenset[str] = frozenset()  # lowercase: ios, android, ...


@dataclass(frozen=True, slots=True)
class Campaign:
    id: str
    advertiser_id: str
    name: str
    status: Status
    cpm_micros: int
    budget_total_micros: int
    budget_daily_micros: int
    targeting: Targeting
    creatives: tuple[Creative, ...]

    @property
    def active(self) -> bool:
        return self.status is Status.ACTIVE


class _Reader:
    """Typed access to one JSON object that reports problems by their field path."""

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, Mapping):
            raise InvalidCampaign(path or "$", "expected an object")
        self.data: Mapping[str, Any] = data
        self.path = path

    def _field(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def text(self, name: str, default: str | None = None, *, max_len: int = 200) -> str:
        value = self.data.get(name, default)
        if not isinstance(value, str) or (default is None and not value):
            raise InvalidCampaign(self._field(name), "expected a non-empty string")
        if len(value) > max_len:
            raise InvalidCampaign(self._field(name), f"longer than {max_len} characters")
        return value

    def url(self, name: str, *, required: bool = True) -> str:
        value = self.text(name, None if required else "", max_len=2000)
        if value or required:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise InvalidCampaign(self._field(name), "expected an http(s) URL")
        return value

    def integer(self, name: str, *, minimum: int, default: int | None = None) -> int:
        value = self.data.get(name, default)
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidCampaign(self._field(name), "expected an integer")
        if value < minimum:
            raise InvalidCampaign(self._field(name), f"must be at least {minimum}")
        return value

    def strings(self, name: str) -> tuple[str, ...]:
        value = self.data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise InvalidCampaign(self._field(name), "expected a list of strings")
        return tuple(value)

    def child(self, name: str) -> _Reader:
        return _Reader(self.data.get(name, {}), self._field(name))

    def children(self, name: str) -> list[_Reader]:
        value = self.data.get(name)
        if not isinstance(value, list) or not value:
            raise InvalidCampaign(self._field(name), "expected a non-empty list")
        return [_Reader(item, f"{self._field(name)}[{i}]") for i, item in enumerate(value)]

    def choice(self, name: str, enum: type[StrEnum], default: str | None = None) -> Any:
        value = self.data.get(name, default)
        try:
            return enum(value)
        except ValueError:
            allowed = ", ".join(member.value for member in enum)
            raise InvalidCampaign(self._field(name), f"expected one of {allowed}") from None


def _creative(reader: _Reader) -> Creative:
    fmt: CreativeFormat = reader.choice("format", CreativeFormat)
    common = {
        "id": reader.text("id", max_len=64),
        "format": fmt,
        "landing_url": reader.url("landing_url"),
        "adomain": reader.strings("adomain"),
        "cat": reader.strings("cat"),
    }
    if fmt is CreativeFormat.BANNER:
        return Creative(
            **common,  # type: ignore[arg-type]
            w=reader.integer("w", minimum=1),
            h=reader.integer("h", minimum=1),
            image_url=reader.url("image_url"),
        )
    if fmt is CreativeFormat.NATIVE:
        return Creative(
            **common,  # type: ignore[arg-type]
            title=reader.text("title", max_len=90),
            description=reader.text("description", "", max_len=500),
            image_url=reader.url("image_url"),
        )
    creative = Creative(
        **common,  # type: ignore[arg-type]
        w=reader.integer("w", minimum=1, default=640),
        h=reader.integer("h", minimum=1, default=360),
        vast_url=reader.url("vast_url", required=False),
        media_url=reader.url("media_url", required=False),
        duration_s=reader.integer("duration_s", minimum=1, default=15),
    )
    if not (creative.vast_url or creative.media_url):
        raise InvalidCampaign(f"{reader.path}.media_url", "a video needs media_url or vast_url")
    return creative


def _targeting(reader: _Reader) -> Targeting:
    tags = reader.data.get("tags")
    if tags is not None and (not isinstance(tags, str) or not tags.strip()):
        raise InvalidCampaign(reader._field("tags"), "expected a tag expression")
    return Targeting(
        tags=tags,
        countries=frozenset(c.upper() for c in reader.strings("countries")),
        regions=frozenset(r.upper() for r in reader.strings("regions")),
        os=frozenset(o.lower() for o in reader.strings("os")),
    )


def campaign_from_dict(data: object) -> Campaign:
    """Validate a campaign payload; raises ``InvalidCampaign`` naming the first bad field."""
    reader = _Reader(data, "")
    bid, budget = reader.child("bid"), reader.child("budget")
    creatives = tuple(_creative(child) for child in reader.children("creatives"))
    ids = [creative.id for creative in creatives]
    if len(set(ids)) != len(ids):
        raise InvalidCampaign("creatives", "creative ids must be unique")
    total = budget.integer("total_micros", minimum=1)
    daily = budget.integer("daily_micros", minimum=1, default=total)
    if daily > total:
        raise InvalidCampaign("budget.daily_micros", "must not exceed budget.total_micros")
    return Campaign(
        id=reader.text("id", max_len=64),
        advertiser_id=reader.text("advertiser_id", max_len=64),
        name=reader.text("name", max_len=200),
        status=reader.choice("status", Status, "active"),
        cpm_micros=bid.integer("cpm_micros", minimum=1),
        budget_total_micros=total,
        budget_daily_micros=daily,
        targeting=_targeting(reader.child("targeting")),
        creatives=creatives,
    )


def campaigns_from_dicts(items: Sequence[object]) -> list[Campaign]:
    return [campaign_from_dict(item) for item in items]
