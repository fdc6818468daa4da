"""A device profile and its compact binary form in Redis.

Layout (version 2), chosen for bytes per device because the DMP holds millions of them:

    u8 version (2) | u8 price tier | 5 x (u8 length + UTF-8): os, model, country, region, city
    | tag section (``dmp.profile_tags``: bit-packed tag ids, expiry days and scores)

In Redis the snapshot part (price tier and the five texts) is replaced by a one- to three-byte
reference into a dictionary of the snapshots seen (``dmp.profile_refs``): a file repeats few
(handset, place) combinations, and texts would otherwise cost more than the tags. Readers never
see that form: the store's scripts put the snapshot back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from dmp.profile_tags import ProfileFormatError as ProfileFormatError
from dmp.profile_tags import TagEncoder, decode_section

VERSION: Final = 2
UNSCORED: Final = 100  # an unscored tag is full membership for score comparisons
_EPOCH_DAY: Final = 18262  # 2020-01-01 in days since 1970-01-01
_VERSION_BYTE: Final = bytes((VERSION,))
_TEXTS: Final = 5


def day_number(unix_seconds: float) -> int:
    """Days since 2020-01-01: the unit of tag expiry."""
    return int(unix_seconds // 86400) - _EPOCH_DAY


@dataclass(frozen=True, slots=True)
class TagEntry:
    tag_id: int
    expires_day: int
    score: int | None = None


@dataclass(slots=True, init=False, unsafe_hash=True)  # a value class: see ``infra.compiled``
class Profile:
    """What the bidder knows of a device: live tags (id -> score) and its snapshot."""

    tags: Final[dict[int, int]]  # fresh per decode: callers may add
    os: Final[str]
    model: Final[str]
    price_tier: Final[int]
    country: Final[str]
    region: Final[str]
    city: Final[str]

    def __init__(
        self,
        tags: dict[int, int] | None = None,
        os: str = "",
        model: str = "",
        price_tier: int = 0,
        country: str = "",
        region: str = "",
        city: str = "",
    ) -> None:
        self.tags = {} if tags is None else tags
        self.os = os
        self.model = model
        self.price_tier = price_tier
        self.country = country
        self.region = region
        self.city = city


@dataclass(slots=True, init=False, unsafe_hash=True)  # a value class: see ``infra.compiled``
class Snapshot:
    os: Final[str]
    model: Final[str]
    price_tier: Final[int]
    country: Final[str]
    region: Final[str]
    city: Final[str]

    def __init__(
        self,
        os: str = "",
        model: str = "",
        price_tier: int = 0,
        country: str = "",
        region: str = "",
        city: str = "",
    ) -> None:
        self.os = os
        self.model = model
        self.price_tier = price_tier
        self.country = country
        self.region = region
        self.city = city


def _short_text(text: str, out: bytearray) -> None:
    raw = text.encode()[:255]
    out.append(len(raw))
    out += raw


def snapshot_bytes(snapshot: Snapshot) -> bytes:
    """The snapshot part of a blob (without the version byte): what the dictionary stores."""
    out = bytearray((max(0, min(255, snapshot.price_tier)),))
    for text in (snapshot.os, snapshot.model, snapshot.country, snapshot.region, snapshot.city):
        _short_text(text, out)
    return bytes(out)


def read_snapshot(data: bytes, pos: int) -> tuple[Snapshot, int]:
    """The snapshot starting at ``pos`` and the position after it."""
    try:
        tier = data[pos]
        pos += 1
        texts: list[str] = []
        for _ in range(_TEXTS):
            end = pos + 1 + data[pos]
            if end > len(data):
                raise IndexError
            texts.append(data[pos + 1 : end].decode(errors="replace"))
            pos = end
    except IndexError:
        raise ProfileFormatError("truncated snapshot") from None
    os_, model, country, region, city = texts
    return Snapshot(os_, model, tier, country, region, city), pos


# Encoding keeps a small cache of expiry headers; it is a pure memo, safe to share.
_ENCODER: Final = TagEncoder()


def tag_section(entries: Iterable[TagEntry]) -> bytes:
    """The tag part of a blob; a tag listed twice keeps its latest expiry."""
    return _ENCODER.encode((e.tag_id, e.expires_day, e.score) for e in entries)


def encode(snapshot: Snapshot, entries: Iterable[TagEntry]) -> bytes:
    """Serialise a snapshot and tag entries; a tag listed twice keeps its latest expiry."""
    return _VERSION_BYTE + snapshot_bytes(snapshot) + tag_section(entries)


def _open(data: bytes) -> tuple[Snapshot, int]:
    if not data or data[0] != VERSION:
        raise ProfileFormatError(f"unknown profile version {data[:1].hex() or 'none'}")
    return read_snapshot(data, 1)


def decode_entries(data: bytes) -> tuple[Snapshot, list[TagEntry]]:
    """Every stored entry, expired or not: for merging on ingest."""
    snapshot, pos = _open(data)
    days, groups, scores = decode_section(data, pos)
    entries: list[TagEntry] = []
    for day, ids in zip(days, groups, strict=True):
        for tag_id in ids:
            entries.append(TagEntry(tag_id, day, scores.get(len(entries))))
    return snapshot, entries


def decode_live_entries(
    data: bytes, today: int
) -> tuple[Snapshot, list[tuple[int, int, int | None]]]:
    """The entries expiring on ``today`` or later, as (tag id, expiry day, score) tuples:
    what merge mode keeps of a stored profile (``decode_entries`` without the expired ones,
    and no object per entry)."""
    snapshot, pos = _open(data)
    days, groups, scores = decode_section(data, pos)
    entries: list[tuple[int, int, int | None]] = []
    position = 0  # scores are keyed by position among all ids, expired ones included
    get = scores.get
    for day, ids in zip(days, groups, strict=True):
        if day >= today:
            entries += [(tag_id, day, get(position + n)) for n, tag_id in enumerate(ids)]
        position += len(ids)
    return snapshot, entries


def decode(data: bytes, today: int) -> Profile:
    """The profile as the bidder sees it: tags expiring before ``today`` are dropped."""
    snapshot, pos = _open(data)
    days, groups, scores = decode_section(data, pos)
    # Plain loops: compiled, they beat dict.fromkeys and zip(strict=True), which mypyc calls
    # as generic Python functions.
    tags: dict[int, int] = {}
    for group in range(len(days)):
        if days[group] >= today:
            for tag_id in groups[group]:
                tags[tag_id] = UNSCORED
    if scores:
        every = [tag_id for ids in groups for tag_id in ids]
        for position, score in scores.items():
            if every[position] in tags:
                tags[every[position]] = score
    return Profile(
        tags, snapshot.os, snapshot.model, snapshot.price_tier, snapshot.country,
        snapshot.region, snapshot.city,
    )  # fmt: skip
