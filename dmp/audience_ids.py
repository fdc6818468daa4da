"""ID matching: an uploaded list of device IDs in any form, matched to stored devices.

A line is ``type,value`` (``idfa,AEBE52E7-...``, ``gaid_md5,9f86...``, ``mac_sha1,...``: any
type name ``dmp.ids.parse_device_id`` takes) or a bare value when the upload names its type.
The type ``key`` takes a device's 8-byte primary digest as 16 hex digits, the form an
export gives for devices whose raw ID the DMP never saw. Empty lines and a first line
``id_type,id`` are skipped.

Each valid ID is tried under every digest the DMP may hold it as (the primary first) and
followed through an alias to its device's primary digest, a few thousand IDs a round trip.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from redis.asyncio import Redis

from dmp.errors import InvalidDeviceId
from dmp.ids import IdForm, parse_device_id
from dmp.profile_store import ALIAS_MARK, ProfileStore

KEY_TYPE = "key"
MAX_REJECTED_SHOWN = 20
_BATCH = 5000
_HEADERS = frozenset({"id_type,id", "type,id", "id_type,value", "type,value"})
_SHOWN_TEXT = 80
_HEX = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True, slots=True)
class RejectedLine:
    """An invalid line: its 1-based number, why, and its text (cut to 80 characters)."""

    line: int
    reason: str
    text: str


@dataclass(frozen=True, slots=True)
class IdMatch:
    """Counts of an upload: lines read (empty ones aside) = matched + unmatched + invalid."""

    lines: int
    matched: int
    unmatched: int
    invalid: int
    devices: int  # distinct devices matched: two IDs of one device count once
    rejected: tuple[RejectedLine, ...] = ()  # the first few invalid lines

    def to_dict(self) -> dict[str, object]:
        return {
            "lines": self.lines,
            "matched": self.matched,
            "unmatched": self.unmatched,
            "invalid": self.invalid,
            "devices": self.devices,
            "rejected": [
                {"line": r.line, "reason": r.reason, "text": r.text} for r in self.rejected
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> IdMatch:
        rejected = data.get("rejected")
        shown = [r for r in rejected if isinstance(r, dict)] if isinstance(rejected, list) else []
        return cls(
            lines=_int(data, "lines"),
            matched=_int(data, "matched"),
            unmatched=_int(data, "unmatched"),
            invalid=_int(data, "invalid"),
            devices=_int(data, "devices"),
            rejected=tuple(
                RejectedLine(_int(r, "line"), str(r.get("reason")), str(r.get("text")))
                for r in shown
            ),
        )


def _int(data: dict[str, object], name: str) -> int:
    value = data.get(name)
    return value if isinstance(value, int) else 0


@dataclass(slots=True)
class MatchedIds:
    """The outcome of matching: counts, and the canonical IDs given for each matched device."""

    report: IdMatch
    ids: dict[bytes, list[str]] = field(default_factory=dict)  # primary digest -> IDs

    def packed(self) -> bytes:
        """The matched primary digests, sorted and packed 8 bytes each."""
        return b"".join(sorted(self.ids))


@dataclass(frozen=True, slots=True)
class _Parsed:
    text: str  # canonical ``type,value``
    candidates: tuple[bytes, ...]  # digests to try, the primary first


_Pick: TypeAlias = Callable[[_Parsed], tuple[bytes, ...]]


def canonical_type(id_type: str, form: IdForm) -> str:
    return id_type if form is IdForm.RAW else f"{id_type}_{form.value}"


def parse_line(line: str, id_type: str | None) -> _Parsed | str:
    """One line parsed, or the reason it is invalid."""
    text = line.strip()
    given_type, comma, value = text.partition(",")
    if comma:
        id_type = given_type.strip()
    elif id_type is None:
        return "expected 'type,value' (or give the ID type of the whole list)"
    else:
        value = text
    value = value.strip()
    if id_type.strip().lower() == KEY_TYPE:
        if len(value) != 16 or not _HEX.issuperset(value):
            return "a key must be 16 hex digits"
        return _Parsed(f"{KEY_TYPE},{value.lower()}", (bytes.fromhex(value),))
    try:
        device = parse_device_id(id_type, value)
    except InvalidDeviceId as error:
        return error.reason if error.reason != "unknown id type" else f"unknown ID type {id_type!r}"
    canonical = f"{canonical_type(device.type.value, device.form)},{device.value}"
    return _Parsed(canonical, device.digests())


def _numbered(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if text and not (number == 1 and text.lower().replace(" ", "") in _HEADERS):
            yield number, text


class _Matcher:
    def __init__(self, redis: Redis) -> None:
        self._store = ProfileStore(redis)
        self.result = MatchedIds(IdMatch(0, 0, 0, 0, 0))
        self.counts = {"lines": 0, "matched": 0, "unmatched": 0, "invalid": 0}
        self.rejected: list[RejectedLine] = []

    def reject(self, number: int, reason: str, text: str) -> None:
        self.counts["invalid"] += 1
        if len(self.rejected) < MAX_REJECTED_SHOWN:
            self.rejected.append(RejectedLine(number, reason, text[:_SHOWN_TEXT]))

    async def match(self, parsed: Sequence[_Parsed]) -> None:
        primaries = await self._primaries(parsed)
        for item, primary in zip(parsed, primaries, strict=True):
            if primary is None:
                self.counts["unmatched"] += 1
                continue
            self.counts["matched"] += 1
            given = self.result.ids.setdefault(primary, [])
            if item.text not in given:
                given.append(item.text)

    async def _primaries(self, parsed: Sequence[_Parsed]) -> list[bytes | None]:
        """Each item's device (primary digest), or None: the primary digests first, then the
        other spellings of the misses, then a check that every alias still leads somewhere."""
        found: list[bytes | None] = [None] * len(parsed)
        await self._try(parsed, found, lambda item: item.candidates[:1])
        misses = [i for i, primary in enumerate(found) if primary is None]
        await self._try(parsed, found, lambda item: item.candidates[1:], misses)
        return await self._live(found)

    async def _try(
        self,
        parsed: Sequence[_Parsed],
        found: list[bytes | None],
        pick: _Pick,
        among: Sequence[int] | None = None,
    ) -> None:
        among = range(len(parsed)) if among is None else among
        asks = [(i, digest) for i in among for digest in pick(parsed[i])]
        if not asks:
            return
        values = await self._store.get_many([digest for _, digest in asks])
        for (i, digest), value in zip(asks, values, strict=True):
            if value is not None and found[i] is None:
                found[i] = value[1:] if value.startswith(ALIAS_MARK) else digest

    async def _live(self, found: list[bytes | None]) -> list[bytes | None]:
        targets = list(dict.fromkeys(p for p in found if p is not None))
        if not targets:
            return found
        values = await self._store.get_many(targets)
        live = {d for d, v in zip(targets, values, strict=True) if v and v[:1] != ALIAS_MARK}
        return [p if p in live else None for p in found]

    def finish(self) -> MatchedIds:
        counts = self.counts
        self.result.report = IdMatch(
            lines=counts["lines"],
            matched=counts["matched"],
            unmatched=counts["unmatched"],
            invalid=counts["invalid"],
            devices=len(self.result.ids),
            rejected=tuple(self.rejected),
        )
        return self.result


async def match_ids(redis: Redis, lines: Iterable[str], id_type: str | None = None) -> MatchedIds:
    """Parse and match an uploaded ID list; ``id_type`` types the lines given as bare values."""
    matcher = _Matcher(redis)
    numbered = _numbered(lines)
    while batch := list(itertools.islice(numbered, _BATCH)):
        parsed: list[_Parsed] = []
        for number, text in batch:
            matcher.counts["lines"] += 1
            item = parse_line(text, id_type)
            if isinstance(item, str):
                matcher.reject(number, item, text)
            else:
                parsed.append(item)
        if parsed:
            await matcher.match(parsed)
    return matcher.finish()
