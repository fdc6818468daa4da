"""A device profile and its compact binary form in Redis.

Layout (version 1), chosen for bytes per device because the DMP holds millions of them:

    u8 version | u8 price tier | 5 x (u8 length + UTF-8): os, model, country, region, city
    | varint group count | per group: varint expiry day, varint tag count,
      per tag (ascending id): varint (id delta << 1 | has score) [+ u8 score]

Tags loaded together share an expiry, so grouping by expiry day costs a few bytes per load
instead of two per tag, and delta-coded ids take one byte each for a dense taxonomy.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from dmp.errors import DmpError

VERSION = 1
UNSCORED = 100  # an unscored tag is full membership for score comparisons
_EPOCH_DAY = 18262  # 2020-01-01 in days since 1970-01-01


class ProfileFormatError(DmpError):
    """Bytes that are not a profile of a known version."""


def day_number(unix_seconds: float) -> int:
    """Days since 2020-01-01: the unit of tag expiry."""
    return int(unix_seconds // 86400) - _EPOCH_DAY


@dataclass(frozen=True, slots=True)
class TagEntry:
    tag_id: int
    expires_day: int
    score: int | None = None


@dataclass(frozen=True, slots=True)
class Profile:
    """What the bidder knows of a device: live tags (id -> score) and its snapshot."""

    tags: dict[int, int] = field(default_factory=dict)  # fresh per decode: callers may add
    os: str = ""
    model: str = ""
    price_tier: int = 0
    country: str = ""
    region: str = ""
    city: str = ""


@dataclass(frozen=True, slots=True)
class Snapshot:
    os: str = ""
    model: str = ""
    price_tier: int = 0
    country: str = ""
    region: str = ""
    city: str = ""


def _varint(value: int, out: bytearray) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _short_text(text: str, out: bytearray) -> None:
    raw = text.encode()[:255]
    out.append(len(raw))
    out += raw


def encode(snapshot: Snapshot, entries: Iterable[TagEntry]) -> bytes:
    """Serialise a snapshot and tag entries; a tag listed twice keeps its latest expiry."""
    latest: dict[int, TagEntry] = {}
    for entry in entries:
        kept = latest.get(entry.tag_id)
        if kept is None or entry.expires_day >= kept.expires_day:
            latest[entry.tag_id] = entry
    out = bytearray((VERSION, max(0, min(255, snapshot.price_tier))))
    for text in (snapshot.os, snapshot.model, snapshot.country, snapshot.region, snapshot.city):
        _short_text(text, out)
    by_day = sorted(latest.values(), key=lambda e: (e.expires_day, e.tag_id))
    groups = [
        (day, list(group)) for day, group in itertools.groupby(by_day, lambda e: e.expires_day)
    ]
    _varint(len(groups), out)
    for day, group in groups:
        _varint(max(0, day), out)
        _varint(len(group), out)
        previous = 0
        for entry in group:
            has_score = entry.score is not None
            _varint(((entry.tag_id - previous) << 1) | has_score, out)
            if entry.score is not None:
                out.append(max(0, min(100, entry.score)))
            previous = entry.tag_id
    return bytes(out)


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def varint(self) -> int:
        data, pos, shift, value = self.data, self.pos, 0, 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                self.pos = pos
                return value
            shift += 7

    def byte(self) -> int:
        self.pos += 1
        return self.data[self.pos - 1]

    def text(self) -> str:
        length = self.byte()
        start = self.pos
        self.pos += length
        return self.data[start : self.pos].decode(errors="replace")


def decode_entries(data: bytes) -> tuple[Snapshot, list[TagEntry]]:
    """Every stored entry, expired or not: for merging on ingest."""
    try:
        reader = _Reader(data)
        if reader.byte() != VERSION:
            raise ProfileFormatError(f"unknown profile version {data[0]}")
        tier = reader.byte()
        os_, model, country, region, city = (reader.text() for _ in range(5))
        entries: list[TagEntry] = []
        for _ in range(reader.varint()):
            day, count, tag_id = reader.varint(), reader.varint(), 0
            for _ in range(count):
                word = reader.varint()
                tag_id += word >> 1
                score = reader.byte() if word & 1 else None
                entries.append(TagEntry(tag_id, day, score))
    except IndexError:
        raise ProfileFormatError("truncated profile") from None
    return Snapshot(os_, model, tier, country, region, city), entries


def decode(data: bytes, today: int) -> Profile:
    """The profile as the bidder sees it: tags expiring before ``today`` are dropped."""
    snapshot, entries = decode_entries(data)
    tags = {
        e.tag_id: UNSCORED if e.score is None else e.score
        for e in entries
        if e.expires_day >= today
    }
    return Profile(
        tags=tags,
        os=snapshot.os,
        model=snapshot.model,
        price_tier=snapshot.price_tier,
        country=snapshot.country,
        region=snapshot.region,
        city=snapshot.city,
    )
